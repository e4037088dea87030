import t from 'tap'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { buildTestApp, setup } from '../../helpers/app.js'
import { unprocessable } from '../../../src/lib/problem.js'
import { inAuditedTransaction } from '../../../src/plugins/audit.js'

/**
 * GET /v1/events: each event type produced by the route that makes the change, what a rolled-back
 * request leaves (nothing), masking per grants, positions, retention and long polling.
 */

// A test-only route that writes a customer in the request transaction and then fails.
const failing = fp(async (app) => {
  app.post('/test/write-then-fail', { config: { scope: 'customers:write' } }, async (request) => {
    await request.db.insertInto('customers').values({ name: 'Never committed' } as never).execute()
    throw unprocessable('the handler fails after writing')
  })
})

const ctx = await setup({ plugins: [failing] })
const admin = await ctx.auth('admin pii:read')
const eventsOnly = await ctx.auth('events:read')

interface Ev { id: string; position: string; type: string; actor: string; request_id: string | null; correlation_id: string | null; entity_type: string; entity_id: string; version: number | null; changes: Record<string, unknown> }

const read = (query: string, headers: Record<string, string> = admin) => ctx.app.inject({ url: `/v1/events${query ? `?${query}` : ''}`, headers })

/** Every event after `after` that is visible now, and the position after the last one. */
async function drain(after: string | null, headers: Record<string, string> = admin): Promise<{ events: Ev[]; next: string }> {
  const events: Ev[] = []
  let position = after
  for (;;) {
    const res = await read(`limit=7${position ? `&after=${position}` : ''}`, headers)
    if (res.statusCode !== 200) throw new Error(res.body)
    const body = res.json() as { data: Ev[]; next_position: string }
    events.push(...body.data)
    position = body.next_position
    if (body.data.length === 0) return { events, next: position }
  }
}

let head = (await drain(null)).next

/** The events the given step produced (everything new on the feed). */
async function eventsOf(step: () => Promise<unknown>): Promise<Ev[]> {
  await step()
  const { events, next } = await drain(head)
  head = next
  return events
}

async function call(method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = admin) {
  const res = await ctx.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res
}

const types = (events: Ev[]) => events.map((e) => e.type)
/** The types of the events about one record (a write also emits the customer's lifecycle stage change, for instance). */
const typesOf = (events: Ev[], id: string) => types(events.filter((e) => e.entity_id === id))
/** Moves past everything written so far (a test's set-up). */
const settle = async () => {
  head = (await drain(head)).next
}

t.test('customers and contact points: created, updated, archived, restored, merged, deleted; with actor, request, version and changes', async (t) => {
  let res!: Awaited<ReturnType<typeof call>>
  const created = await eventsOf(async () => {
    res = await call('POST', '/v1/customers', { name: 'Li Na', birthday: '1990-04-01' }, { ...admin, 'x-correlation-id': 'crm-test-1' })
  })
  const customer = res.json() as { id: string }
  t.same(types(created), ['customer.created'])
  t.match(created[0], {
    entity_type: 'customer', entity_id: customer.id, version: 1, actor: 'user:test',
    request_id: res.headers['x-request-id'], correlation_id: 'crm-test-1', changes: { name: 'Li Na', birthday: '1990-04-01' },
  })
  t.notOk('version' in created[0]!.changes, 'the version is the event\'s own field')

  const updated = await eventsOf(() => call('PATCH', `/v1/customers/${customer.id}`, { job_title: 'Buyer' }))
  t.same(types(updated), ['customer.updated'])
  t.equal(updated[0]!.version, 2)
  t.same(Object.keys(updated[0]!.changes).sort(), ['job_title', 'updated_at'], 'only the fields the change set')

  let cp!: { id: string }
  t.same(types(await eventsOf(async () => {
    cp = (await call('POST', `/v1/customers/${customer.id}/contact-points`, { kind: 'email', value: 'li.na@example.com' })).json()
  })), ['contact_point.created'])
  t.same(types(await eventsOf(() => call('PATCH', `/v1/customers/${customer.id}/contact-points/${cp.id}`, { label: 'work' }))), ['contact_point.updated'])
  t.same(types(await eventsOf(() => call('DELETE', `/v1/customers/${customer.id}/contact-points/${cp.id}`))), ['contact_point.deleted'])

  t.same(types(await eventsOf(() => call('DELETE', `/v1/customers/${customer.id}`))), ['customer.archived'])
  t.same(types(await eventsOf(() => call('POST', `/v1/customers/${customer.id}/restore`))), ['customer.restored'])

  const duplicate = (await call('POST', '/v1/customers', { name: 'Li Na (dup)' })).json() as { id: string }
  head = (await drain(head)).next
  const merged = await eventsOf(() => call('POST', `/v1/customers/${customer.id}/merge`, { duplicate_id: duplicate.id }))
  t.ok(merged.some((e) => e.type === 'customer.merged' && e.entity_id === duplicate.id), `the duplicate is merged: ${types(merged).join(', ')}`)
  t.notOk(merged.some((e) => e.type === 'customer.archived'), 'a merge is not an archive')
})

