import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const reader = await ctx.auth('interactions:read')
const writer = await ctx.auth('interactions:write interactions:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

interface Item { id: string; customer_id: string; channel: string; direction: string; occurred_at: string; follow_up_due: boolean; follow_up_on: string | null }
interface Page { data: Item[]; next_cursor: string | null }

async function customer(name: string) {
  return (await ctx.db.insertInto('customers').values({ name } as never).returning('id').executeTakeFirstOrThrow()).id
}

async function create(body: Record<string, unknown>) {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers: writer, payload: body })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json() as Item
}

async function list(query: string, path = '/v1/interactions'): Promise<Page> {
  const res = await ctx.app.inject({ url: `${path}?${query}`, headers: reader })
  if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.body}`)
  return res.json()
}

async function all(query: string, path = '/v1/interactions', limit = 3): Promise<Item[]> {
  const out: Item[] = []
  let cursor: string | null = null
  do {
    const page: Page = await list(`${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, path)
    out.push(...page.data)
    cursor = page.next_cursor
  } while (cursor)
  return out
}

const ids = (items: Array<{ id: string }>) => items.map((i) => i.id)
const at = (day: number, hour = 9) => `2026-03-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:00:00.000Z`

const alice = await customer('Alice')
const bob = await customer('Bob')
const channels = ['phone', 'email', 'chat', 'meeting'] as const
const directions = ['inbound', 'outbound', 'internal'] as const
const seeded: Item[] = []
for (let k = 0; k < 24; k++) {
  // Days 1..12, two per day, so many rows share an occurred_at with another customer's row.
  seeded.push(await create({
    customer_id: k % 2 === 0 ? alice : bob, channel: channels[k % 4], direction: directions[k % 3], occurred_at: at(1 + Math.floor(k / 2)),
  }))
}

/** The seeded rows, newest first with id as the tie-breaker (the API's default order). */
const newestFirst = (rows: Item[]) => [...rows].sort((a, b) => (a.occurred_at === b.occurred_at ? (a.id < b.id ? 1 : -1) : a.occurred_at < b.occurred_at ? 1 : -1))

t.test('default order is -occurred_at then id; pages chain through next_cursor', async (t) => {
  const got = await all('')
  t.same(ids(got), ids(newestFirst(seeded)))
  const first = await list('limit=5')
  t.equal(first.data.length, 5)
  t.type(first.next_cursor, 'string')
  const asc = await all('sort=occurred_at', '/v1/interactions', 7)
  t.same(ids(asc), ids(newestFirst(seeded)).reverse(), 'ascending is the exact reverse')
  const last = await list('limit=24')
  t.equal(last.next_cursor, null, 'no cursor when the page holds everything')
})

t.test('filters: customer, channel, direction, time range, combined', async (t) => {
  t.same(ids(await all(`customer_id=${alice}`)), ids(newestFirst(seeded.filter((i) => i.customer_id === alice))))
  t.same(ids(await all('channel=email')), ids(newestFirst(seeded.filter((i) => i.channel === 'email'))))
  t.same(ids(await all('direction=internal')), ids(newestFirst(seeded.filter((i) => i.direction === 'internal'))))
  const ranged = await all(`occurred_after=${encodeURIComponent(at(3))}&occurred_before=${encodeURIComponent(at(6))}`)
  t.same(ids(ranged), ids(newestFirst(seeded.filter((i) => i.occurred_at >= at(3) && i.occurred_at < at(6)))), 'after is inclusive, before exclusive')
  t.equal(ranged.length, 6)
  const combined = await all(`customer_id=${bob}&channel=email&occurred_before=${encodeURIComponent(at(9))}`)
  t.same(ids(combined), ids(newestFirst(seeded.filter((i) => i.customer_id === bob && i.channel === 'email' && i.occurred_at < at(9)))))
  t.ok(combined.length > 0)
})

t.test('customer sub-list: same list for one customer; 404 for an unknown customer', async (t) => {
  const path = `/v1/customers/${bob}/interactions`
  t.same(ids(await all('', path)), ids(newestFirst(seeded.filter((i) => i.customer_id === bob))))
  t.same(ids(await all('channel=phone', path)), [], 'bob has no phone interactions (k odd never maps to phone)')
  t.same(ids(await all('channel=email', path)), ids(newestFirst(seeded.filter((i) => i.customer_id === bob && i.channel === 'email'))))
  const missing = await ctx.app.inject({ url: `/v1/customers/${UNKNOWN}/interactions`, headers: reader })
  t.equal(missing.statusCode, 404)
  t.match(missing.json().detail, /customer/)
  t.equal((await ctx.app.inject({ url: `/v1/customers/${bob}/interactions?customer_id=${alice}`, headers: reader })).statusCode, 400, 'no customer_id filter on the sub-list')
  t.equal((await ctx.app.inject({ url: `/v1/customers/${bob}/interactions`, headers: await ctx.auth('customers:read') })).statusCode, 403)
})

t.test('bad list parameters are 400s with pointers', async (t) => {
  const check = async (query: string, pointer: string) => {
    const res = await ctx.app.inject({ url: `/v1/interactions?${query}`, headers: reader })
    t.equal(res.statusCode, 400, query)
    t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), [pointer], query)
  }
  await check('sort=subject', '/sort')
  await check('sort=follow_up_on', '/sort')
  await check('sort=created_at', '/sort')
  await check('limit=0', '/limit')
  await check('limit=201', '/limit')
  await check('channel=fax', '/channel')
  await check('occurred_after=yesterday', '/occurred_after')
  await check('follow_up_due=maybe', '/follow_up_due')
  await check('cursor=garbage', '/cursor')
  const page = await list('limit=2')
  await check(`sort=occurred_at&cursor=${page.next_cursor}`, '/cursor')
  await check('colour=red', '/colour')
})

