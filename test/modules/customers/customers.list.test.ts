import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const admin = await ctx.auth()

// 120 customers with known names, tags, stages and creation times (several share a timestamp,
// so the id tie-breaker is exercised).
const stages = ['lead', 'first_purchase', 'repeat', 'loyal', 'at_risk', 'churned']
const rows = Array.from({ length: 120 }, (_, i) => ({
  name: `${['Alice', 'Bob', 'Chen', 'Dmitri', '王'][i % 5]} ${String(i).padStart(3, '0')}`,
  tags: i % 3 === 0 ? ['vip', 'gold'] : i % 3 === 1 ? ['vip'] : [],
  lifecycle_stage: stages[i % 6]!,
  acquisition_source: i % 2 ? 'referral' : 'organic',
  created_at: new Date(Date.UTC(2026, 0, 1) + Math.floor(i / 4) * 60_000).toISOString(),
}))
const inserted = await ctx.db.insertInto('customers').values(rows).returning(['id', 'name', 'created_at']).execute()
await ctx.db
  .insertInto('contact_points')
  .values(inserted.slice(0, 10).map((c, i) => ({ customer_id: c.id, kind: 'phone', value: `+86 139 0000 ${String(i).padStart(4, '0')}`, value_normalized: `+861390000${String(i).padStart(4, '0')}`, is_primary: true })))
  .execute()

async function all(query: string, pageSize: number) {
  const seen: Array<{ id: string; name: string; created_at: string }> = []
  let cursor: string | null = null
  let pages = 0
  do {
    const url: string = `/v1/customers?${query}&limit=${pageSize}${cursor ? `&cursor=${cursor}` : ''}`
    const res = await ctx.app.inject({ url, headers: admin })
    if (res.statusCode !== 200) throw new Error(res.body)
    const body = res.json()
    seen.push(...body.data)
    cursor = body.next_cursor
    pages++
  } while (cursor && pages < 1000)
  return seen
}

t.test('keyset pages cover every row exactly once, in order, for each sort', async (t) => {
  for (const sort of ['-created_at', 'created_at', 'name', '-name', 'created_at,-name', '-updated_at']) {
    const got = await all(`sort=${sort}`, 7)
    t.equal(got.length, 120, sort)
    t.equal(new Set(got.map((c) => c.id)).size, 120, `${sort}: no duplicates`)
  }
  const byName = await all('sort=name', 13)
  const expected = [...inserted].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1))
  const dbOrder = await sql<{ id: string }>`select id from customers order by name collate "default", id`.execute(ctx.db)
  t.same(byName.map((c) => c.id), dbOrder.rows.map((r) => r.id), 'same order as the database collation')
  t.equal(expected.length, byName.length)
  const newest = await all('sort=-created_at', 50)
  for (let i = 1; i < newest.length; i++) t.ok(newest[i - 1]!.created_at >= newest[i]!.created_at)
})

t.test('rows inserted between pages do not shift the cursor', async (t) => {
  const first = (await ctx.app.inject({ url: '/v1/customers?sort=created_at&limit=10', headers: admin })).json()
  await ctx.db.insertInto('customers').values({ name: 'Early bird', created_at: '2025-01-01T00:00:00Z' }).execute()
  const second = (await ctx.app.inject({ url: `/v1/customers?sort=created_at&limit=10&cursor=${first.next_cursor}`, headers: admin })).json()
  t.equal(second.data[0].id, inserted.slice().sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1))[10]!.id)
  await ctx.db.deleteFrom('customers').where('name', '=', 'Early bird').execute()
})

t.test('filters: tag (all of), lifecycle stage, source, created range, q', async (t) => {
  t.equal((await all('tag=vip', 50)).length, 80)
  t.equal((await all('tag=vip&tag=gold', 50)).length, 40)
  t.equal((await all('lifecycle_stage=loyal', 50)).length, 20)
  t.equal((await all('acquisition_source=referral&lifecycle_stage=repeat', 50)).length, 0, 'repeat rows are all even indexes')
  const range = await all('created_after=2026-01-01T00:01:00Z&created_before=2026-01-01T00:03:00Z', 50)
  t.equal(range.length, 8)
  t.equal((await all('q=Chen', 50)).length, 24)
  t.equal((await all('q=chen 00', 50)).length, 2, 'case-insensitive substring')
  t.equal((await all('q=王 0', 50)).length, 20)
  t.equal((await all('q=0000 0003', 50)).length, 1, 'q matches phone numbers, ignoring spaces')
  t.equal((await all('q=%25%25', 50)).length, 0, 'LIKE wildcards are literal')
})

t.test('invalid list parameters are 400s with pointers', async (t) => {
  const cases: Array<[string, string]> = [
    ['limit=0', '/limit'], ['limit=201', '/limit'], ['limit=abc', '/limit'], ['sort=password', '/sort'],
    ['cursor=garbage', '/cursor'], ['lifecycle_stage=zombie', '/lifecycle_stage'], ['created_after=yesterday', '/created_after'],
    ['q=a', '/q'], ['unknown=1', '/unknown'],
  ]
  for (const [query, ptr] of cases) {
    const res = await ctx.app.inject({ url: `/v1/customers?${query}`, headers: admin })
    t.equal(res.statusCode, 400, query)
    t.ok(res.json().errors?.some((e: { pointer: string }) => e.pointer === ptr), `${query} points at ${ptr}: ${res.body}`)
  }
  const page = (await ctx.app.inject({ url: '/v1/customers?sort=name&limit=5', headers: admin })).json()
  const otherSort = await ctx.app.inject({ url: `/v1/customers?sort=-created_at&cursor=${page.next_cursor}`, headers: admin })
  t.equal(otherSort.statusCode, 400, 'a cursor only works with the sort it came from')
})

t.test('the q search sorts the matches, it does not walk the sort index hoping to meet them', async (t) => {
  await sql`analyze customers`.execute(ctx.ownerDb)
  const plan = await sql<{ 'QUERY PLAN': string }>`
    explain select id from customers where archived_at is null and id in (select id from customers m where m.name ilike '%chen 01%')
    order by created_at desc, id desc limit 51`.execute(ctx.db)
  const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n')
  t.notMatch(text, /customers_created_idx/, text)
  t.match(text, /Sort Key: customers\.created_at DESC/, text)
})