t.test('orders: created, paid, refunded, cancelled, archived', async (t) => {
  const customer = (await call('POST', '/v1/customers', { name: 'Buyer' })).json() as { id: string }
  await settle()
  let order!: { id: string; total: string }
  const created = await eventsOf(async () => {
    order = (await call('POST', '/v1/orders', { customer_id: customer.id, currency: 'CNY', items: [{ product_name: 'Rice', quantity: 2, unit_price: '10.00' }] })).json()
  })
  t.same(types(created), ['order.created'], 'its items and payments emit nothing of their own')
  t.match(created[0]!.changes, { status: 'pending', total: '20.00', currency: 'CNY' })
  const paid = await eventsOf(() => call('POST', `/v1/orders/${order.id}/payments`, { amount: '20.00' }))
  t.same(typesOf(paid, order.id), ['order.paid'])
  t.same(paid.filter((e) => e.entity_id === customer.id).map((e) => [e.type, e.changes.lifecycle_stage]), [['customer.updated', 'first_purchase']],
    'the purchase moves the customer\'s lifecycle stage: an update of the customer, in the same request')
  const refunded = (await eventsOf(() => call('POST', `/v1/orders/${order.id}/payments`, { kind: 'refund', amount: '5.00' }))).filter((e) => e.entity_id === order.id)
  t.same(types(refunded), ['order.refunded'])
  t.match(refunded[0]!.changes, { amount_refunded: '5.00', status: 'partially_refunded' })
  t.same(typesOf(await eventsOf(() => call('POST', `/v1/orders/${order.id}/payments`, { kind: 'refund', amount: '15.00' })), order.id), ['order.refunded'])

  const other = (await call('POST', '/v1/orders', { customer_id: customer.id, currency: 'CNY', items: [{ product_name: 'Tea', quantity: 1, unit_price: '3.00' }] })).json() as { id: string }
  await settle()
  t.same(typesOf(await eventsOf(() => call('PATCH', `/v1/orders/${other.id}`, { status: 'cancelled' })), other.id), ['order.cancelled'])
  t.same(typesOf(await eventsOf(() => call('DELETE', `/v1/orders/${other.id}`)), other.id), ['order.archived'])
})