t.test('pagination while rows are inserted: every row present before the walk is seen exactly once', async (t) => {
  const c = await customer('Walker')
  const base: Item[] = []
  for (let k = 0; k < 30; k++) base.push(await create({ customer_id: c, channel: 'sms', occurred_at: at(1 + (k % 10), 10) }))
  const seen: string[] = []
  let cursor: string | null = null
  let inserted = 0
  do {
    const page: Page = await list(`limit=4${cursor ? `&cursor=${cursor}` : ''}`, `/v1/customers/${c}/interactions`)
    seen.push(...ids(page.data))
    cursor = page.next_cursor
    // Between pages: one row newer than everything, one at the same instant as the page's last row, one older than everything.
    const last = page.data[page.data.length - 1]
    if (last) {
      await create({ customer_id: c, channel: 'sms', occurred_at: '2026-04-01T00:00:00Z' })
      await create({ customer_id: c, channel: 'sms', occurred_at: last.occurred_at })
      await create({ customer_id: c, channel: 'sms', occurred_at: '2026-02-01T00:00:00Z' })
      inserted += 3
    }
  } while (cursor)
  t.equal(new Set(seen).size, seen.length, 'no duplicates')
  const missing = ids(base).filter((id) => !seen.includes(id))
  t.same(missing, [], 'no gaps')
  t.ok(inserted >= 24)
  // The walk is in order even with the rows that arrived during it.
  const rows = await ctx.db.selectFrom('interactions').select(['id', 'occurred_at']).where('id', 'in', seen).execute()
  const byId = new Map(rows.map((r) => [r.id, r.occurred_at]))
  const walked = seen.map((id) => ({ id, occurred_at: byId.get(id)! }))
  t.same(seen, ids(newestFirst(walked as Item[])), 'the walk is ordered by -occurred_at, id')
})

t.test('follow_up_due: follow_up_on today (UTC) or earlier, not done, not archived', async (t) => {
  const c = await customer('Follow-up Fay')
  const { rows } = await sql<{ yesterday: string; today: string; tomorrow: string }>`
    select (current_date - 1)::text as yesterday, current_date::text as today, (current_date + 1)::text as tomorrow`.execute(ctx.db)
  const { yesterday, today, tomorrow } = rows[0]!
  const overdue = await create({ customer_id: c, channel: 'phone', follow_up_on: yesterday, occurred_at: at(20) })
  const dueToday = await create({ customer_id: c, channel: 'email', follow_up_on: today, occurred_at: at(21) })
  const future = await create({ customer_id: c, channel: 'phone', follow_up_on: tomorrow, occurred_at: at(22) })
  const done = await create({ customer_id: c, channel: 'phone', follow_up_on: yesterday, follow_up_done: true, occurred_at: at(23) })
  const none = await create({ customer_id: c, channel: 'phone', occurred_at: at(24) })
  const archived = await create({ customer_id: c, channel: 'phone', follow_up_on: yesterday, occurred_at: at(25) })
  await ctx.app.inject({ method: 'DELETE', url: `/v1/interactions/${archived.id}`, headers: writer })

  t.same(overdue.follow_up_due, true)
  t.same(dueToday.follow_up_due, true)
  t.same([future.follow_up_due, done.follow_up_due, none.follow_up_due], [false, false, false])
  const path = `/v1/customers/${c}/interactions`
  t.same(ids(await all('follow_up_due=true', path)), [dueToday.id, overdue.id])
  t.same(ids(await all('follow_up_due=false', path)), [none.id, done.id, future.id])
  t.same(ids(await all('follow_up_due=true&channel=phone', path)), [overdue.id])
  const everyone = ids(await all('follow_up_due=true', '/v1/interactions', 50))
  t.same(everyone, [dueToday.id, overdue.id], 'the global work list holds only these two')
  t.same(ids(await all('follow_up_due=true&archived=true', path)), [archived.id], 'archived follow-ups only with archived=true')
  t.same(ids(await all('follow_up_due=true&sort=follow_up_on', path, 1)), [overdue.id, dueToday.id], 'the work list, oldest due first, one per page')
  t.same(ids(await all('follow_up_due=true&sort=-follow_up_on,-occurred_at', path, 1)), [dueToday.id, overdue.id])
  for (const query of ['sort=follow_up_on', 'follow_up_due=false&sort=-follow_up_on']) {
    const res = await ctx.app.inject({ url: `${path}?${query}`, headers: reader })
    t.equal(res.statusCode, 400, query)
    t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), ['/sort'])
  }

  const res = await ctx.app.inject({
    method: 'PATCH', url: `/v1/interactions/${overdue.id}`, headers: writer, payload: { follow_up_done: true, outcome: 'resolved' },
  })
  t.equal(res.json().follow_up_due, false, 'done is no longer due')
  t.same(ids(await all('follow_up_due=true', path)), [dueToday.id])
  const reopened = await ctx.app.inject({ method: 'PATCH', url: `/v1/interactions/${future.id}`, headers: writer, payload: { follow_up_on: today } })
  t.equal(reopened.json().follow_up_due, true, 'moving the date to today makes it due')
  t.same(ids(await all('follow_up_due=true', path)), [future.id, dueToday.id])
})
