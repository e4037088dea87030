import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('orders:write orders:read')

const STATUSES = ['pending', 'paid', 'fulfilled', 'cancelled', 'refunded', 'partially_refunded'] as const
type Status = (typeof STATUSES)[number]
const LEGAL: Record<Status, Status[]> = {
  pending: ['paid', 'cancelled'],
  paid: ['fulfilled', 'refunded', 'partially_refunded'],
  fulfilled: ['refunded', 'partially_refunded'],
  partially_refunded: ['partially_refunded', 'refunded'],
  cancelled: [],
  refunded: [],
}

const customerId = (await ctx.db.insertInto('customers').values({ name: 'Machine' } as never).returning('id').executeTakeFirstOrThrow()).id

// 3 × 33.33 = 99.99 - 9.99 = 90.00; tax 8.875 % = 7.99 (7.9875 rounded half up); + 10.00 shipping = 107.99
const BODY = {
  customer_id: customerId, currency: 'CNY', payment_method: 'card', tax_rate: '8.875', shipping: '10.00',
  items: [{ product_name: 'Oolong', quantity: 3, unit_price: '33.33', discount: '9.99' }],
}
const TOTAL = '107.99'

interface Order { id: string; status: Status; version: number; amount_paid: string; amount_refunded: string; amount_outstanding: string; payments: Array<{ kind: string; amount: string; method: string }> }

const inject = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
  ctx.app.inject({ method, url, headers: writer, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) })

async function patchStatus(id: string, status: Status) {
  return inject('PATCH', `/v1/orders/${id}`, { status })
}

async function refund(id: string, amount: string) {
  return inject('POST', `/v1/orders/${id}/payments`, { kind: 'refund', amount })
}

/** An order in the given status, reached through the API. */
async function orderIn(status: Status): Promise<Order> {
  const initial = status === 'refunded' || status === 'partially_refunded' ? 'paid' : status
  const res = await inject('POST', '/v1/orders', { ...BODY, status: initial })
  if (res.statusCode !== 201) throw new Error(res.body)
  const id = res.json().id as string
  if (status === 'refunded') await patchStatus(id, 'refunded')
  if (status === 'partially_refunded') await refund(id, '7.99')
  const order = (await inject('GET', `/v1/orders/${id}`)).json() as Order
  if (order.status !== status) throw new Error(`could not reach ${status}: ${JSON.stringify(order)}`)
  return order
}

async function auditCount(requestId: string) {
  return (await ctx.db.selectFrom('audit_events').select('id').where('request_id', '=', requestId).execute()).length
}

t.test('orders can be created in every initial status through the legal path', async (t) => {
  const pending = await orderIn('pending')
  t.match(pending, { amount_paid: '0.00', amount_outstanding: TOTAL, payments: [] })
  const paid = await orderIn('paid')
  t.match(paid, { amount_paid: TOTAL, amount_outstanding: '0.00', payments: [{ kind: 'payment', amount: TOTAL, method: 'card' }] })
  const fulfilled = await orderIn('fulfilled')
  t.match(fulfilled, { amount_paid: TOTAL, payments: [{ kind: 'payment', amount: TOTAL }] })
  const cancelled = await orderIn('cancelled')
  t.match(cancelled, { amount_paid: '0.00', payments: [] })
  for (const status of ['refunded', 'partially_refunded'] as const) {
    const res = await inject('POST', '/v1/orders', { ...BODY, status })
    t.equal(res.statusCode, 422, `a new order cannot start as ${status}`)
    t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), ['/status'])
  }
})