t.test('interactions and feedback: created, updated, archived, restored; complaints opened and resolved', async (t) => {
  const customer = (await call('POST', '/v1/customers', { name: 'Caller' })).json() as { id: string }
  await settle()
  const notAboutTheCustomer = (events: Ev[]) => types(events.filter((e) => e.entity_id !== customer.id))
  let interaction!: { id: string }
  t.same(notAboutTheCustomer(await eventsOf(async () => {
    interaction = (await call('POST', '/v1/interactions', { customer_id: customer.id, channel: 'phone', subject: 'Called about rice' })).json()
  })), ['interaction.created'])
  t.same(notAboutTheCustomer(await eventsOf(() => call('PATCH', `/v1/interactions/${interaction.id}`, { outcome: 'completed' }))), ['interaction.updated'])
  t.same(notAboutTheCustomer(await eventsOf(() => call('DELETE', `/v1/interactions/${interaction.id}`))), ['interaction.archived'])
  t.same(notAboutTheCustomer(await eventsOf(() => call('POST', `/v1/interactions/${interaction.id}/restore`))), ['interaction.restored'])

  let complaint!: { id: string }
  t.same(notAboutTheCustomer(await eventsOf(async () => {
    complaint = (await call('POST', '/v1/feedback', { customer_id: customer.id, kind: 'complaint', subject: 'Broken cup' })).json()
  })), ['feedback.created', 'feedback.complaint_opened'])
  t.same(notAboutTheCustomer(await eventsOf(() => call('PATCH', `/v1/feedback/${complaint.id}`, { status: 'in_progress' }))), ['feedback.updated'])
  t.same(notAboutTheCustomer(await eventsOf(() => call('PATCH', `/v1/feedback/${complaint.id}`, { status: 'resolved', resolution_note: 'Replaced' }))), ['feedback.complaint_resolved'])
  t.same(notAboutTheCustomer(await eventsOf(() => call('POST', '/v1/feedback', { customer_id: customer.id, kind: 'survey', survey_type: 'nps', score: 9 }))), ['feedback.created'])
})

t.test('segments: created, members entered and left (on the segment, naming the customer)', async (t) => {
  const a = (await call('POST', '/v1/customers', { name: 'Member A' })).json() as { id: string }
  const b = (await call('POST', '/v1/customers', { name: 'Member B' })).json() as { id: string }
  await settle()
  let segment!: { id: string }
  t.same(types(await eventsOf(async () => {
    segment = (await call('POST', '/v1/segments', { name: 'Hand-picked', kind: 'static' })).json()
  })), ['segment.created'])
  const entered = await eventsOf(() => call('POST', `/v1/segments/${segment.id}/members`, { customer_ids: [a.id, b.id] }))
  t.same(types(entered), ['segment.member_entered', 'segment.member_entered'])
  t.same(entered.map((e) => e.entity_id), [segment.id, segment.id])
  t.same(entered.map((e) => e.changes.customer_id).sort(), [a.id, b.id].sort())
  t.equal(entered[0]!.version, null)
  const left = await eventsOf(() => call('DELETE', `/v1/segments/${segment.id}/members`, { customer_ids: [a.id] }))
  t.same(types(left), ['segment.member_left'])
  t.equal(left[0]!.changes.customer_id, a.id)
})

t.test('a request that fails after writing emits nothing (and audits nothing)', async (t) => {
  await settle()
  const auditBefore = await ctx.count('audit_events')
  const events = await eventsOf(async () => {
    const res = await ctx.app.inject({ method: 'POST', url: '/test/write-then-fail', headers: admin, payload: {} })
    t.equal(res.statusCode, 422)
  })
  t.same(events, [])
  t.equal(await ctx.count('audit_events'), auditBefore)
  t.equal((await ctx.db.selectFrom('customers').select('id').where('name', '=', 'Never committed').execute()).length, 0)
})

t.test('a transaction rolled back after writing emits nothing; the same work committed emits its events', async (t) => {
  await settle()
  const context = { actor: 'user:rollback', requestId: 'r-1', route: 'test' }
  await t.rejects(inAuditedTransaction(ctx.db, context, async (trx) => {
    await trx.insertInto('customers').values({ name: 'Rolled back' } as never).execute()
    throw new Error('roll back')
  }))
  t.same(await eventsOf(async () => {}), [])
  const events = await eventsOf(() => inAuditedTransaction(ctx.db, { ...context, requestId: 'r-2' }, (trx) =>
    trx.insertInto('customers').values([{ name: 'Kept 1' }, { name: 'Kept 2' }] as never).execute()))
  t.same(types(events), ['customer.created', 'customer.created'])
  t.same(events.map((e) => [e.actor, e.request_id]), [['user:rollback', 'r-2'], ['user:rollback', 'r-2']])
})

