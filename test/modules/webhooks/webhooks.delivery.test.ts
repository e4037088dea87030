import t from 'tap'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { Webhook } from 'standardwebhooks'
import { problem } from '../../../src/lib/problem.js'
import { buildTestApp, setup } from '../../helpers/app.js'
import { startReceiver, type Received } from '../../helpers/receiver.js'
import { claimDeliveries } from '../../../src/modules/webhooks/webhooks.deliveries.repository.js'

/**
 * Delivery end to end, with the API's own worker and a real receiving HTTP server: Standard
 * Webhooks signatures verified with the reference library, retries with backoff, per-entity
 * order, a rolled-back request delivering nothing, dead letters disabling the subscription,
 * manual retry, replay, two secrets during a rotation, and two instances delivering each event
 * once per subscription. Backoff is milliseconds here (WEBHOOK_BACKOFF_BASE_MS in production).
 */
const FAST = { pollMs: 20, backoffBaseMs: 40, backoffMaxMs: 200, maxAttempts: 4, timeoutMs: 2000, leaseMs: 5000, concurrency: 8 }
const webhooks = { allowedHosts: '127.0.0.0/8,::1', worker: FAST }

// A route that writes a customer and then fails: its transaction rolls back.
const rollbackRoute = fp(async (app) => {
  app.post('/test/rollback', { config: { scope: 'customers:write' } }, async (request) => {
    await sql`insert into customers (name) values ('Rolled back')`.execute(request.db)
    throw problem('validation-failed', 'rolled back on purpose')
  })
})

const ctx = await setup({ app: { webhooks }, plugins: [rollbackRoute] })
const admin = await ctx.auth()

interface Payload { type: string; timestamp: string; data: { id: string; position: string; type: string; entity_id: string; version: number | null; changes: Record<string, unknown> } }
const payloadOf = (r: Received) => JSON.parse(r.body) as Payload

async function subscribe(url: string, extra: Record<string, unknown> = {}) {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/webhook-subscriptions', headers: admin, payload: { url, event_types: ['customer.*'], ...extra } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json() as { id: string; secret: string }
}

async function createCustomer(name: string): Promise<string> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json().id
}

const rename = (id: string, name: string) => ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${id}`, headers: admin, payload: { name } })

const deliveriesOf = async (subscriptionId: string, query = '') =>
  (await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${subscriptionId}/deliveries${query}`, headers: admin })).json().data as Array<Record<string, unknown>>

