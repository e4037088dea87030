/**
 * The SDK's retries against a real server that rate-limits (2 requests per 3 seconds per token
 * subject: wide enough that a slow machine still sends three within one window): a 429 is retried
 * after its Retry-After and the call succeeds; a Retry-After longer than the client accepts, or
 * retries turned off, surface as a CrmProblem carrying it. The fetch
 * given to the client only records what went over the wire (the real fetch does the work).
 */
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { buildTestApp, setup, token } from '../helpers/app.js'
import { checkingFetch } from '../helpers/conformance.js'
import { createCrmClient, CrmProblem } from '../../sdk/src/index.js'

const ctx = await setup()
const limited = await buildTestApp(ctx.db, { app: { rateLimit: { max: 2, windowMs: 3000, authFailureMax: 100 } } })
await limited.listen({ port: 0, host: '127.0.0.1' })
t.teardown(() => limited.close())
const baseUrl = `http://127.0.0.1:${(limited.server.address() as AddressInfo).port}`
/** What the client receives, checked against the contract (compiled here, not inside a rate-limit window). */
const checkedFetch = checkingFetch()

/** A client with its own token subject (its own rate-limit bucket) and a log of the statuses it received. */
async function client(sub: string, retry?: Parameters<typeof createCrmClient>[0]['retry']) {
  const jwt = await token('admin', { sub })
  const statuses: number[] = []
  const crm = createCrmClient({
    baseUrl,
    token: () => jwt,
    ...(retry === undefined ? {} : { retry }),
    fetch: async (input, init) => {
      const res = await checkedFetch(input, init)
      statuses.push(res.status)
      return res
    },
  })
  return { crm, statuses }
}

t.test('a 429 is retried after its Retry-After, and the call succeeds', async (t) => {
  const { crm, statuses } = await client('user:retry')
  for (let i = 0; i < 4; i++) {
    const { data } = await crm.listSegments({ query: { limit: 1 } })
    t.ok(Array.isArray(data.data))
  }
  t.ok(statuses.includes(429), `the server did limit (${statuses.join(' ')})`)
  t.equal(statuses.filter((s) => s === 200).length, 4, 'every call got its answer')
})

t.test('a POST retried after a 429 keeps its Idempotency-Key: one segment, not two', async (t) => {
  const { crm, statuses } = await client('user:retry-post')
  await crm.listSegments()
  await crm.listSegments()
  const { data, response } = await crm.createSegment({ body: { name: `retried-${Date.now()}`, kind: 'static' } })
  t.equal(response.status, 201)
  t.equal(statuses[2], 429, 'the create was limited first')
  const { data: found } = await crm.getSegment({ path: { id: data.id } })
  t.equal(found.name, data.name)
})

t.test('a Retry-After beyond the client\'s bound, or retries off, is a CrmProblem with retryAfter', async (t) => {
  for (const [i, retry] of ([{ maxDelayMs: 10 }, false] as const).entries()) {
    const { crm, statuses } = await client(`user:no-retry-${i}`, retry)
    await crm.listSegments()
    await crm.listSegments()
    const err = await crm.listSegments().then(() => null, (e: unknown) => e)
    t.ok(err instanceof CrmProblem, 'a CrmProblem')
    const problem = err as CrmProblem
    t.equal(problem.status, 429)
    t.ok(problem.retryAfter !== undefined && problem.retryAfter >= 1, `with Retry-After (${problem.retryAfter})`)
    t.same(statuses, [200, 200, 429], 'not retried')
  }
})

t.test('a 503 (the request passed its deadline waiting for a lock) is retried after its Retry-After; the update lands once', async (t) => {
  const slow = await buildTestApp(ctx.db, { app: { deadline: { deadlineMs: 1_500, longDeadlineMs: 5_000 } } })
  await slow.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => slow.close())
  const jwt = await token('admin', { sub: 'user:deadline' })
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  const statuses: number[] = []
  const crm = createCrmClient({
    baseUrl: `http://127.0.0.1:${(slow.server.address() as AddressInfo).port}`,
    token: () => jwt,
    fetch: async (input, init) => {
      const res = await checkedFetch(input, init)
      statuses.push(res.status)
      // The lock is let go once the server has given up on the first try.
      if (res.status === 503) release()
      return res
    },
  })
  const { data: customer } = await crm.createCustomer({ body: { name: 'Locked' } })
  // Another transaction holds the customer's row until the first update has answered 503.
  let locked!: () => void
  const isLocked = new Promise<void>((resolve) => (locked = resolve))
  const holder = ctx.ownerDb.transaction().execute(async (trx) => {
    await trx.selectFrom('customers').select('id').where('id', '=', customer.id).forUpdate().execute()
    locked()
    await released
  })
  await isLocked
  const sent = statuses.length
  const { data: updated } = await crm.updateCustomer({ path: { id: customer.id }, body: { occupation: 'patient' } })
  await holder
  // (A retry that itself passes the deadline on a slow machine is one more 503, retried again.)
  const update = statuses.slice(sent)
  t.ok(update.length >= 2 && update.slice(0, -1).every((s) => s === 503) && update.at(-1) === 200, `503, then the retry succeeded (${update.join(' ')})`)
  t.equal(updated.occupation, 'patient')
  t.equal(updated.version, customer.version + 1, 'applied once: the first try was rolled back')
})
