import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('interactions:write interactions:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

const customers: string[] = []
for (let i = 0; i < 5; i++) {
  customers.push((await ctx.db.insertInto('customers').values({ name: `Caller ${i}` } as never).returning('id').executeTakeFirstOrThrow()).id)
}
const orderOf = async (customerId: string) =>
  (await ctx.db.insertInto('orders').values({ customer_id: customerId, currency: 'CNY' } as never).returning('id').executeTakeFirstOrThrow()).id as string
const order0 = await orderOf(customers[0]!)
const order1 = await orderOf(customers[1]!)

const item = (i: number, over: Record<string, unknown> = {}) => ({
  external_ref: `call-${i}`, customer_id: customers[i % customers.length], channel: i % 2 ? 'phone' : 'email', direction: 'outbound',
  subject: `Call ${i}`, occurred_at: new Date(Date.UTC(2026, 2, 1, 8, 0, i)).toISOString(), duration_seconds: i, agent: 'agent:li',
  ...over,
})

const batch = (items: unknown[], headers = writer) => ctx.app.inject({ method: 'POST', url: '/v1/interactions/batch', headers, payload: { items } })

async function counts() {
  const metrics = await ctx.db.selectFrom('customer_metrics').select(['customer_id', 'interaction_count', 'last_interaction_at']).orderBy('customer_id').execute()
  return { interactions: await ctx.count('interactions'), audit: await ctx.count('audit_events'), metrics }
}

t.test('a bad 500th item rolls back the 499 before it: 4xx with /items/499/... and zero rows', async (t) => {
  // An interaction of customer 1 whose external_ref item 499 (customer 4) then claims.
  const existing = await ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers: writer, payload: { external_ref: 'taken', customer_id: customers[1], channel: 'sms' } })
  t.equal(existing.statusCode, 201)
  const before = await counts()
  const items = Array.from({ length: 500 }, (_, i) => item(i))
  for (const [bad, pointer, status] of [
    [{ customer_id: UNKNOWN }, '/items/499/customer_id', 422],
    [{ order_id: order1 }, '/items/499/order_id', 422],
    [{ order_id: UNKNOWN }, '/items/499/order_id', 422],
    [{ external_ref: 'taken' }, '/items/499/customer_id', 422],
  ] as const) {
    const res = await batch([...items.slice(0, 499), item(499, bad)])
    t.equal(res.statusCode, status, res.body.slice(0, 300))
    const problem = res.json()
    t.same(problem.errors.map((e: { pointer: string }) => e.pointer), [pointer])
    t.match(problem.detail, /^Item 499 failed, so none of the 500 items was applied\./)
    t.same(await counts(), before, 'no interaction, audit row or metrics change remains')
  }
})

t.test('schema errors reject the batch before anything runs, with item pointers', async (t) => {
  const before = await counts()
  const bad = await batch([...Array.from({ length: 499 }, (_, i) => item(i)), item(499, { channel: 'fax', version: 2 })])
  t.equal(bad.statusCode, 400)
  t.same([...new Set(bad.json().errors.map((e: { pointer: string }) => e.pointer))].sort(), ['/items/499/channel', '/items/499/version'])
  t.same((await batch([])).json().errors.map((e: { pointer: string }) => e.pointer), ['/items'])
  const tooMany = await batch(Array.from({ length: 1001 }, (_, i) => item(i)))
  t.equal(tooMany.statusCode, 400)
  t.same(tooMany.json().errors.map((e: { pointer: string }) => e.pointer), ['/items'])
  const extra = await ctx.app.inject({ method: 'POST', url: '/v1/interactions/batch', headers: writer, payload: { items: [item(0)], extra: 1 } })
  t.equal(extra.statusCode, 400)
  t.equal((await batch([item(0)], await ctx.auth('interactions:read'))).statusCode, 403)
  t.same(await counts(), before)
})

t.test('1,000 items: per-item results in order, upserts by external_ref, order links, every row audited', async (t) => {
  const items = Array.from({ length: 1000 }, (_, i) => {
    if (i >= 990) return item(i - 990, { subject: 'resent', follow_up_on: '2026-03-05' })
    return item(i, i % 5 === 0 ? { order_id: order0 } : {})
  })
  const res = await batch(items)
  t.equal(res.statusCode, 200, res.body.slice(0, 500))
  const results = res.json().items as Array<{ index: number; status: number; id: string }>
  t.equal(results.length, 1000)
  t.same(results.map((r) => r.index), items.map((_, i) => i))
  t.ok(results.slice(0, 990).every((r) => r.status === 201))
  t.ok(results.slice(990).every((r) => r.status === 200), 'a repeated external_ref updates the interaction created earlier in the batch')
  t.same(results.slice(990).map((r) => r.id), results.slice(0, 10).map((r) => r.id))
  t.equal(await ctx.count('interactions'), 991, '990 new plus the one of the first test')
  const first = (await ctx.app.inject({ url: `/v1/interactions/${results[0]!.id}`, headers: writer })).json()
  t.match(first, { external_ref: 'call-0', subject: 'resent', follow_up_on: '2026-03-05', order_id: order0, version: 2, channel: 'email' })
  const audit = await ctx.db
    .selectFrom('audit_events')
    .select(['entity', 'action', (eb) => eb.fn.countAll<number>().as('n')])
    .where('request_id', '=', res.headers['x-request-id'] as string)
    .groupBy(['entity', 'action'])
    .orderBy('entity')
    .orderBy('action')
    .execute()
  t.same(audit, [
    { entity: 'interactions', action: 'insert', n: 990 },
    { entity: 'interactions', action: 'update', n: 10 },
  ], 'one audit row per changed row, all with the batch\'s request id')
})