t.test('a delivery is signed per Standard Webhooks and verifies with the reference library', async (t) => {
  const receiver = await startReceiver()
  const sub = await subscribe(receiver.url)
  const id = await createCustomer('Ada Signed')
  await receiver.until((r) => r.some((x) => payloadOf(x).data.entity_id === id))
  const got = receiver.received.find((x) => payloadOf(x).data.entity_id === id)!
  const verified = new Webhook(sub.secret).verify(got.body, got.headers as Record<string, string>) as Payload
  t.equal(verified.type, 'customer.created')
  t.equal(verified.data.type, 'customer.created')
  t.match(got.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/)
  t.throws(() => new Webhook(`whsec_${Buffer.alloc(32, 1).toString('base64')}`).verify(got.body, got.headers as Record<string, string>), 'another secret does not verify')
  t.throws(() => new Webhook(sub.secret).verify(got.body.replace('customer.created', 'customer.archived'), got.headers as Record<string, string>), 'a changed body does not verify')

  let delivery: Record<string, unknown> = {}
  // The outcome is recorded once the receiver's answer is in.
  await waitFor(async () => {
    delivery = (await deliveriesOf(sub.id)).find((d) => d.entity_id === id) ?? {}
    return delivery.status === 'succeeded'
  })
  t.equal(delivery.id, got.headers['webhook-id'], 'the webhook-id is the delivery id')
  t.match(delivery, { status: 'succeeded', attempts: 1, last_status_code: 204, event_type: 'customer.created', next_attempt_at: null })
  t.type(delivery.last_latency_ms, 'number')
  const detail = await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${sub.id}/deliveries/${delivery.id}`, headers: admin })
  t.match(detail.json().attempts_log, [{ attempt: 1, status_code: 204, error: null }])
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('receiver down: retried with backoff, then delivered with the same webhook-id', async (t) => {
  const receiver = await startReceiver((_r, i) => (i < 2 ? 503 : 200))
  const sub = await subscribe(receiver.url)
  const id = await createCustomer('Retry Me')
  await receiver.until((r) => r.length >= 3)
  t.equal(new Set(receiver.received.map((r) => r.headers['webhook-id'])).size, 1, 'every attempt carries the same webhook-id')
  const gaps = receiver.received.slice(1).map((r, i) => r.at - receiver.received[i]!.at)
  t.ok(gaps[1]! >= gaps[0]! * 0.6, `the second wait is about twice the first, with jitter (${gaps.join(', ')} ms)`)
  let delivery: Record<string, unknown> | undefined
  await t.resolves(waitFor(async () => {
    delivery = (await deliveriesOf(sub.id)).find((d) => d.entity_id === id)
    return delivery?.status === 'succeeded'
  }))
  t.match(delivery, { attempts: 3, last_status_code: 200 })
  const detail = await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${sub.id}/deliveries/${delivery!.id}`, headers: admin })
  t.same(detail.json().attempts_log.map((a: { status_code: number }) => a.status_code), [503, 503, 200])
  t.match(detail.json().attempts_log[0].response_excerpt, 'failure 503', 'the log keeps an excerpt of the answer')
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('an entity\'s events arrive in order, even when an earlier one needs retries', async (t) => {
  let failedFirst = false
  const receiver = await startReceiver(() => {
    if (!failedFirst) {
      failedFirst = true
      return 500
    }
    return 204
  })
  const sub = await subscribe(receiver.url)
  const id = await createCustomer('Order 0')
  for (let i = 1; i <= 5; i++) t.equal((await rename(id, `Order ${i}`)).statusCode, 200)
  await receiver.until((r) => new Set(r.filter((x) => x.headers['webhook-id'] && payloadOf(x).data.entity_id === id).map((x) => x.headers['webhook-id'])).size >= 6)
  const firstArrivals: number[] = []
  const seen = new Set<string>()
  for (const r of receiver.received) {
    const p = payloadOf(r)
    if (p.data.entity_id !== id || seen.has(p.data.id)) continue
    seen.add(p.data.id)
    firstArrivals.push(p.data.version!)
  }
  t.same(firstArrivals, [1, 2, 3, 4, 5, 6], 'versions arrive in order: the later events waited for the retried first one')
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('a rolled-back request delivers nothing', async (t) => {
  const receiver = await startReceiver()
  const sub = await subscribe(receiver.url)
  const failed = await ctx.app.inject({ method: 'POST', url: '/test/rollback', headers: admin, payload: {} })
  t.equal(failed.statusCode, 400)
  const marker = await createCustomer('After the rollback')
  await receiver.until((r) => r.some((x) => payloadOf(x).data.entity_id === marker))
  t.notOk(receiver.received.some((x) => x.body.includes('Rolled back')), 'the rolled-back customer was never delivered')
  t.equal((await deliveriesOf(sub.id)).length, 1, 'only the committed change became a delivery')
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('persistent failure: a dead letter disables the subscription; retry and re-enable deliver it', async (t) => {
  let up = false
  const receiver = await startReceiver(() => (up ? 204 : 500))
  const sub = await subscribe(receiver.url)
  const id = await createCustomer('Dead Letter')
  await waitFor(async () => (await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })).json().status === 'disabled')
  const disabled = (await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })).json()
  t.match(disabled.disabled_reason, /failed 4 times/)
  t.equal(receiver.received.length, FAST.maxAttempts, 'each attempt reached the receiver')
  const [dead] = await deliveriesOf(sub.id, '?status=dead')
  t.match(dead, { status: 'dead', attempts: 4, entity_id: id })
  const audit = await sql<{ actor: string; after: { status: string } }>`select actor, after from audit_events where entity = 'webhook_subscriptions' and entity_id = ${sub.id} and action = 'update'`.execute(ctx.db)
  t.ok(audit.rows.some((r) => r.actor === 'system:webhooks' && r.after.status === 'disabled'), 'the disabling is audited as the system')
  const event = await sql<{ type: string }>`select type from events where entity_id = ${sub.id} and changes ->> 'status' = 'disabled'`.execute(ctx.db)
  t.equal(event.rows.length, 1, `the disabling is an event in the feed (${event.rows[0]?.type})`)

  up = true
  const retried = await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${sub.id}/deliveries/${dead!.id}/retry`, headers: admin })
  t.equal(retried.statusCode, 202, retried.body)
  t.equal(retried.json().status, 'pending')
  await new Promise((r) => setTimeout(r, 200))
  t.equal(receiver.received.length, FAST.maxAttempts, 'nothing goes out while the subscription is disabled')
  const enabled = await ctx.app.inject({ method: 'PATCH', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin, payload: { status: 'active' } })
  t.match(enabled.json(), { status: 'active', disabled_reason: null })
  await receiver.until((r) => r.length > FAST.maxAttempts)
  t.equal(receiver.received.at(-1)!.headers['webhook-id'], dead!.id, 'the retry resends the dead letter with its webhook-id')
  await waitFor(async () => (await deliveriesOf(sub.id))[0]!.status === 'succeeded')
  const ops = await sql<{ n: number }>`select count(*)::int as n from audit_events where entity = 'webhook_operations' and actor = 'user:test'`.execute(ctx.db)
  t.ok(ops.rows[0]!.n >= 1, 'the manual retry is audited')
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('replay from a position delivers the later events again as new deliveries', async (t) => {
  const receiver = await startReceiver()
  const sub = await subscribe(receiver.url, { filter: { changed_fields: ['name'] } })
  const a = await createCustomer('Replay A')
  const b = await createCustomer('Replay B')
  await receiver.until((r) => r.length >= 2)
  const [first, second] = receiver.received.map(payloadOf)
  t.same([first!.data.entity_id, second!.data.entity_id], [a, b])
  const res = await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${sub.id}/replay`, headers: admin, payload: { position: first!.data.position } })
  t.equal(res.statusCode, 202, res.body)
  t.equal(res.json().generation, 1)
  await receiver.until((r) => r.length >= 3)
  await new Promise((r) => setTimeout(r, 200))
  t.equal(receiver.received.length, 3, 'only the events after the position came again')
  const replayed = receiver.received[2]!
  t.equal(payloadOf(replayed).data.id, second!.data.id, 'the same event')
  t.not(replayed.headers['webhook-id'], receiver.received[1]!.headers['webhook-id'], 'as a new delivery')
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('during a rotation deliveries carry a signature per valid secret', async (t) => {
  const receiver = await startReceiver()
  const sub = await subscribe(receiver.url)
  const rotated = (await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${sub.id}/rotate-secret`, headers: admin, payload: { overlap_seconds: 600 } })).json()
  await createCustomer('Two Signatures')
  await receiver.until((r) => r.length >= 1)
  const got = receiver.received[0]!
  t.equal(String(got.headers['webhook-signature']).split(' ').length, 2)
  t.ok(new Webhook(sub.secret).verify(got.body, got.headers as Record<string, string>), 'the previous secret verifies')
  t.ok(new Webhook(rotated.secret).verify(got.body, got.headers as Record<string, string>), 'the new secret verifies')
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('one fan-out serves several subscriptions: each gets its own matching events, with its own signature', async (t) => {
  const receivers = [await startReceiver(), await startReceiver(), await startReceiver()]
  const all = await subscribe(receivers[0]!.url)
  const updates = await subscribe(receivers[1]!.url, { event_types: ['customer.updated'] })
  const other = await subscribe(receivers[2]!.url, { filter: { entity_ids: ['01a24400-0000-7000-8000-000000000000'] } })
  const id = await createCustomer('Shared Fan-out')
  t.equal((await rename(id, 'Shared Fan-out 2')).statusCode, 200)
  await receivers[0]!.until((r) => r.filter((x) => payloadOf(x).data.entity_id === id).length >= 2)
  await receivers[1]!.until((r) => r.some((x) => payloadOf(x).data.entity_id === id))
  await new Promise((r) => setTimeout(r, 200))
  const types = (i: number) => receivers[i]!.received.filter((x) => payloadOf(x).data.entity_id === id).map((x) => payloadOf(x).type)
  t.same(types(0), ['customer.created', 'customer.updated'], 'customer.* gets both, in order')
  t.same(types(1), ['customer.updated'], 'customer.updated gets the update only')
  t.same(types(2), [], 'a filter on another entity gets neither')
  const a = receivers[0]!.received.find((x) => payloadOf(x).type === 'customer.updated')!
  const b = receivers[1]!.received.find((x) => payloadOf(x).type === 'customer.updated')!
  t.equal(a.body, b.body, 'the same payload')
  t.not(a.headers['webhook-id'], b.headers['webhook-id'], 'as a delivery of each subscription')
  t.ok(new Webhook(all.secret).verify(a.body, a.headers as Record<string, string>), 'signed with the first subscription\'s secret')
  t.ok(new Webhook(updates.secret).verify(b.body, b.headers as Record<string, string>), 'and the second\'s with its own')
  for (const sub of [all, updates, other]) await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('a lease makes the delivery due again at its end, and a claim passes over it until then', async (t) => {
  const receiver = await startReceiver(() => 'hang')
  const sub = await subscribe(receiver.url)
  const id = await createCustomer('Leased')
  await receiver.until((r) => r.length >= 1)
  const row = await ctx.ownerDb.selectFrom('webhook_deliveries').select(['id', 'lease_owner', 'lease_until', 'next_attempt_at', 'status'])
    .where('entity_id', '=', id).executeTakeFirstOrThrow()
  t.equal(row.status, 'pending')
  t.ok(row.lease_owner, 'held by the worker sending it')
  t.equal(new Date(row.next_attempt_at).getTime(), new Date(row.lease_until!).getTime(), 'due again when the lease ends')
  const claimed = await claimDeliveries(ctx.ownerDb, 'another-worker', 10, 5000)
  t.notOk(claimed.some((d) => d.id === row.id), 'another worker does not take it meanwhile')
  await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${sub.id}`, headers: admin })
})

