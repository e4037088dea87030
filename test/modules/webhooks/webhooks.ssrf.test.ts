import t from 'tap'
import fc from 'fast-check'
import { createSender } from '../../../src/modules/webhooks/webhooks.sender.js'
import { embeddedIpv4, NO_EXCEPTIONS, refusedAddress, refusedTarget, targetPolicy } from '../../../src/modules/webhooks/webhooks.ssrf.js'
import { retryDelayMs } from '../../../src/modules/webhooks/webhooks.worker.js'
import { startReceiver } from '../../helpers/receiver.js'
import { seeded, testSeed } from '../../helpers/seed.js'

/**
 * The SSRF guard on its own: which addresses are refused (IPv4, IPv6, IPv4 carried in IPv6),
 * the allow-list, and the check at delivery time: the sender resolves the name itself and refuses
 * a name that resolves to a refused address now, whatever it resolved to when the subscription
 * was made (DNS rebinding); the receiver never sees such a request.
 */
const SEED = testSeed()

t.test('addresses', async (t) => {
  for (const a of ['127.0.0.1', '10.0.0.1', '172.31.255.255', '192.168.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255',
    '::1', '::', 'fe80::1', 'fd12:3456::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '64:ff9b::a9fe:a9fe', '::127.0.0.1', '2001:db8::1']) {
    t.ok(refusedAddress(a, NO_EXCEPTIONS), `${a} is refused`)
  }
  for (const a of ['93.184.215.14', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8', '172.32.0.1']) t.notOk(refusedAddress(a, NO_EXCEPTIONS), `${a} is allowed`)
  t.equal(embeddedIpv4('::ffff:7f00:1'), '127.0.0.1')
  t.equal(embeddedIpv4('64:ff9b::c0a8:101'), '192.168.1.1')
  t.equal(embeddedIpv4('2606:4700::1111'), undefined)
  const policy = targetPolicy('hooks.internal, 10.1.0.0/16, ::1')
  t.notOk(refusedAddress('10.1.2.3', policy), 'an allow-listed range is let through')
  t.notOk(refusedAddress('::ffff:10.1.2.3', policy), 'also when mapped into IPv6')
  t.ok(refusedAddress('10.2.0.1', policy), 'the rest of 10/8 is not')
  t.notOk(refusedAddress('::1', policy))
  t.notOk(await refusedTarget('http://HOOKS.internal/x', policy), 'an allow-listed name is not resolved')
  t.throws(() => targetPolicy('10.0.0.0/8/1'))
})

t.test(seeded('an IPv4 address and its IPv4-mapped IPv6 form are judged alike', SEED), async () => {
  fc.assert(fc.property(fc.ipV4(), (a) => {
    const hex = a.split('.').map(Number)
    const mappedHex = `::ffff:${((hex[0]! << 8) | hex[1]!).toString(16)}:${((hex[2]! << 8) | hex[3]!).toString(16)}`
    const direct = refusedAddress(a, NO_EXCEPTIONS) !== undefined
    return direct === (refusedAddress(`::ffff:${a}`, NO_EXCEPTIONS) !== undefined) && direct === (refusedAddress(mappedHex, NO_EXCEPTIONS) !== undefined)
  }), { numRuns: 2000, seed: SEED })
})

t.test('at delivery the name is resolved again and a private answer is refused (DNS rebinding)', async (t) => {
  const receiver = await startReceiver()
  const strict = createSender({ policy: NO_EXCEPTIONS, timeoutMs: 2000 })
  t.teardown(() => strict.close())
  // localhost stands for a name that resolved to a public address when the subscription was
  // made (or was allow-listed then) and resolves to loopback now.
  const byName = await strict.send(`http://localhost:${receiver.port}/hook`, {}, '{}')
  t.equal(byName.statusCode, null)
  t.match(byName.error, /webhook target refused/)
  const byAddress = await strict.send(`http://[::ffff:127.0.0.1]:${receiver.port}/hook`, {}, '{}')
  t.match(byAddress.error, /webhook target refused/, 'an address literal is judged too (node does not look it up)')
  t.equal(receiver.received.length, 0, 'nothing reached the receiver')

  const allowing = createSender({ policy: targetPolicy('127.0.0.0/8,::1'), timeoutMs: 2000 })
  t.teardown(() => allowing.close())
  const ok = await allowing.send(`http://localhost:${receiver.port}/hook`, { 'webhook-id': 'x' }, '{"a":1}')
  t.equal(ok.statusCode, 204, 'allow-listed, the same name is delivered to the address that was checked')
  t.equal(receiver.received[0]!.body, '{"a":1}')
  const redirect = await startReceiver(() => 302)
  const moved = await allowing.send(redirect.url, {}, '{}')
  t.equal(moved.statusCode, 302, 'a redirect is not followed (it is a failed attempt)')
})

t.test('the retry schedule: doubling with ±20 % jitter, capped, about 3 days by default', async (t) => {
  t.equal(retryDelayMs(1, 10_000, 43_200_000, () => 0.5), 10_000)
  t.equal(retryDelayMs(4, 10_000, 43_200_000, () => 0.5), 80_000)
  t.equal(retryDelayMs(30, 10_000, 43_200_000, () => 0.5), 43_200_000, 'capped')
  t.equal(retryDelayMs(1, 10_000, 43_200_000, () => 0), 8_000)
  t.equal(retryDelayMs(1, 10_000, 43_200_000, () => 1), 12_000)
  let total = 0
  for (let failures = 1; failures < 18; failures++) total += retryDelayMs(failures, 10_000, 43_200_000, () => 0.5)
  t.ok(total > 2.5 * 86_400_000 && total < 3.5 * 86_400_000, `18 attempts span ${(total / 86_400_000).toFixed(2)} days`)
})
