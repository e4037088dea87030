import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const admin = await ctx.auth()
const writer = await ctx.auth('orders:write orders:read')
const reader = await ctx.auth('orders:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

async function customer(fields: Record<string, unknown> = {}) {
  const row = await ctx.db.insertInto('customers').values({ name: 'Test customer', ...fields } as never).returning('id').executeTakeFirstOrThrow()
  return row.id
}

const item = (over: Record<string, unknown> = {}) => ({ sku: 'TEA-1', product_name: 'Oolong', category: 'tea', quantity: 3, unit_price: '33.33', ...over })

async function post(body: Record<string, unknown>, headers: Record<string, string> = writer) {
  return ctx.app.inject({ method: 'POST', url: '/v1/orders', headers, payload: body })
}

/** Audit rows of the order tables (customer metrics triggers may audit customer rows too). */
async function auditFor(requestId: string) {
  return ctx.db
    .selectFrom('audit_events')
    .selectAll()
    .where('request_id', '=', requestId)
    .where('entity', 'in', ['orders', 'order_items', 'order_payments'])
    .orderBy('occurred_at')
    .orderBy('id')
    .execute()
}

const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer).sort()

t.test('create computes the totals to the cent, answers 201 + Location + ETag, and audits each row', async (t) => {
  const c = await customer()
  const res = await post({
    customer_id: c, currency: 'CNY', channel: 'online', payment_method: 'card', tax_rate: '8.875', shipping: '10.00',
    items: [item(), item({ sku: 'CUP-1', product_name: 'Cup', quantity: 2, unit_price: '5.5', discount: '1.00' })],
  })
  t.equal(res.statusCode, 201, res.body)
  const o = res.json()
  t.equal(res.headers.location, `/v1/orders/${o.id}`)
  t.equal(res.headers.etag, '"1"')
  t.match(o.order_number, /^ORD-\d{8}$/, 'server-generated order number')
  // 3 × 33.33 = 99.99; 2 × 5.50 = 11.00 - 1.00; taxable 109.99 × 8.875 % = 9.7616… → 9.76
  t.same(o.items.map((i: { line_total: string }) => i.line_total), ['99.99', '10.00'])
  t.equal(o.items[1].unit_price, '5.50')
  t.match(o, {
    status: 'pending', subtotal: '110.99', discount_total: '1.00', tax_total: '9.76', shipping_total: '10.00', total: '129.75',
    amount_paid: '0.00', amount_refunded: '0.00', amount_outstanding: '129.75', tax_rate: '8.8750', overdue: false, payments: [],
  })
  const audit = await auditFor(res.headers['x-request-id'] as string)
  t.same(audit.map((a) => `${a.action} ${a.entity}`), ['insert orders', 'insert order_items', 'insert order_items'])
  t.ok(audit.every((a) => a.actor === 'user:test' && a.route === 'POST /v1/orders'))
})

t.test('big values stay exact and overflowing ones are refused', async (t) => {
  const c = await customer()
  const big = await post({ customer_id: c, currency: 'USD', items: [item({ quantity: 9, unit_price: '111111111111.11' })] })
  t.equal(big.statusCode, 201, big.body)
  t.equal(big.json().total, '999999999999.99')
  const over = await post({ customer_id: c, currency: 'USD', items: [item({ quantity: 10, unit_price: '111111111111.11' })] })
  t.equal(over.statusCode, 422)
  t.same(pointers(over), ['/items/0/quantity'])
  const sum = await post({ customer_id: c, currency: 'USD', items: [item({ quantity: 9, unit_price: '111111111111.11' })], shipping: '0.01' })
  t.equal(sum.statusCode, 422)
  t.same(pointers(sum), ['/items'])
  const discount = await post({ customer_id: c, currency: 'USD', items: [item({ quantity: 1, unit_price: '1.00', discount: '1.01' })] })
  t.equal(discount.statusCode, 422)
  t.same(pointers(discount), ['/items/0/discount'])
})