t.test('two instances deliver each event once per subscription', async (t) => {
  const second = await buildTestApp(ctx.db, { app: { webhooks } })
  await second.ready()
  t.teardown(() => second.close())
  const receivers = [await startReceiver(), await startReceiver()]
  const subs = [await subscribe(receivers[0]!.url), await subscribe(receivers[1]!.url)]
  const ids: string[] = []
  for (let i = 0; i < 30; i++) ids.push(await createCustomer(`Twice ${i}`))
  for (const receiver of receivers) {
    await receiver.until((r) => new Set(r.map((x) => payloadOf(x).data.entity_id)).size >= ids.length)
    const webhookIds = receiver.received.map((r) => r.headers['webhook-id'])
    const events = receiver.received.map((r) => payloadOf(r).data.id)
    t.equal(new Set(events).size, ids.length, 'every event arrived')
    t.equal(new Set(webhookIds).size, ids.length, 'under one webhook-id each (what a receiver deduplicates on)')
  }
  const workers = await sql<{ worker: string }>`select distinct worker from webhook_delivery_attempts a join webhook_deliveries d on d.id = a.delivery_id
    where d.subscription_id in (${subs[0]!.id}, ${subs[1]!.id})`.execute(ctx.ownerDb)
  t.ok(workers.rows.length >= 1, `delivered by ${workers.rows.length} worker(s)`)
})

async function waitFor(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
