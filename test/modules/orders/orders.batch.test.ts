import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('orders:write orders:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

const customers: string[] = []
for (let i = 0; i < 5; i++) {
  customers.push((await ctx.db.insertInto('customers').values({ name: `Shop customer ${i}` } as never).returning('id').executeTakeFirstOrThrow()).id)
}

const orderItem = (i: number, over: Record<string, unknown> = {}) => ({
  external_ref: `sync-${i}`, customer_id: customers[i % customers.length], currency: 'CNY', channel: 'marketplace',
  status: i % 3 === 0 ? 'paid' : 'pending', ordered_at: '2026-03-01T10:00:00Z',
  items: [{ sku: `SKU-${i}`, product_name: `Product ${i}`, quantity: 3, unit_price: '33.33' }, { product_name: 'Gift box', quantity: 1, unit_price: '0.01' }],
  ...over,
})

const batch = (items: unknown[]) => ctx.app.inject({ method: 'POST', url: '/v1/orders/batch', headers: writer, payload: { items } })

async function counts() {
  return { orders: await ctx.count('orders'), items: await ctx.count('order_items'), payments: await ctx.count('order_payments'), audit: await ctx.count('audit_events') }
}

t.test('a bad 500th item rolls back the 499 before it', async (t) => {
  const before = await counts()
  const items = Array.from({ length: 500 }, (_, i) => orderItem(i))
  for (const [bad, pointer, status] of [
    [{ customer_id: UNKNOWN }, '/items/499/customer_id', 422],
    [{ items: [{ product_name: 'x', quantity: 1, unit_price: '1.00', discount: '2.00' }] }, '/items/499/items/0/discount', 422],
    [{ status: 'refunded' }, '/items/499/status', 422],
    [{ order_number: 'DUP-1', external_ref: 'other-ref' }, '/items/499/order_number', 409],
  ] as const) {
    const payload = [...items.slice(0, 499), orderItem(499, bad)]
    if (status === 409) payload[10] = orderItem(10, { order_number: 'DUP-1' })
    const res = await batch(payload)
    t.equal(res.statusCode, status, res.body.slice(0, 500))
    const problem = res.json()
    t.same(problem.errors.map((e: { pointer: string }) => e.pointer), [pointer])
    t.match(problem.detail, /^Item 499 failed, so none of the 500 items was applied\./)
    t.same(await counts(), before, 'no order, item, payment or audit row remains')
  }
})

t.test('schema errors reject the batch before anything runs, with item pointers', async (t) => {
  const bad = await batch([orderItem(0), orderItem(1, { items: [{ product_name: 'x', quantity: 0, unit_price: '1' }], total: '3.00' })])
  t.equal(bad.statusCode, 400)
  t.same(bad.json().errors.map((e: { pointer: string }) => e.pointer).sort(), ['/items/1/items/0/quantity', '/items/1/total'])
  t.same((await batch([])).json().errors.map((e: { pointer: string }) => e.pointer), ['/items'])
  const tooMany = await batch(Array.from({ length: 1001 }, (_, i) => orderItem(i)))
  t.equal(tooMany.statusCode, 400)
  t.same(tooMany.json().errors.map((e: { pointer: string }) => e.pointer), ['/items'])
  t.equal((await ctx.app.inject({ method: 'POST', url: '/v1/orders/batch', headers: writer, payload: { items: [orderItem(0)], extra: 1 } })).statusCode, 400)
  t.equal((await ctx.app.inject({ method: 'POST', url: '/v1/orders/batch', headers: await ctx.auth('orders:read'), payload: { items: [orderItem(0)] } })).statusCode, 403)
  t.equal(await ctx.count('orders'), 0)
})

t.test('1,000 items: per-item results in order, upserts by external_ref, every row audited', async (t) => {
  const items = Array.from({ length: 1000 }, (_, i) => (i >= 990 ? orderItem(i - 990, { notes: 'resent' }) : orderItem(i)))
  const res = await batch(items)
  t.equal(res.statusCode, 200, res.body.slice(0, 500))
  const results = res.json().items as Array<{ index: number; status: number; id: string }>
  t.equal(results.length, 1000)
  t.same(results.map((r) => r.index), items.map((_, i) => i))
  t.ok(results.slice(0, 990).every((r) => r.status === 201))
  t.ok(results.slice(990).every((r) => r.status === 200), 'a repeated external_ref updates the order created earlier in the batch')
  t.same(results.slice(990).map((r) => r.id), results.slice(0, 10).map((r) => r.id))
  t.equal(await ctx.count('orders'), 990)
  t.equal(await ctx.count('order_items'), 1980)
  t.equal(await ctx.count('order_payments'), 330, 'the orders created as paid recorded their payment')
  const first = (await ctx.app.inject({ url: `/v1/orders/${results[0]!.id}`, headers: writer })).json()
  t.match(first, { external_ref: 'sync-0', status: 'paid', total: '100.00', amount_paid: '100.00', notes: 'resent', channel: 'marketplace' })
  const audit = await ctx.db
    .selectFrom('audit_events')
    .select(['entity', 'action', (eb) => eb.fn.countAll<number>().as('n')])
    .where('request_id', '=', res.headers['x-request-id'] as string)
    .where('entity', 'in', ['orders', 'order_items', 'order_payments']) // customer metrics triggers audit their own rows
    .groupBy(['entity', 'action'])
    .orderBy('entity')
    .orderBy('action')
    .execute()
  t.same(audit, [
    { entity: 'order_items', action: 'insert', n: 1980 },
    { entity: 'order_payments', action: 'insert', n: 330 },
    { entity: 'orders', action: 'insert', n: 990 },
    { entity: 'orders', action: 'update', n: 10 },
  ])
})