for (const from of STATUSES) {
  for (const to of STATUSES) {
    if (from === to) continue
    const legal = LEGAL[from].includes(to)
    t.test(`${from} → ${to} is ${legal ? 'legal' : 'illegal (422)'}`, async (t) => {
      const order = await orderIn(from)
      if (!legal) {
        const res = await patchStatus(order.id, to)
        t.equal(res.statusCode, 422, res.body)
        t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
        t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), ['/status'])
        const after = (await inject('GET', `/v1/orders/${order.id}`)).json() as Order
        t.same(after, order, 'nothing changed')
        t.equal(await auditCount(res.headers['x-request-id'] as string), 0, 'nothing audited')
        return
      }
      if (to === 'partially_refunded') {
        const viaPatch = await patchStatus(order.id, to)
        t.equal(viaPatch.statusCode, 422, 'partially_refunded needs an amount: PATCH is refused')
        t.match(viaPatch.json().detail, /payments/)
        const res = await refund(order.id, '1.00')
        t.equal(res.statusCode, 201, res.body)
        t.equal(res.json().order.status, 'partially_refunded')
        t.equal(res.json().order.amount_refunded, from === 'partially_refunded' ? '8.99' : '1.00')
        return
      }
      const res = await patchStatus(order.id, to)
      t.equal(res.statusCode, 200, res.body)
      const after = res.json() as Order
      t.equal(after.status, to)
      t.equal(after.version, order.version + 1)
      t.ok(await auditCount(res.headers['x-request-id'] as string) >= 1, 'audited')
      if (to === 'paid') t.match(after, { amount_paid: TOTAL, amount_outstanding: '0.00', payments: [{ kind: 'payment', amount: TOTAL, method: 'card' }] })
      if (to === 'refunded') {
        t.equal(after.amount_refunded, after.amount_paid, 'everything received went back')
        t.equal(after.payments.at(-1)!.kind, 'refund')
      }
      if (to === 'cancelled') t.equal(after.amount_paid, '0.00')
    })
  }
}

t.test('sending the current status again changes nothing, even for final statuses', async (t) => {
  for (const status of STATUSES) {
    const order = await orderIn(status)
    const res = await patchStatus(order.id, status)
    t.equal(res.statusCode, 200, `${status} → ${status}`)
    t.equal(res.json().version, order.version)
  }
})

t.test('partially_refunded → refunded also happens by refunding the rest', async (t) => {
  const order = await orderIn('partially_refunded')
  const res = await refund(order.id, '100.00')
  t.equal(res.statusCode, 201, res.body)
  t.match(res.json().order, { status: 'refunded', amount_paid: TOTAL, amount_refunded: TOTAL })
})

t.test('a pending order holding a partial payment is refunded before it can be cancelled', async (t) => {
  const order = await orderIn('pending')
  t.equal((await inject('POST', `/v1/orders/${order.id}/payments`, { amount: '7.99' })).statusCode, 201)
  const refused = await patchStatus(order.id, 'cancelled')
  t.equal(refused.statusCode, 422)
  t.same(refused.json().errors.map((e: { pointer: string }) => e.pointer), ['/status'])
  t.equal((await refund(order.id, '7.99')).json().order.status, 'pending', 'a refund on a pending order keeps it pending')
  const cancelled = await patchStatus(order.id, 'cancelled')
  t.equal(cancelled.statusCode, 200)
  t.match(cancelled.json(), { status: 'cancelled', amount_paid: '7.99', amount_refunded: '7.99', amount_outstanding: '0.00' })
})

t.test('the ledger never drifts from the payment rows', async (t) => {
  // Compared in SQL numeric, exactly: amount_paid = Σ payments and amount_refunded = Σ refunds.
  const drift = await sql<{ id: string }>`
    select o.id from orders o
    cross join lateral (
      select coalesce(sum(amount) filter (where kind = 'payment'), 0) as paid,
             coalesce(sum(amount) filter (where kind = 'refund'), 0) as refunded
      from order_payments p where p.order_id = o.id
    ) s
    where o.amount_paid <> s.paid or o.amount_refunded <> s.refunded`.execute(ctx.db)
  t.ok((await ctx.count('orders')) > 30)
  t.ok((await ctx.count('order_payments')) > 30)
  t.same(drift.rows, [])
})
