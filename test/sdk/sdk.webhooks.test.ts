/**
 * The SDK's verifyWebhook against real deliveries: a subscription made through the SDK, the API's
 * own worker signing and sending, a real receiving HTTP server (helpers/receiver.ts). Each result
 * is cross-checked with the specification's reference library (`standardwebhooks`), which the
 * server signs with: what it accepts is accepted, what it refuses is refused.
 */
import t from 'tap'
import fc from 'fast-check'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'
import { setup, token } from '../helpers/app.js'
import { startReceiver, type Received } from '../helpers/receiver.js'
import { createCrmClient, verifyWebhook, WebhookVerificationError, type WebhookPayload, type WebhookVerificationReason } from '../../sdk/src/index.js'

const FAST = { pollMs: 20, backoffBaseMs: 40, backoffMaxMs: 200, maxAttempts: 4, timeoutMs: 2000, leaseMs: 5000, concurrency: 8 }
const ctx = await setup({ app: { webhooks: { allowedHosts: '127.0.0.0/8,::1', worker: FAST } } })
await ctx.app.listen({ port: 0, host: '127.0.0.1' })
const baseUrl = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`
const adminToken = await token('admin pii:read')
const crm = createCrmClient({ baseUrl, token: () => adminToken })

const OTHER_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
const MINUTE = 60_000

type HeaderMap = Record<string, string>
const headersOf = (r: Received) => r.headers as HeaderMap

/** The reason verifyWebhook refuses with, or 'verified'. */
async function outcome(opts: Parameters<typeof verifyWebhook>[0]): Promise<WebhookVerificationReason | 'verified'> {
  try {
    await verifyWebhook(opts)
    return 'verified'
  } catch (err) {
    if (err instanceof WebhookVerificationError) return err.reason
    throw err
  }
}

/** Whether the reference library accepts the delivery with this secret. */
function referenceAccepts(secret: string, body: string, headers: HeaderMap): boolean {
  try {
    new Webhook(secret).verify(body, headers)
    return true
  } catch {
    return false
  }
}

/** Archives a subscription, with the ETag of a fresh read (a rotation changes its version). */
async function unsubscribe(id: string): Promise<void> {
  await crm.getWebhookSubscription({ path: { id } })
  await crm.deleteWebhookSubscription({ path: { id } })
}

/** The delivery of the first event about `entityId` of type `type`. */
async function deliveryOf(receiver: Awaited<ReturnType<typeof startReceiver>>, entityId: string, type: string): Promise<Received> {
  const match = (r: Received) => {
    const p = JSON.parse(r.body) as WebhookPayload
    return p.data.entity_id === entityId && p.type === type
  }
  await receiver.until((all) => all.some(match))
  return receiver.received.find(match)!
}

t.test('a real delivery verifies, with the result the reference library gives and the event the feed holds', async (t) => {
  const receiver = await startReceiver()
  const { data: sub } = await crm.createWebhookSubscription({ body: { url: receiver.url, event_types: ['customer.*'] } })
  t.teardown(() => unsubscribe(sub.id))
  const { data: customer } = await crm.createCustomer({ body: { name: 'Signed Delivery' } })
  const got = await deliveryOf(receiver, customer.id, 'customer.created')

  const payload = await verifyWebhook({ secrets: sub.secret, headers: got.headers, body: got.body })
  t.same(payload, new Webhook(sub.secret).verify(got.body, headersOf(got)), 'the same object as the reference library')
  t.equal(payload.type, 'customer.created')
  t.equal(payload.data.entity_id, customer.id)
  t.equal(payload.data.version, 1)

  const fromHeaders = await verifyWebhook({ secrets: [sub.secret], headers: new Headers(headersOf(got)), body: new TextEncoder().encode(got.body) })
  t.same(fromHeaders, payload, 'from a fetch Headers and the body\'s bytes too (a Request in a browser, a worker or Deno)')

  const { data: feed } = await crm.listEvents({ query: { types: 'customer.created' } })
  const inFeed = feed.data.find((e) => e.id === payload.data.id)
  t.ok(inFeed, 'the delivered event is in the feed')
  t.match(inFeed, { position: payload.data.position, type: payload.data.type, entity_id: customer.id, version: 1 }, 'at the same position')
})

t.test('a changed body, another secret, a missing header or a stale timestamp do not verify', async (t) => {
  const receiver = await startReceiver()
  const { data: sub } = await crm.createWebhookSubscription({ body: { url: receiver.url, event_types: ['customer.*'] } })
  t.teardown(() => unsubscribe(sub.id))
  const { data: customer } = await crm.createCustomer({ body: { name: 'Tamper With Me' } })
  const got = await deliveryOf(receiver, customer.id, 'customer.created')
  const headers = headersOf(got)

  const tampered = got.body.replace('customer.created', 'customer.archived')
  t.equal(await outcome({ secrets: sub.secret, headers, body: tampered }), 'invalid-signature', 'a changed body')
  t.notOk(referenceAccepts(sub.secret, tampered, headers), 'the reference library refuses it too')
  t.equal(await outcome({ secrets: OTHER_SECRET, headers, body: got.body }), 'invalid-signature', 'another secret')
  t.notOk(referenceAccepts(OTHER_SECRET, got.body, headers))
  const otherId = { ...headers, 'webhook-id': `${headers['webhook-id']}x` }
  t.equal(await outcome({ secrets: sub.secret, headers: otherId, body: got.body }), 'invalid-signature', 'another webhook-id (signed with the body)')
  const { 'webhook-signature': _, ...unsigned } = headers
  t.equal(await outcome({ secrets: sub.secret, headers: unsigned, body: got.body }), 'missing-header')
  t.equal(await outcome({ secrets: sub.secret, headers: { ...headers, 'webhook-signature': 'v2,abc v1,not-base64!' }, body: got.body }), 'invalid-signature', 'no usable signature')

  const sentAt = Number(headers['webhook-timestamp']) * 1000
  t.equal(await outcome({ secrets: sub.secret, headers, body: got.body, now: sentAt + 5 * MINUTE }), 'verified', 'within the default 5 minutes')
  t.equal(await outcome({ secrets: sub.secret, headers, body: got.body, now: sentAt + 6 * MINUTE }), 'timestamp-too-old', 'received 6 minutes later (a replayed capture)')
  t.equal(await outcome({ secrets: sub.secret, headers, body: got.body, now: sentAt - 6 * MINUTE }), 'timestamp-too-new')
  t.equal(await outcome({ secrets: sub.secret, headers, body: got.body, now: sentAt + 6 * MINUTE, toleranceSeconds: 600 }), 'verified', 'a longer tolerance')
  t.equal(await outcome({ secrets: sub.secret, headers: { ...headers, 'webhook-timestamp': '17e8' }, body: got.body }), 'invalid-timestamp')

  // A delivery signed properly but 10 minutes ago (the reference library signs it): refused as old, by both.
  const old = new Date(Date.now() - 10 * MINUTE)
  const oldHeaders = { 'webhook-id': 'msg_old', 'webhook-timestamp': String(Math.floor(old.getTime() / 1000)), 'webhook-signature': new Webhook(sub.secret).sign('msg_old', old, got.body) }
  t.equal(await outcome({ secrets: sub.secret, headers: oldHeaders, body: got.body }), 'timestamp-too-old')
  t.notOk(referenceAccepts(sub.secret, got.body, oldHeaders))
  t.equal(await outcome({ secrets: sub.secret, headers: oldHeaders, body: got.body, now: old }), 'verified', 'its signature itself is good')

  await t.rejects(verifyWebhook({ secrets: 'whsec_', headers, body: got.body }), TypeError, 'an empty secret is a configuration error')
  await t.rejects(verifyWebhook({ secrets: [], headers, body: got.body }), TypeError)
})

t.test('during a rotation a delivery verifies with the new secret, the old one, or both', async (t) => {
  const receiver = await startReceiver()
  const { data: sub } = await crm.createWebhookSubscription({ body: { url: receiver.url, event_types: ['customer.*'] } })
  t.teardown(() => unsubscribe(sub.id))
  const { data: rotated } = await crm.rotateWebhookSecret({ path: { id: sub.id }, body: { overlap_seconds: 600 } })
  t.not(rotated.secret, sub.secret)
  const { data: customer } = await crm.createCustomer({ body: { name: 'Rotated' } })
  const got = await deliveryOf(receiver, customer.id, 'customer.created')
  const headers = headersOf(got)
  t.equal(headers['webhook-signature']!.split(' ').length, 2, 'two signatures')

  for (const [secrets, name] of [[[rotated.secret], 'the new secret'], [[sub.secret], 'the old secret'], [[rotated.secret, sub.secret], 'both'], [[OTHER_SECRET, sub.secret], 'a wrong one and the old one']] as const) {
    t.equal(await outcome({ secrets, headers, body: got.body }), 'verified', name)
  }
  t.ok(referenceAccepts(rotated.secret, got.body, headers) && referenceAccepts(sub.secret, got.body, headers), 'as with the reference library')
  t.equal(await outcome({ secrets: [OTHER_SECRET], headers, body: got.body }), 'invalid-signature', 'neither')
})

t.test('verifyWebhook agrees with the reference library on any secret, id and body', async (t) => {
  const now = new Date()
  await fc.assert(fc.asyncProperty(
    fc.uint8Array({ minLength: 1, maxLength: 64 }),
    fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.nat({ max: 1000 }),
    async (key, id, body, flip) => {
      const secret = `whsec_${Buffer.from(key).toString('base64')}`
      const headers = { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(id, now, body) }
      const ours = await verifyWebhook<unknown>({ secrets: secret, headers, body })
      if (JSON.stringify(ours) !== JSON.stringify(new Webhook(secret).verify(body, headers))) return false
      // One byte of the body changed: both refuse.
      const bytes = new TextEncoder().encode(body)
      const at = flip % bytes.length
      bytes[at] = bytes[at]! ^ 1
      const changed = new TextDecoder().decode(bytes)
      if (changed === body) return true
      return (await outcome({ secrets: secret, headers, body: bytes })) === 'invalid-signature' && !referenceAccepts(secret, changed, headers)
    },
  ), { numRuns: 200 })
  t.pass('200 cases')
})
