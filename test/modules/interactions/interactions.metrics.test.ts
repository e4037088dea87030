import t from 'tap'
import { setup } from '../../helpers/app.js'

type Assert = { same: (a: unknown, b: unknown, m: string) => void; equal: (a: unknown, b: unknown, m: string) => void }

const ctx = await setup()
const admin = await ctx.auth()
const writer = await ctx.auth('interactions:write interactions:read')

async function customer(name: string) {
  return (await ctx.db.insertInto('customers').values({ name } as never).returning('id').executeTakeFirstOrThrow()).id
}

async function create(body: Record<string, unknown>) {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers: writer, payload: body })
  if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(res.body)
  return res.json() as { id: string; occurred_at: string }
}

async function call(method: 'PATCH' | 'DELETE' | 'POST', url: string, payload?: unknown) {
  const res = await ctx.app.inject({ method, url, headers: writer, ...(payload ? { payload: payload as object } : {}) })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res
}

/** interaction_count and last_interaction_at recomputed in the test from the raw interactions rows. */
async function expected(customerId: string) {
  const rows = await ctx.db.selectFrom('interactions').select(['occurred_at', 'archived_at']).where('customer_id', '=', customerId).execute()
  const live = rows.filter((r) => r.archived_at === null).map((r) => r.occurred_at).sort()
  return { interaction_count: live.length, last_interaction_at: live[live.length - 1] ?? null }
}

/** The customer_metrics row and the API's include=metrics both equal the recomputation. */
async function check(t: Assert, customerId: string, label: string, want?: { interaction_count: number; last_interaction_at: string | null }) {
  const recomputed = await expected(customerId)
  if (want) t.same(recomputed, want, `${label}: the raw rows are as the test expects`)
  const stored = await ctx.db
    .selectFrom('customer_metrics')
    .select(['interaction_count', 'last_interaction_at'])
    .where('customer_id', '=', customerId)
    .executeTakeFirst()
  t.same(stored ?? { interaction_count: 0, last_interaction_at: null }, recomputed, `${label}: customer_metrics`)
  const res = await ctx.app.inject({ url: `/v1/customers/${customerId}?include=metrics`, headers: admin })
  t.equal(res.statusCode, 200, `${label}: getCustomer`)
  const m = res.json().metrics
  t.same({ interaction_count: m.interaction_count, last_interaction_at: m.last_interaction_at }, recomputed, `${label}: GET include=metrics`)
}

