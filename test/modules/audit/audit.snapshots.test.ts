import t from 'tap'
import { setup } from '../../helpers/app.js'

/**
 * New audit snapshots use the API's representation: money as the same decimal strings the API
 * answers, times as the same RFC 3339 UTC text with milliseconds and Z.
 */
const ctx = await setup()
const writer = await ctx.auth('orders:write orders:read')
const auditor = await ctx.auth('audit:read pii:read')

async function customer() {
  return (await ctx.db.insertInto('customers').values({ name: 'Buyer' } as never).returning('id').executeTakeFirstOrThrow()).id
}

async function auditOf(entity: string, id: string) {
  const res = await ctx.app.inject({ url: `/v1/audit-events?entity=${entity}&entity_id=${id}&sort=occurred_at`, headers: auditor })
  t.equal(res.statusCode, 200, res.body)
  return res.json().data as Array<{ action: string; occurred_at: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null }>
}

const MONEY = ['subtotal', 'discount_total', 'tax_total', 'shipping_total', 'total', 'amount_paid', 'amount_refunded'] as const
const TIMES = ['ordered_at', 'created_at', 'updated_at'] as const
const RFC3339_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

for (const [currency, unitPrice] of [['CNY', '129.9'], ['JPY', '1500'], ['KWD', '1.234']] as const) {
  t.test(`an order in ${currency}: its audit snapshots hold the API's amounts and times`, async (t) => {
    const created = await ctx.app.inject({
      method: 'POST', url: '/v1/orders', headers: writer,
      payload: { customer_id: await customer(), currency, tax_rate: '13', items: [{ product_name: 'Tea', quantity: 2, unit_price: unitPrice }] },
    })
    t.equal(created.statusCode, 201, created.body)
    const order = created.json()
    const paid = await ctx.app.inject({ method: 'POST', url: `/v1/orders/${order.id}/payments`, headers: writer, payload: { amount: order.total } })
    t.equal(paid.statusCode, 201, paid.body)
    const after = paid.json().order

    const events = await auditOf('orders', order.id)
    t.same(events.map((e) => e.action), ['insert', 'update'])
    const [insert, update] = events
    for (const field of MONEY) {
      t.equal(insert!.after![field], order[field], `insert: ${field} is the API's string`)
      t.equal(update!.before![field], order[field], `update before: ${field}`)
      t.equal(update!.after![field], after[field], `update after: ${field}`)
    }
    t.equal(update!.after!.tax_rate, order.tax_rate, 'tax_rate too')
    for (const field of TIMES) {
      t.match(insert!.after![field], RFC3339_MS_Z, `insert: ${field} is RFC 3339 with Z`)
      t.equal(insert!.after![field], order[field], `insert: ${field} equals the API's`)
      t.equal(update!.after![field], after[field], `update after: ${field} equals the API's`)
    }
    t.equal(update!.after!.archived_at, null)
    t.equal(update!.after!.version, after.version, 'integers stay numbers')
    for (const e of events) t.match(e.occurred_at, RFC3339_MS_Z)

    const [payment] = await auditOf('order_payments', paid.json().payment.id)
    t.equal(payment!.after!.amount, paid.json().payment.amount, 'a payment\'s amount, in the order\'s minor units')
    t.equal(payment!.after!.paid_at, paid.json().payment.paid_at)
    const items = await ctx.db.selectFrom('order_items').select('id').where('order_id', '=', order.id).execute()
    const [item] = await auditOf('order_items', items[0]!.id)
    t.same({ unit_price: item!.after!.unit_price, line_total: item!.after!.line_total }, { unit_price: order.items[0].unit_price, line_total: order.items[0].line_total })
  })
}

t.test('the hash chain verifies over the new snapshots', async (t) => {
  const res = await ctx.app.inject({ url: '/v1/audit-events/verify', headers: auditor })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().intact, true, res.body)
})