t.test('personal data in changes is masked per the reader\'s grants, at read time', async (t) => {
  await settle()
  const customer = (await call('POST', '/v1/customers', { name: 'Zhang Wei', birthday: '1985-02-03' })).json() as { id: string }
  await call('POST', `/v1/customers/${customer.id}/contact-points`, { kind: 'phone', value: '+86 138 0013 8000' })
  const clear = (await drain(head)).events
  const masked = (await drain(head, eventsOnly)).events
  head = (await drain(head)).next
  const phoneClear = clear.find((e) => e.type === 'contact_point.created')!
  const phoneMasked = masked.find((e) => e.type === 'contact_point.created')!
  t.equal(phoneClear.changes.value, '+86 138 0013 8000')
  t.equal(phoneMasked.changes.value, '***00', 'a phone keeps its last two digits')
  t.notOk(JSON.stringify(masked).includes('0013 8000'), 'the number appears nowhere')
  t.equal(clear.find((e) => e.type === 'customer.created')!.changes.birthday, '1985-02-03')
  t.equal(masked.find((e) => e.type === 'customer.created')!.changes.birthday, '***')
  t.equal(masked.find((e) => e.type === 'customer.created')!.changes.name, 'Zhang Wei', 'names stay visible')
  const res = await read(`after=${head}`, eventsOnly)
  t.equal(res.headers['cache-control'], 'no-store')
})

t.test('types filter, positions, scope and bad input', async (t) => {
  await settle()
  const start = head
  const customer = (await call('POST', '/v1/customers', { name: 'Filtered' })).json() as { id: string }
  await call('PATCH', `/v1/customers/${customer.id}`, { job_title: 'A' })
  await call('PATCH', `/v1/customers/${customer.id}`, { job_title: 'B' })
  const all = (await drain(start)).events
  t.same(types(all), ['customer.created', 'customer.updated', 'customer.updated'])
  const only = (await read(`after=${start}&types=customer.updated,order.paid`)).json() as { data: Ev[]; next_position: string }
  t.same(types(only.data), ['customer.updated', 'customer.updated'])
  t.equal(only.next_position, all[2]!.position)
  const none = (await read(`after=${start}&types=order.paid`)).json() as { data: Ev[]; next_position: string }
  t.same(none.data, [])
  t.equal(none.next_position, all[2]!.position, 'the filtered read moves past what it examined')
  const one = (await read(`after=${all[0]!.position}&limit=1`)).json() as { data: Ev[]; next_position: string }
  t.same(one.data.map((e) => e.id), [all[1]!.id], 'after is exclusive')
  t.equal(one.next_position, all[1]!.position)
  t.equal(new Set(all.map((e) => e.position)).size, 3)

  t.equal((await read('', await ctx.auth('customers:read'))).statusCode, 403)
  for (const bad of ['after=nope', `after=${Buffer.from('e1.x.1').toString('base64url')}`, 'types=Customer', 'types=customer.created,,order.paid', 'types=customer', 'limit=0', 'limit=201', 'wait=99']) {
    const res = await read(bad)
    t.equal(res.statusCode, 400, bad)
  }
  t.same((await read('after=nope')).json().errors.map((e: { pointer: string }) => e.pointer), ['/after'])
  head = (await drain(head)).next
})