t.test('interaction_count and last_interaction_at stay exact through creates, updates, archives, restores and upserts', async (t) => {
  const mei = await customer('Metric Mei')
  const ken = await customer('Metric Ken')
  await check(t, mei, 'no interactions', { interaction_count: 0, last_interaction_at: null })

  const a = await create({ customer_id: mei, channel: 'phone', occurred_at: '2026-05-01T10:00:00Z' })
  await check(t, mei, 'first create', { interaction_count: 1, last_interaction_at: '2026-05-01T10:00:00.000Z' })
  const b = await create({ customer_id: mei, channel: 'email', occurred_at: '2026-05-03T10:00:00.123456Z' })
  const c = await create({ customer_id: mei, channel: 'chat', occurred_at: '2026-05-02T10:00:00Z' })
  await create({ customer_id: ken, channel: 'visit', occurred_at: '2026-06-01T00:00:00Z' })
  await check(t, mei, 'three creates, a time sent with microseconds kept to the millisecond', { interaction_count: 3, last_interaction_at: '2026-05-03T10:00:00.123Z' })
  await check(t, ken, 'other customer untouched', { interaction_count: 1, last_interaction_at: '2026-06-01T00:00:00.000Z' })

  await call('PATCH', `/v1/interactions/${c.id}`, { occurred_at: '2026-05-09T08:00:00Z' })
  await check(t, mei, 'an update moves the latest forward', { interaction_count: 3, last_interaction_at: '2026-05-09T08:00:00.000Z' })
  await call('PATCH', `/v1/interactions/${c.id}`, { occurred_at: '2026-04-01T08:00:00Z' })
  await check(t, mei, 'and back', { interaction_count: 3, last_interaction_at: '2026-05-03T10:00:00.123Z' })
  await call('PATCH', `/v1/interactions/${a.id}`, { notes: 'no time change' })
  await check(t, mei, 'an update of another field', { interaction_count: 3, last_interaction_at: '2026-05-03T10:00:00.123Z' })

  await call('DELETE', `/v1/interactions/${b.id}`)
  await check(t, mei, 'archiving the latest', { interaction_count: 2, last_interaction_at: '2026-05-01T10:00:00.000Z' })
  await call('DELETE', `/v1/interactions/${b.id}`)
  await check(t, mei, 'archiving again', { interaction_count: 2, last_interaction_at: '2026-05-01T10:00:00.000Z' })
  await call('PATCH', `/v1/interactions/${b.id}`, { occurred_at: '2026-07-01T00:00:00Z' })
  await check(t, mei, 'an archived interaction counts for nothing when edited', { interaction_count: 2, last_interaction_at: '2026-05-01T10:00:00.000Z' })
  await call('POST', `/v1/interactions/${b.id}/restore`)
  await check(t, mei, 'restore', { interaction_count: 3, last_interaction_at: '2026-07-01T00:00:00.000Z' })

  await create({ external_ref: 'sync-1', customer_id: mei, channel: 'sms', occurred_at: '2026-08-01T00:00:00Z' })
  await check(t, mei, 'upsert creates', { interaction_count: 4, last_interaction_at: '2026-08-01T00:00:00.000Z' })
  await create({ external_ref: 'sync-1', customer_id: mei, channel: 'sms', occurred_at: '2026-03-01T00:00:00Z' })
  await check(t, mei, 'upsert updates, not duplicates', { interaction_count: 4, last_interaction_at: '2026-07-01T00:00:00.000Z' })

  for (const id of [a.id, b.id, c.id]) await call('DELETE', `/v1/interactions/${id}`)
  await check(t, mei, 'all but one archived', { interaction_count: 1, last_interaction_at: '2026-03-01T00:00:00.000Z' })
  await check(t, ken, 'the other customer never moved', { interaction_count: 1, last_interaction_at: '2026-06-01T00:00:00.000Z' })
})

t.test('batch inserts and upserts across customers keep every customer exact', async (t) => {
  const ids = [await customer('Batch A'), await customer('Batch B'), await customer('Batch C')]
  const items = Array.from({ length: 300 }, (_, i) => ({
    external_ref: `bulk-${i % 250}`, customer_id: ids[(i % 250) % 3], channel: 'phone',
    occurred_at: new Date(Date.UTC(2026, 0, 1) + ((i * 7919) % 1000) * 3_600_000).toISOString(),
  }))
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/interactions/batch', headers: writer, payload: { items } })
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  t.equal(res.json().items.filter((r: { status: number }) => r.status === 200).length, 50)
  for (const [k, id] of ids.entries()) {
    const recomputed = await expected(id)
    t.equal(recomputed.interaction_count, [84, 83, 83][k], `customer ${k} has its share of the 250 distinct refs`)
    await check(t, id, `after batch, customer ${k}`)
  }
  // A failing batch leaves the metrics as they were.
  const before = await ctx.db.selectFrom('customer_metrics').selectAll().where('customer_id', 'in', ids).orderBy('customer_id').execute()
  const failing = await ctx.app.inject({
    method: 'POST', url: '/v1/interactions/batch', headers: writer,
    payload: { items: [{ customer_id: ids[0], channel: 'phone', occurred_at: '2030-01-01T00:00:00Z' }, { customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99', channel: 'phone' }] },
  })
  t.equal(failing.statusCode, 422)
  t.same(await ctx.db.selectFrom('customer_metrics').selectAll().where('customer_id', 'in', ids).orderBy('customer_id').execute(), before)
  for (const id of ids) await check(t, id, 'after a failed batch')
})