t.test('bad input is a 400 with a pointer per bad field; totals cannot be sent', async (t) => {
  const c = await customer()
  const totals = await post({ customer_id: c, currency: 'CNY', items: [item()], total: '1.00', subtotal: '1.00', amount_paid: '1.00' })
  t.equal(totals.statusCode, 400)
  t.same(pointers(totals), ['/amount_paid', '/subtotal', '/total'])
  const bad = await post({
    customer_id: 'nope', currency: 'cny', channel: 'fax', items: [item({ quantity: 0, unit_price: 33.33, line_total: '1' }), item({ unit_price: '1.2345' })],
  })
  t.equal(bad.statusCode, 400)
  t.same(pointers(bad), ['/channel', '/currency', '/customer_id', '/items/0/line_total', '/items/0/quantity', '/items/0/unit_price', '/items/1/unit_price'])
  const empty = await post({ customer_id: c, currency: 'CNY', items: [] })
  t.same(pointers(empty), ['/items'])
  const rate = await post({ customer_id: c, currency: 'CNY', items: [item()], tax_rate: '100.5' })
  t.equal(rate.statusCode, 400)
  t.same(pointers(rate), ['/tax_rate'])
  const unknownCustomer = await post({ customer_id: UNKNOWN, currency: 'CNY', items: [item()] })
  t.equal(unknownCustomer.statusCode, 422)
  t.same(pointers(unknownCustomer), ['/customer_id'])
  const archived = await customer({ archived_at: new Date().toISOString() })
  t.equal((await post({ customer_id: archived, currency: 'CNY', items: [item()] })).statusCode, 422, 'archived customers place no orders')
  t.equal(await ctx.count('orders'), 2, 'only the two orders of the previous tests exist')
})

t.test('external_ref upsert: 201 then 200 on the same order, never a duplicate', async (t) => {
  const c = await customer()
  const first = await post({ external_ref: 'shop-1', customer_id: c, currency: 'CNY', items: [item()] })
  t.equal(first.statusCode, 201)
  const again = await post({ external_ref: 'shop-1', customer_id: c, currency: 'CNY', items: [item({ quantity: 1 })], notes: 'second sync' })
  t.equal(again.statusCode, 200, again.body)
  t.equal(again.headers.location, undefined)
  t.equal(again.json().id, first.json().id)
  t.match(again.json(), { total: '33.33', notes: 'second sync', version: 2 })
  const same = await post({ external_ref: 'shop-1', customer_id: c, currency: 'CNY', items: [item({ quantity: 1 })], notes: 'second sync' })
  t.equal(same.statusCode, 200)
  t.equal(same.json().version, 2, 'an identical re-sync changes nothing')
  t.same(await auditFor(same.headers['x-request-id'] as string), [], 'and writes no audit rows')
  const count = await ctx.db.selectFrom('orders').select((eb) => eb.fn.countAll<number>().as('n')).where('external_ref', '=', 'shop-1').executeTakeFirstOrThrow()
  t.equal(count.n, 1)
  const paid = await post({ external_ref: 'shop-1', customer_id: c, currency: 'CNY', items: [item({ quantity: 1 })], status: 'fulfilled' })
  t.equal(paid.statusCode, 422, 'upserts follow the status machine: pending cannot jump to fulfilled')
  t.same(pointers(paid), ['/status'])
  const other = await post({ external_ref: 'shop-1', customer_id: await customer(), currency: 'CNY', items: [item()] })
  t.equal(other.statusCode, 422)
  t.same(pointers(other), ['/customer_id'])
  const number = await post({ customer_id: c, currency: 'CNY', items: [item()], order_number: first.json().order_number })
  t.equal(number.statusCode, 409)
  t.same(pointers(number), ['/order_number'])
})

t.test('get: ETag, If-None-Match, 404 and 400', async (t) => {
  const o = (await post({ customer_id: await customer(), currency: 'EUR', items: [item()] })).json()
  const res = await ctx.app.inject({ url: `/v1/orders/${o.id}`, headers: reader })
  t.equal(res.statusCode, 200)
  t.equal(res.headers.etag, '"1"')
  t.same(res.json(), o)
  t.equal((await ctx.app.inject({ url: `/v1/orders/${o.id}`, headers: { ...reader, 'if-none-match': '"1"' } })).statusCode, 304)
  const missing = await ctx.app.inject({ url: `/v1/orders/${UNKNOWN}`, headers: reader })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal((await ctx.app.inject({ url: '/v1/orders/nope', headers: reader })).statusCode, 400)
  t.equal((await ctx.app.inject({ url: `/v1/orders/${o.id}`, headers: await ctx.auth('customers:read') })).statusCode, 403)
  t.equal((await post({ customer_id: await customer(), currency: 'EUR', items: [item()] }, reader)).statusCode, 403)
})

