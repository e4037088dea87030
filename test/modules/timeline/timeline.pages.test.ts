import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const admin = await ctx.auth()
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

interface Item {
  type: string
  id: string
  occurred_at: string
  summary: Record<string, unknown>
}

async function customer(name = 'Timeline customer'): Promise<string> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name } })
  return res.json().id
}

const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString()

/** Orders through the API, interactions and feedback as rows (their routes live in other modules). */
async function history(customerId: string, n: number, opts: { sameTime?: boolean } = {}) {
  for (let k = 0; k < n; k++) {
    const minute = opts.sameTime ? 0 : k * 3
    const res = await ctx.app.inject({
      method: 'POST', url: '/v1/orders', headers: admin,
      payload: { customer_id: customerId, currency: 'USD', ordered_at: at(minute), items: [{ product_name: 'Tea', quantity: 1, unit_price: '1.00' }] },
    })
    t.equal(res.statusCode, 201, res.body)
    await ctx.db.insertInto('interactions').values({ customer_id: customerId, channel: 'email', occurred_at: at(opts.sameTime ? 0 : k * 3 + 1) }).execute()
    if (k % 2 === 0) {
      await ctx.db.insertInto('feedback').values({ customer_id: customerId, kind: 'praise', submitted_at: at(opts.sameTime ? 0 : k * 3 + 2) }).execute()
    }
  }
}

async function page(customerId: string, query = '', headers = admin) {
  return ctx.app.inject({ method: 'GET', url: `/v1/customers/${customerId}/timeline${query}`, headers })
}

/** Every item, following next_cursor with the given page size. */
async function walk(customerId: string, limit: number, extra = '') {
  const items: Item[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const res = await page(customerId, `?limit=${limit}${extra}${cursor ? `&cursor=${cursor}` : ''}`)
    t.equal(res.statusCode, 200, res.body)
    const body = res.json() as { data: Item[]; next_cursor: string | null }
    t.ok(body.data.length <= limit)
    items.push(...body.data)
    cursor = body.next_cursor
    pages++
  } while (cursor && pages < 100)
  return items
}

const newestFirst = (a: Item, b: Item) => (a.occurred_at === b.occurred_at ? (a.id < b.id ? 1 : -1) : a.occurred_at < b.occurred_at ? 1 : -1)

t.test('the sources merge newest first, and pages of any size walk the same sequence without gaps or repeats', async (t) => {
  const c = await customer()
  await history(c, 12)
  await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c}`, headers: admin, payload: { occupation: 'chef' } })
  const all = await walk(c, 200)
  t.equal(all.length, 12 + 12 + 6 + 2, 'orders, interactions, feedback, two profile changes (create, patch)')
  t.same(all, [...all].sort(newestFirst), 'newest first, id breaking ties')
  t.same(new Set(all.map((i) => i.type)), new Set(['order', 'interaction', 'feedback', 'profile_change']))
  for (const limit of [1, 2, 5, 7]) t.same(await walk(c, limit), all, `pages of ${limit}`)
  const first = (await page(c, '?limit=3')).json()
  t.same(first.data.map((i: Item) => i.id), all.slice(0, 3).map((i) => i.id))
  t.type(first.next_cursor, 'string')
})

t.test('events at the same instant page by id across sources', async (t) => {
  const c = await customer()
  await history(c, 6, { sameTime: true })
  const all = await walk(c, 200, '&types=order,interaction,feedback')
  t.equal(all.length, 6 + 6 + 3)
  t.same(all, [...all].sort(newestFirst))
  for (const limit of [1, 4]) t.same(await walk(c, limit, '&types=order,interaction,feedback'), all, `pages of ${limit}`)
})

t.test('a customer with many events: each page holds the newest after the cursor', async (t) => {
  const c = await customer()
  await history(c, 40)
  const all = await walk(c, 200, '&types=order,interaction')
  t.equal(all.length, 80)
  t.same(await walk(c, 9, '&types=order,interaction'), all)
  t.same(all, [...all].sort(newestFirst))
})

t.test('types filter the sources; tokens see only the sources they have a read scope for', async (t) => {
  const c = await customer()
  await history(c, 3)
  const orders = (await page(c, '?types=order')).json().data as Item[]
  t.same(orders.map((i) => i.type), ['order', 'order', 'order'])
  t.match(orders[0]!.summary, { status: 'pending', currency: 'USD', total: '1.00' })
  const limited = (await page(c, '', await ctx.auth('customers:read'))).json().data as Item[]
  t.same([...new Set(limited.map((i) => i.type))], ['profile_change'])
  const none = await page(c, '?types=order', await ctx.auth('customers:read'))
  t.equal(none.statusCode, 200)
  t.same(none.json(), { data: [], next_cursor: null })
  t.equal((await page(c, '?types=order,nope')).statusCode, 400)
})

t.test('archived rows leave the timeline; a customer without events has an empty one; unknown customers are 404', async (t) => {
  const c = await customer()
  await history(c, 2)
  await ctx.db.updateTable('interactions').set({ archived_at: new Date().toISOString() }).where('customer_id', '=', c).execute()
  const items = (await page(c, '?types=order,interaction,feedback')).json().data as Item[]
  t.notOk(items.some((i) => i.type === 'interaction'))
  t.equal(items.length, 3)
  const empty = await customer('Quiet')
  t.same((await page(empty, '?types=order,interaction,feedback')).json(), { data: [], next_cursor: null })
  const missing = await page(UNKNOWN)
  t.equal(missing.statusCode, 404)
  t.match(missing.headers['content-type'], /problem\+json/)
  t.equal((await page(UNKNOWN, '', await ctx.auth('customers:read'))).statusCode, 404, 'profile changes only')
  t.equal((await page(UNKNOWN, '?types=order', await ctx.auth('customers:read'))).statusCode, 404, 'no visible source at all')
})
