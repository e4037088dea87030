import t from 'tap'
import { setup } from '../../helpers/app.js'

/**
 * Currencies are ISO 4217 codes and every amount has at most its currency's minor units
 * (JPY 0, CNY 2, KWD and BHD 3); amounts come back written with exactly those.
 */
const ctx = await setup()
const writer = await ctx.auth('orders:write orders:read customers:read customers:write')
const admin = await ctx.auth('admin pii:read')

async function customer(fields: Record<string, unknown> = {}) {
  return (await ctx.db.insertInto('customers').values({ name: 'Buyer', ...fields } as never).returning('id').executeTakeFirstOrThrow()).id
}

const createOrder = (payload: Record<string, unknown>) => ctx.app.inject({ method: 'POST', url: '/v1/orders', headers: writer, payload })
const getOrder = async (id: string) => (await ctx.app.inject({ url: `/v1/orders/${id}`, headers: writer })).json()
const errorsOf = (res: { json(): { errors?: Array<{ pointer: string; message: string }> } }) => res.json().errors ?? []

t.test('JPY, CNY, KWD and BHD orders round-trip with their minor units', async (t) => {
  const c = await customer()
  const cases = [
    { currency: 'JPY', unit_price: '1000', shipping: '500', tax_rate: '8.875', want: { subtotal: '3000', tax_total: '266', shipping_total: '500', total: '3766', amount_paid: '0', amount_outstanding: '3766' }, line: { unit_price: '1000', discount: '0', line_total: '3000' } },
    { currency: 'CNY', unit_price: '33.3', shipping: '10', tax_rate: '13', want: { subtotal: '99.90', tax_total: '12.99', shipping_total: '10.00', total: '122.89', amount_paid: '0.00', amount_outstanding: '122.89' }, line: { unit_price: '33.30', discount: '0.00', line_total: '99.90' } },
    { currency: 'KWD', unit_price: '1.234', shipping: '0.5', tax_rate: '5', want: { subtotal: '3.702', tax_total: '0.185', shipping_total: '0.500', total: '4.387', amount_paid: '0.000', amount_outstanding: '4.387' }, line: { unit_price: '1.234', discount: '0.000', line_total: '3.702' } },
    { currency: 'BHD', unit_price: '0.005', shipping: '0', tax_rate: '0', want: { subtotal: '0.015', tax_total: '0.000', shipping_total: '0.000', total: '0.015' }, line: { unit_price: '0.005', line_total: '0.015' } },
  ]
  for (const k of cases) {
    const res = await createOrder({ customer_id: c, currency: k.currency, tax_rate: k.tax_rate, shipping: k.shipping, items: [{ product_name: 'Tea', quantity: 3, unit_price: k.unit_price }] })
    t.equal(res.statusCode, 201, `${k.currency}: ${res.body}`)
    t.match(res.json(), { currency: k.currency, ...k.want }, `${k.currency}: the created order`)
    t.match(res.json().items[0], k.line, `${k.currency}: its line`)
    const read = await getOrder(res.json().id)
    t.match(read, k.want, `${k.currency}: read back the same`)
  }
})

t.test('a payment in KWD: three decimals, exact', async (t) => {
  const c = await customer()
  const o = (await createOrder({ customer_id: c, currency: 'KWD', items: [{ product_name: 'Dates', quantity: 1, unit_price: '10.001' }] })).json()
  const pay = await ctx.app.inject({ method: 'POST', url: `/v1/orders/${o.id}/payments`, headers: writer, payload: { amount: '1.234' } })
  t.equal(pay.statusCode, 201, pay.body)
  t.match(pay.json().payment, { amount: '1.234' })
  t.match(pay.json().order, { amount_paid: '1.234', amount_outstanding: '8.767' })
  const tooFine = await ctx.app.inject({ method: 'POST', url: `/v1/orders/${o.id}/payments`, headers: writer, payload: { amount: '0.0001' } })
  t.equal(tooFine.statusCode, 400, 'more than three decimals is beyond the money type')
  const jpy = (await createOrder({ customer_id: c, currency: 'JPY', items: [{ product_name: 'Rice', quantity: 1, unit_price: '1500' }] })).json()
  const half = await ctx.app.inject({ method: 'POST', url: `/v1/orders/${jpy.id}/payments`, headers: writer, payload: { amount: '12.5' } })
  t.equal(half.statusCode, 400, half.body)
  t.same(errorsOf(half).map((e) => e.pointer), ['/amount'])
})