t.test('patch: merge patch, items replaced while pending, If-Match 412, version in the WHERE', async (t) => {
  const o = (await post({ customer_id: await customer(), currency: 'CNY', items: [item()], notes: 'n' })).json()
  const url = `/v1/orders/${o.id}`
  const stale = await ctx.app.inject({ method: 'PATCH', url, headers: { ...writer, 'if-match': '"7"' }, payload: { notes: 'x' } })
  t.equal(stale.statusCode, 412)
  const res = await ctx.app.inject({
    method: 'PATCH', url, headers: { ...writer, 'if-match': '"1"', 'content-type': 'application/merge-patch+json' },
    payload: JSON.stringify({ notes: null, due_date: '2030-01-31', items: [item({ quantity: 1, unit_price: '10.00' }), item({ sku: null, quantity: 2, unit_price: '0.05' })], shipping: '4.90' }),
  })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers.etag, '"2"')
  t.match(res.json(), { notes: null, due_date: '2030-01-31', subtotal: '10.10', shipping_total: '4.90', total: '15.00', amount_outstanding: '15.00' })
  t.equal(res.json().items.length, 2)
  t.equal(res.json().items[1].sku, null)
  const audit = await auditFor(res.headers['x-request-id'] as string)
  t.same(audit.map((a) => `${a.action} ${a.entity}`).sort(), ['delete order_items', 'insert order_items', 'insert order_items', 'update orders'])
  t.equal((await ctx.app.inject({ method: 'PATCH', url, headers: { ...writer, 'if-match': '"1"' }, payload: { notes: 'late' } })).statusCode, 412, 'the old ETag is stale now')
  const renamed = await ctx.app.inject({ method: 'PATCH', url, headers: writer, payload: { items: [item({ quantity: 1, unit_price: '10.00', product_name: 'Renamed' }), item({ sku: null, quantity: 2, unit_price: '0.05' })] } })
  t.equal(renamed.json().version, 3, 'changing only an item still moves the ETag')
  t.equal((await ctx.app.inject({ method: 'PATCH', url, headers: writer, payload: {} })).statusCode, 400, 'an empty patch is a 400')
  const readOnly = await ctx.app.inject({ method: 'PATCH', url, headers: writer, payload: { total: '1.00', customer_id: o.customer_id, version: 1 } })
  t.same(pointers(readOnly), ['/customer_id', '/total', '/version'])
  t.equal((await ctx.app.inject({ method: 'PATCH', url: `/v1/orders/${UNKNOWN}`, headers: writer, payload: { notes: 'x' } })).statusCode, 404)
  t.equal((await ctx.app.inject({ method: 'PATCH', url, headers: writer, payload: { status: 'paid' } })).json().status, 'paid')
  const frozen = await ctx.app.inject({ method: 'PATCH', url, headers: writer, payload: { items: [item()], currency: 'USD', tax_rate: '1' } })
  t.equal(frozen.statusCode, 422, 'items, currency and tax change only while pending')
  t.same(pointers(frozen), ['/currency', '/items', '/tax_rate'])
  const sameItems = await ctx.app.inject({ method: 'PATCH', url, headers: writer, payload: { items: renamed.json().items.map(({ sku, product_name, category, quantity, unit_price, discount }: Record<string, unknown>) => ({ sku, product_name, category, quantity, unit_price, discount })), notes: 'ok' } })
  t.equal(sameItems.statusCode, 200, 'sending the current items is no change')
})