t.test('long polling answers when an event arrives', async (t) => {
  await settle()
  const poll = read(`after=${head}&wait=20`)
  await new Promise((r) => setTimeout(r, 200))
  await call('POST', '/v1/customers', { name: 'Awaited' })
  // A generous bound, far below the 20 s wait: a poll that never woke would lose the race.
  const res = await Promise.race([poll, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))])
  t.not(res, 'timeout', 'the poll answered before its wait ran out')
  if (res === 'timeout') return
  t.equal(res.statusCode, 200)
  t.same(types(res.json().data), ['customer.created'])
  head = res.json().next_position

  const quiet = await read(`after=${head}&wait=1`)
  t.equal(quiet.statusCode, 200)
  t.same(quiet.json(), { data: [], next_position: head }, 'nothing new: an empty page at the same position')
})

t.test('retention: a position before the purged horizon answers 410 position-expired; replay from the horizon works', async (t) => {
  const old = head
  await call('POST', '/v1/customers', { name: 'Purged soon' })
  const { events } = await drain(old)
  await sql`select crm_events_purge(now() + interval '1 day', 100000)`.execute(ctx.ownerDb)
  const gone = await read(`after=${old}`)
  t.equal(gone.statusCode, 410)
  t.match(gone.json(), { status: 410, code: 'position-expired', errors: [{ pointer: '/after' }] })
  const fromLast = await read(`after=${events.at(-1)!.position}`)
  t.equal(fromLast.statusCode, 200, 'the last purged position itself is still a valid place to continue')
  t.same(fromLast.json().data, [])
  const fresh = await read('')
  t.equal(fresh.statusCode, 200)
  await call('POST', '/v1/customers', { name: 'After the purge' })
  const fromStart = await drain(null)
  t.same(types(fromStart.events), ['customer.created'], 'without after: from the oldest retained event')
  head = fromStart.next
})

t.test('a long poll answers before the request deadline, never with its 503', async (t) => {
  const app = await buildTestApp(ctx.db, { app: { deadline: { deadlineMs: 2500, longDeadlineMs: 5000 } } })
  await app.ready()
  t.teardown(() => app.close())
  await settle()
  const res = await app.inject({ url: `/v1/events?after=${head}&wait=20&types=order.paid`, headers: admin })
  t.equal(res.statusCode, 200, res.body)
  t.same(res.json().data, [])
})

t.test('the events-purge job removes events older than the retention as an app starts, and moves the horizon', async (t) => {
  await settle()
  const before = head
  await call('POST', '/v1/customers', { name: 'Old news' })
  const old = (await drain(before)).events
  await call('POST', '/v1/customers', { name: 'Recent' })
  const recent = (await drain(old.at(-1)!.position)).events
  // Only the owner may rewrite events: the first one is made three days old.
  await sql`update events set occurred_at = now() - interval '3 days' where id = ${old[0]!.id}`.execute(ctx.ownerDb)
  const app = await buildTestApp(ctx.db, { app: { events: { retentionDays: 2, purgeIntervalMs: 3_600_000 } } })
  await app.ready()
  t.teardown(() => app.close())
  let purged = false
  for (let i = 0; i < 100 && !purged; i++) {
    purged = (await sql<{ n: number }>`select count(*)::int as n from events where id = ${old[0]!.id}`.execute(ctx.db)).rows[0]!.n === 0
    if (!purged) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(purged, 'the old event is gone')
  t.equal((await read(`after=${before}`)).json().code, 'position-expired', 'a cursor before it has lost events')
  const next = (await read(`after=${old.at(-1)!.position}`)).json() as { data: Ev[] }
  t.same(next.data.map((e) => e.id), recent.map((e) => e.id), 'the events after the horizon are all there')
  head = (await drain(old.at(-1)!.position)).next
})

t.test('crm_app may read events but not write or delete them', async (t) => {
  await t.rejects(sql`delete from events`.execute(ctx.db), { code: '42501' })
  await t.rejects(sql`insert into events (type, occurred_at, actor, entity_type, entity_id, changes, audit_event_id) values ('x.y', now(), 'me', 'x', gen_random_uuid(), '{}', gen_random_uuid())`.execute(ctx.db), { code: '42501' })
})
