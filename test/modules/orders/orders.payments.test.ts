import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('orders:write orders:read')
const reader = await ctx.auth('orders:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'
// Far from today whenever the suite runs, so no assertion depends on the clock.
const PAST = '2020-01-15'
const FUTURE = '2099-12-31'

async function customer(fields: Record<string, unknown> = {}) {
  return (await ctx.db.insertInto('customers').values({ name: 'Buyer', ...fields } as never).returning('id').executeTakeFirstOrThrow()).id
}

async function order(body: Record<string, unknown>) {
  const res = await ctx.app.inject({
    method: 'POST', url: '/v1/orders', headers: writer,
    payload: { currency: 'CNY', items: [{ product_name: 'Rice 10 kg', quantity: 4, unit_price: '25.00' }], ...body },
  })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json() as { id: string; total: string; due_date: string | null }
}

const pay = (id: string, payload: Record<string, unknown>, headers: Record<string, string> = writer) =>
  ctx.app.inject({ method: 'POST', url: `/v1/orders/${id}/payments`, headers, payload })

const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer).sort()

t.test('a credit sale: partial payments, a reversed payment, settlement, refunds; outstanding and overdue at each step', async (t) => {
  const c = await customer({ payment_terms_days: 30 })
  const o = await order({ customer_id: c, payment_method: 'credit', due_date: PAST })
  t.equal(o.total, '100.00')
  const steps: Array<[Record<string, unknown>, number, Record<string, unknown>]> = [
    [{ amount: '30.00', method: 'bank_transfer', reference: 'TXN-1', paid_at: '2020-01-10T09:00:00Z' }, 201,
      { status: 'pending', amount_paid: '30.00', amount_refunded: '0.00', amount_outstanding: '70.00', overdue: true }],
    [{ amount: '70.01' }, 422, {}],
    [{ kind: 'refund', amount: '10.00' }, 201, { status: 'pending', amount_paid: '30.00', amount_refunded: '10.00', amount_outstanding: '80.00', overdue: true }],
    [{ amount: '80.00', method: 'cash' }, 201, { status: 'paid', amount_paid: '110.00', amount_refunded: '10.00', amount_outstanding: '0.00', overdue: false }],
    [{ amount: '0.01' }, 422, {}],
    [{ kind: 'refund', amount: '50.00' }, 201, { status: 'partially_refunded', amount_refunded: '60.00', amount_outstanding: '0.00', overdue: false }],
    [{ kind: 'refund', amount: '50.01' }, 422, {}],
    [{ kind: 'refund', amount: '50.00' }, 201, { status: 'refunded', amount_paid: '110.00', amount_refunded: '110.00', amount_outstanding: '0.00' }],
    [{ kind: 'refund', amount: '0.01' }, 422, {}],
  ]
  for (const [payload, status, expected] of steps) {
    const res = await pay(o.id, payload)
    t.equal(res.statusCode, status, `${JSON.stringify(payload)}: ${res.body}`)
    if (status === 201) {
      t.match(res.json().order, expected)
      t.match(res.json().payment, { order_id: o.id, kind: payload.kind ?? 'payment', amount: payload.amount })
      t.equal(res.headers.etag, `"${res.json().order.version}"`)
    } else {
      t.equal(res.json().errors.length, 1)
    }
  }
  const final = (await ctx.app.inject({ url: `/v1/orders/${o.id}`, headers: reader })).json()
  t.same(final.payments.map((p: { kind: string; amount: string; method: string }) => `${p.kind} ${p.amount} ${p.method}`), [
    'payment 30.00 bank_transfer', 'refund 10.00 credit', 'payment 80.00 cash', 'refund 50.00 credit', 'refund 50.00 credit',
  ], 'oldest first; method defaults to the order\'s payment_method')
  t.equal(final.payments[0].reference, 'TXN-1')
  t.equal(final.payments[0].paid_at, '2020-01-10T09:00:00.000Z')
})

t.test('payments: pointers for the refused ones, audit rows, If-Match, 404', async (t) => {
  const c = await customer()
  const o = await order({ customer_id: c })
  t.same(pointers(await pay(o.id, { amount: '100.01' })), ['/amount'])
  t.same(pointers(await pay(o.id, { kind: 'refund', amount: '1.00' })), ['/amount'], 'nothing received, nothing to refund')
  const zero = await pay(o.id, { amount: '0.00' })
  t.equal(zero.statusCode, 400)
  t.same(pointers(zero), ['/amount'])
  const bad = await pay(o.id, { amount: 10, kind: 'gift', method: 'beads', order_id: o.id })
  t.equal(bad.statusCode, 400)
  t.same(pointers(bad), ['/amount', '/kind', '/method', '/order_id'])
  t.equal((await pay(o.id, { amount: '1.00' }, { ...writer, 'if-match': '"9"' })).statusCode, 412)
  const ok = await pay(o.id, { amount: '1.00' }, { ...writer, 'if-match': '"1"' })
  t.equal(ok.statusCode, 201)
  const audit = await ctx.db.selectFrom('audit_events').selectAll()
    .where('request_id', '=', ok.headers['x-request-id'] as string).where('entity', 'in', ['orders', 'order_payments']).execute()
  t.same(audit.map((a) => `${a.action} ${a.entity}`).sort(), ['insert order_payments', 'update orders'])
  t.equal((await pay(UNKNOWN, { amount: '1.00' })).statusCode, 404)
  t.equal((await pay(o.id, { amount: '1.00' }, reader)).statusCode, 403)
  const cancelled = await order({ customer_id: c, status: 'cancelled' })
  t.same(pointers(await pay(cancelled.id, { amount: '1.00' })), ['/kind'], 'a cancelled order takes no payments')
  t.same(pointers(await pay(cancelled.id, { kind: 'refund', amount: '1.00' })), ['/kind'], 'nor refunds')
})