t.test('an amount with more decimals than its currency is a 400 naming the field', async (t) => {
  const c = await customer()
  const jpy = await createOrder({ customer_id: c, currency: 'JPY', items: [{ product_name: 'Rice', quantity: 1, unit_price: '12.5' }] })
  t.equal(jpy.statusCode, 400, jpy.body)
  t.equal(jpy.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.same(errorsOf(jpy), [{ pointer: '/items/0/unit_price', message: 'JPY has no minor unit: send a whole number' }])

  const several = await createOrder({ customer_id: c, currency: 'CNY', shipping: '1.001', items: [{ product_name: 'Rice', quantity: 1, unit_price: '1.00', discount: '0.005' }] })
  t.equal(several.statusCode, 400)
  t.same(errorsOf(several).map((e) => e.pointer).sort(), ['/items/0/discount', '/shipping'])

  t.equal((await createOrder({ customer_id: c, currency: 'KWD', items: [{ product_name: 'Rice', quantity: 1, unit_price: '1.234' }] })).statusCode, 201, 'KWD 1.234 is fine')
  t.equal((await createOrder({ customer_id: c, currency: 'BHD', items: [{ product_name: 'Rice', quantity: 1, unit_price: '1.234' }] })).statusCode, 201, 'BHD 1.234 is fine')

  const o = (await createOrder({ customer_id: c, currency: 'CNY', items: [{ product_name: 'Rice', quantity: 1, unit_price: '12.50' }] })).json()
  const toJpy = await ctx.app.inject({ method: 'PATCH', url: `/v1/orders/${o.id}`, headers: { ...writer, 'content-type': 'application/merge-patch+json' }, payload: { currency: 'JPY' } })
  t.equal(toJpy.statusCode, 400, 'the stored items cannot be JPY')
  t.same(errorsOf(toJpy).map((e) => e.pointer), ['/currency'])
  const toKwd = await ctx.app.inject({ method: 'PATCH', url: `/v1/orders/${o.id}`, headers: { ...writer, 'content-type': 'application/merge-patch+json' }, payload: { currency: 'KWD' } })
  t.equal(toKwd.statusCode, 200, toKwd.body)
  t.match(toKwd.json(), { currency: 'KWD', total: '12.500', amount_paid: '0.000', amount_outstanding: '12.500' }, 'rewritten at the new scale')
  t.match(toKwd.json().items[0], { unit_price: '12.500', line_total: '12.500' })
})

t.test('an unknown or non-monetary currency code is a 400 wherever a currency is accepted', async (t) => {
  const c = await customer()
  for (const code of ['ABC', 'XXX', 'XAU', 'CLF']) {
    const res = await createOrder({ customer_id: c, currency: code, items: [{ product_name: 'Rice', quantity: 1, unit_price: '1' }] })
    t.equal(res.statusCode, 400, `order in ${code}`)
    t.same(errorsOf(res).map((e) => e.pointer), ['/currency'], `order in ${code}: pointer`)
  }
  const credit = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Credit', credit_limit: '100', credit_currency: 'ABC' } })
  t.equal(credit.statusCode, 400, credit.body)
  t.same(errorsOf(credit).map((e) => e.pointer), ['/credit_currency'])
  const analytics = await ctx.app.inject({ url: '/v1/analytics/rfm?currency=ABC', headers: admin })
  t.equal(analytics.statusCode, 400, analytics.body)
  t.same(errorsOf(analytics).map((e) => e.pointer), ['/currency'])
  const search = await ctx.app.inject({ method: 'POST', url: '/v1/customers/search', headers: admin, payload: { filter: { field: 'monetary', op: 'gt', value: '1', currency: 'ABC' } } })
  t.equal(search.statusCode, 400, search.body)
  t.match(errorsOf(search).map((e) => e.pointer), [/currency$/])
  const related = await ctx.app.inject({ method: 'POST', url: '/v1/customers/search', headers: admin, payload: { filter: { orders: { min_count: 1, currency: 'XXX' } } } })
  t.equal(related.statusCode, 400, related.body)
  t.match(errorsOf(related).map((e) => e.pointer), [/currency$/])
})

t.test('a credit limit is checked against its currency and written with its minor units', async (t) => {
  const jpy = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Yen', credit_limit: '100.5', credit_currency: 'JPY' } })
  t.equal(jpy.statusCode, 400, jpy.body)
  t.same(errorsOf(jpy).map((e) => e.pointer), ['/credit_limit'])
  const kwd = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Fils', credit_limit: '100.5', credit_currency: 'KWD' } })
  t.equal(kwd.statusCode, 201, kwd.body)
  t.match(kwd.json(), { credit_limit: '100.500', credit_currency: 'KWD' })
  const patch = (payload: Record<string, unknown>) => ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${kwd.json().id}`, headers: { ...admin, 'content-type': 'application/merge-patch+json' }, payload })
  const toJpy = await patch({ credit_currency: 'JPY' })
  t.equal(toJpy.statusCode, 400, 'the stored limit has decimals JPY lacks')
  t.same(errorsOf(toJpy).map((e) => e.pointer), ['/credit_currency'])
  const toCny = await patch({ credit_currency: 'CNY' })
  t.equal(toCny.statusCode, 200, toCny.body)
  t.match(toCny.json(), { credit_limit: '100.50', credit_currency: 'CNY' })
})

t.test('sums and outstanding amounts in KWD are exact to the fils', async (t) => {
  const c = await customer({ payment_terms_days: 30 })
  const amounts = ['0.001', '0.002', '1.117', '2.225']
  for (const a of amounts) {
    const res = await createOrder({ customer_id: c, currency: 'KWD', payment_method: 'credit', due_date: '2020-01-15', items: [{ product_name: 'x', quantity: 1, unit_price: a }] })
    t.equal(res.statusCode, 201, res.body)
  }
  const paid = await createOrder({ customer_id: c, currency: 'KWD', status: 'paid', items: [{ product_name: 'x', quantity: 3, unit_price: '0.333' }] })
  t.equal(paid.statusCode, 201)
  const jpy = await createOrder({ customer_id: c, currency: 'JPY', status: 'paid', items: [{ product_name: 'x', quantity: 1, unit_price: '1001' }] })
  t.equal(jpy.statusCode, 201)
  const jpy2 = await createOrder({ customer_id: c, currency: 'JPY', status: 'paid', items: [{ product_name: 'x', quantity: 1, unit_price: '1000' }] })
  t.equal(jpy2.statusCode, 201)

  const receivables = await ctx.app.inject({ url: `/v1/customers/${c}/receivables`, headers: writer })
  t.equal(receivables.statusCode, 200, receivables.body)
  t.match(receivables.json().currencies, [{ currency: 'KWD', outstanding: '3.345', overdue_outstanding: '3.345', open_orders: 4 }])

  const metrics = await ctx.app.inject({ url: `/v1/customers/${c}?include=metrics`, headers: admin })
  t.same(metrics.json().metrics.spend, [
    { currency: 'JPY', order_count: 2, total_spent: '2001', average_order_value: '1001' },
    { currency: 'KWD', order_count: 1, total_spent: '0.999', average_order_value: '0.999' },
  ], 'spend per currency at its minor units; the JPY average rounds half away from zero to the yen')
})

t.test('an order stored before amounts were checked (JPY 12.5, as the money migration leaves it) still takes payments, nothing rounded away', async (t) => {
  const c = await customer()
  const { id } = await ctx.db.insertInto('orders').values({ customer_id: c, currency: 'JPY', subtotal: '12.5', total: '12.5', amount_paid: '0', amount_refunded: '0' } as never).returning('id').executeTakeFirstOrThrow()
  const pay = await ctx.app.inject({ method: 'POST', url: `/v1/orders/${id}/payments`, headers: writer, payload: { amount: '12' } })
  t.equal(pay.statusCode, 201, pay.body)
  t.match(pay.json().order, { status: 'pending', total: '12.5', amount_paid: '12.0', amount_outstanding: '0.5' }, 'the ledger keeps the decimal the order has')
})