t.test('delete archives (204), hides from lists, is idempotent, honours If-Match', async (t) => {
  const c = await customer()
  const o = (await post({ customer_id: c, currency: 'CNY', items: [item()] })).json()
  const url = `/v1/orders/${o.id}`
  t.equal((await ctx.app.inject({ method: 'DELETE', url, headers: { ...writer, 'if-match': '"9"' } })).statusCode, 412)
  const del = await ctx.app.inject({ method: 'DELETE', url, headers: { ...writer, 'if-match': '"1"' } })
  t.equal(del.statusCode, 204)
  t.same((await auditFor(del.headers['x-request-id'] as string)).map((a) => `${a.action} ${a.entity}`), ['update orders'])
  t.equal((await ctx.app.inject({ method: 'DELETE', url, headers: writer })).statusCode, 204)
  t.ok((await ctx.app.inject({ url, headers: reader })).json().archived_at, 'still readable by id')
  t.same((await ctx.app.inject({ url: `/v1/customers/${c}/orders`, headers: reader })).json().data, [])
  t.equal((await ctx.app.inject({ url: `/v1/customers/${c}/orders?archived=true`, headers: reader })).json().data[0].id, o.id)
  t.equal((await ctx.app.inject({ method: 'DELETE', url: `/v1/orders/${UNKNOWN}`, headers: writer })).statusCode, 404)
})

t.test('list: filters, sort whitelist, keyset pagination without gaps or repeats', async (t) => {
  const c = await customer()
  const ids: string[] = []
  for (let i = 0; i < 7; i++) {
    const res = await post({
      customer_id: c, currency: 'CNY', channel: i % 2 ? 'store' : 'online', status: i === 6 ? 'paid' : 'pending',
      ordered_at: `2026-01-0${i + 1}T10:00:00Z`, items: [item({ quantity: 1, unit_price: `${(i % 3) + 1}.00` })],
    })
    ids.push(res.json().id)
  }
  const page = async (qs: string, url = `/v1/customers/${c}/orders`) => {
    const res = await ctx.app.inject({ url: `${url}?${qs}`, headers: reader })
    t.equal(res.statusCode, 200, res.body)
    return res.json() as { data: Array<{ id: string; total: string }>; next_cursor: string | null }
  }
  const seen: string[] = []
  let cursor: string | null = null
  do {
    const p = await page(`limit=3${cursor ? `&cursor=${cursor}` : ''}`)
    seen.push(...p.data.map((o) => o.id))
    cursor = p.next_cursor
  } while (cursor)
  t.same(seen, [...ids].reverse(), 'default -ordered_at, every order once')
  const byTotal = await page('sort=total,-ordered_at&limit=10')
  t.same(byTotal.data.map((o) => o.total), ['1.00', '1.00', '1.00', '2.00', '2.00', '3.00', '3.00'])
  const p1 = await page('sort=total&limit=4')
  const p2 = await page(`sort=total&limit=4&cursor=${p1.next_cursor}`)
  t.same([...p1.data, ...p2.data].map((o) => o.total), ['1.00', '1.00', '1.00', '2.00', '2.00', '3.00', '3.00'], 'numeric keyset')
  t.equal((await page('status=paid')).data.length, 1)
  t.equal((await page('channel=store')).data.length, 3)
  t.equal((await page('ordered_after=2026-01-03T00:00:00Z&ordered_before=2026-01-05T00:00:00Z')).data.length, 2)
  t.equal((await page(`customer_id=${c}&limit=200`, '/v1/orders')).data.length, 7)
  const badSort = await ctx.app.inject({ url: `/v1/orders?sort=notes`, headers: reader })
  t.equal(badSort.statusCode, 400)
  t.same(pointers(badSort), ['/sort'])
  const badCursor = await ctx.app.inject({ url: `/v1/orders?sort=total&cursor=${p1.next_cursor}x`, headers: reader })
  t.equal(badCursor.statusCode, 400)
  t.equal((await ctx.app.inject({ url: `/v1/orders?sort=created_at&cursor=${p1.next_cursor}`, headers: reader })).statusCode, 400, 'a cursor belongs to its sort')
  t.equal((await ctx.app.inject({ url: `/v1/customers/${UNKNOWN}/orders`, headers: reader })).statusCode, 404)
  t.equal((await ctx.app.inject({ url: `/v1/orders?status=lost`, headers: reader })).statusCode, 400)
})

t.test('the admin scope and orders:* also grant access', async (t) => {
  const o = (await post({ customer_id: await customer(), currency: 'CNY', items: [item()] }, admin)).json()
  t.equal((await ctx.app.inject({ url: `/v1/orders/${o.id}`, headers: await ctx.auth('orders:*') })).statusCode, 200)
})