t.test('a credit sale without a due date falls due after the customer\'s payment terms', async (t) => {
  const termed = await customer({ payment_terms_days: 30 })
  const o = await order({ customer_id: termed, payment_method: 'credit', ordered_at: '2026-01-20T23:30:00Z' })
  t.equal(o.due_date, '2026-02-19')
  const untermed = await customer()
  const res = await ctx.app.inject({
    method: 'POST', url: '/v1/orders', headers: writer,
    payload: { customer_id: untermed, payment_method: 'credit', currency: 'CNY', items: [{ product_name: 'x', quantity: 1, unit_price: '1.00' }] },
  })
  t.equal(res.statusCode, 422)
  t.same(pointers(res), ['/due_date'])
  t.equal((await order({ customer_id: untermed, payment_method: 'card' })).due_date, null, 'not a credit sale: no due date')
})

t.test('receivables: open credit orders per currency, overdue flag, exact sums', async (t) => {
  const c = await customer()
  const overdue = await order({ customer_id: c, due_date: PAST, items: [{ product_name: 'a', quantity: 3, unit_price: '33.33' }] })
  await pay(overdue.id, { amount: '0.33' })
  await order({ customer_id: c, due_date: FUTURE, items: [{ product_name: 'b', quantity: 1, unit_price: '999999999999.99' }] })
  await order({ customer_id: c, due_date: PAST, currency: 'USD', items: [{ product_name: 'c', quantity: 2, unit_price: '0.05' }] })
  await order({ customer_id: c }) // no due date: not a credit sale
  await order({ customer_id: c, due_date: PAST, status: 'paid' }) // settled
  await order({ customer_id: c, due_date: PAST, status: 'cancelled' })
  const archived = await order({ customer_id: c, due_date: PAST })
  t.equal((await ctx.app.inject({ method: 'DELETE', url: `/v1/orders/${archived.id}`, headers: writer })).statusCode, 204)

  const res = await ctx.app.inject({ url: `/v1/customers/${c}/receivables`, headers: reader })
  t.equal(res.statusCode, 200, res.body)
  const r = res.json()
  t.equal(r.customer_id, c)
  t.match(r.as_of, /^\d{4}-\d{2}-\d{2}$/)
  t.equal(r.overdue, true)
  t.same(r.currencies, [
    { currency: 'CNY', outstanding: '1000000000099.65', overdue_outstanding: '99.66', open_orders: 2, overdue_orders: 1, oldest_due_date: PAST },
    { currency: 'USD', outstanding: '0.10', overdue_outstanding: '0.10', open_orders: 1, overdue_orders: 1, oldest_due_date: PAST },
  ])

  const overdueList = (await ctx.app.inject({ url: `/v1/customers/${c}/orders?overdue=true`, headers: reader })).json()
  t.equal(overdueList.data.length, 2)
  t.ok(overdueList.data.every((o: { overdue: boolean }) => o.overdue))
  const notOverdue = (await ctx.app.inject({ url: `/v1/customers/${c}/orders?overdue=false`, headers: reader })).json()
  t.equal(notOverdue.data.length, 4)
  t.equal((await ctx.app.inject({ url: `/v1/orders?overdue=true&customer_id=${c}`, headers: reader })).json().data.length, 2)

  await pay(overdue.id, { amount: '99.66' })
  const after = (await ctx.app.inject({ url: `/v1/customers/${c}/receivables`, headers: reader })).json()
  t.same(after.currencies.map((x: { currency: string; overdue_outstanding: string }) => `${x.currency} ${x.overdue_outstanding}`), ['CNY 0.00', 'USD 0.10'])

  const clean = await customer()
  t.same((await ctx.app.inject({ url: `/v1/customers/${clean}/receivables`, headers: reader })).json().currencies, [])
  t.equal((await ctx.app.inject({ url: `/v1/customers/${clean}/receivables`, headers: reader })).json().overdue, false)
  t.equal((await ctx.app.inject({ url: `/v1/customers/${UNKNOWN}/receivables`, headers: reader })).statusCode, 404)
  t.equal((await ctx.app.inject({ url: `/v1/customers/${c}/receivables`, headers: await ctx.auth('customers:read') })).statusCode, 403)
})
