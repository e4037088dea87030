import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

// What the set-wise batch (lib/batch.ts, runSetwiseBatch) must keep from the one-item-at-a-time
// batch: order numbers in item order, updates seeing the items before them, audit and metrics of
// every row, and the upsert when a concurrent transaction takes an external_ref.
const ctx = await setup()
const writer = await ctx.auth('orders:write orders:read', { sub: 'user:batcher' })

const customers: string[] = []
for (let i = 0; i < 300; i++) {
  customers.push((await ctx.db.insertInto('customers').values({ name: `Buyer ${i}` } as never).returning('id').executeTakeFirstOrThrow()).id)
}

const order = (i: number, over: Record<string, unknown> = {}) => ({
  customer_id: customers[i % customers.length], currency: 'EUR', status: 'paid', ordered_at: '2026-03-01T10:00:00Z',
  items: [{ product_name: `Product ${i}`, quantity: 1, unit_price: '10.00' }],
  ...over,
})
const batch = (items: unknown[]) => ctx.app.inject({ method: 'POST', url: '/v1/orders/batch', headers: writer, payload: { items } })
type Results = Array<{ index: number; status: number; id: string }>

t.test('server-assigned order numbers follow the item order; sent ones are kept', async (t) => {
  const res = await batch([order(0), order(1, { order_number: 'OWN-1' }), order(2), order(3)])
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const ids = (res.json().items as Results).map((r) => r.id)
  const rows = await ctx.db.selectFrom('orders').select(['id', 'order_number']).where('id', 'in', ids).execute()
  const numbers = ids.map((id) => rows.find((r) => r.id === id)!.order_number)
  t.equal(numbers[1], 'OWN-1')
  const assigned = [numbers[0]!, numbers[2]!, numbers[3]!]
  t.match(assigned, [/^ORD-\d{8}$/, /^ORD-\d{8}$/, /^ORD-\d{8}$/])
  t.same([...assigned].sort(), assigned, 'ascending in item order')
})

t.test('an update by external_ref sees the items before it, and the items after it see the update', async (t) => {
  const first = await batch([order(0, { external_ref: 'ext-a' })])
  t.equal(first.statusCode, 200)
  const before = await ctx.count('orders')
  // Item 1 gives the existing order ext-a the number N-1, which item 2 then claims: 409 at item 2.
  const res = await batch([order(1), order(0, { external_ref: 'ext-a', order_number: 'N-1' }), order(2, { order_number: 'N-1' })])
  t.equal(res.statusCode, 409, res.body.slice(0, 300))
  t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), ['/items/2/order_number'])
  t.equal(await ctx.count('orders'), before, 'nothing of the batch remains')

  const ok = await batch([order(1, { external_ref: 'ext-b' }), order(0, { external_ref: 'ext-a', notes: 'updated' }), order(2), order(1, { external_ref: 'ext-b', notes: 'again' })])
  t.equal(ok.statusCode, 200, ok.body.slice(0, 300))
  const results = ok.json().items as Results
  t.same(results.map((r) => [r.index, r.status]), [[0, 201], [1, 200], [2, 201], [3, 200]])
  t.equal(results[1]!.id, (first.json().items as Results)[0]!.id)
  t.equal(results[3]!.id, results[0]!.id, 'the last item updates the order the first created')
  const notes = await ctx.db.selectFrom('orders').select(['external_ref', 'notes']).where('external_ref', 'in', ['ext-a', 'ext-b']).orderBy('external_ref').execute()
  t.same(notes, [{ external_ref: 'ext-a', notes: 'updated' }, { external_ref: 'ext-b', notes: 'again' }])
})

t.test('300 distinct customers: every row audited with actor and request id, metrics exact at commit', async (t) => {
  const res = await batch(Array.from({ length: 600 }, (_, i) => order(i, { items: [{ product_name: 'a', quantity: 1, unit_price: '1.00' }, { product_name: 'b', quantity: 2, unit_price: '2.50' }] })))
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const audit = await ctx.db
    .selectFrom('audit_events')
    .select(['entity', 'actor', (eb) => eb.fn.countAll<number>().as('n')])
    .where('request_id', '=', res.headers['x-request-id'] as string)
    .where('action', '=', 'insert')
    .groupBy(['entity', 'actor'])
    .orderBy('entity')
    .execute()
  t.same(audit, [
    { entity: 'order_items', actor: 'user:batcher', n: 1200 },
    { entity: 'order_payments', actor: 'user:batcher', n: 600 },
    { entity: 'orders', actor: 'user:batcher', n: 600 },
  ])
  const { rows } = await sql<{ wrong: number; touched: number }>`
    select count(*) filter (where coalesce(m.order_count, -1) <> (select count(*) from orders o
             where o.customer_id = c.id and o.archived_at is null and o.status in ('paid', 'fulfilled', 'partially_refunded')))::int as wrong,
           count(*)::int as touched
    from customers c left join customer_metrics m on m.customer_id = c.id`.execute(ctx.db)
  t.same(rows[0], { wrong: 0, touched: 300 })
})

t.test('an external_ref a concurrent transaction inserts meanwhile is upserted, not duplicated', async (t) => {
  let release!: () => void
  const held = new Promise<void>((resolve) => (release = resolve))
  let otherId!: string
  let inserted!: () => void
  const ready = new Promise<void>((resolve) => (inserted = resolve))
  const other = ctx.db.transaction().execute(async (trx) => {
    otherId = (await trx.insertInto('orders').values({ customer_id: customers[5], currency: 'EUR', external_ref: 'race-1' } as never)
      .returning('id').executeTakeFirstOrThrow()).id
    inserted()
    await held
  })
  await ready
  const pending = batch([order(0), order(5, { external_ref: 'race-1', status: 'pending', notes: 'from the batch' }), order(1)])
  // The batch's insert waits for the uncommitted row with the same external_ref (the owner sees other sessions' waits).
  for (;;) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`.execute(ctx.ownerDb)
    if (rows[0]!.n > 0) break
    await new Promise((r) => setTimeout(r, 20))
  }
  release()
  await other
  const res = await pending
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const results = res.json().items as Results
  t.same(results.map((r) => r.status), [201, 200, 201])
  t.equal(results[1]!.id, otherId)
  const row = await ctx.db.selectFrom('orders').select(['notes']).where('external_ref', '=', 'race-1').execute()
  t.same(row, [{ notes: 'from the batch' }])
})
