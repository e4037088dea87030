import t from 'tap'
import { Kysely, PostgresDialect } from 'kysely'
import { setup, buildTestApp } from '../../helpers/app.js'
import { createPool } from '../../../src/db/database.js'
import { scopedPool } from '../../../src/db/scope.js'
import type { Database } from '../../../src/db/rows.js'

const ctx = await setup()
const ALL = 'customers:read orders:read interactions:read feedback:read'
const everything = await ctx.auth(ALL)
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

interface Item { type: string; id: string; occurred_at: string; summary: Record<string, unknown> }
interface Page { data: Item[]; next_cursor: string | null }

async function newCustomer(name: string) {
  return (await ctx.db.insertInto('customers').values({ name } as never).returning('id').executeTakeFirstOrThrow()).id
}

const customerId = await newCustomer('Timeline')
const other = await newCustomer('Someone else')

// Two profile changes after the insert; their audit times are the instants the other sources tie with.
await ctx.db.updateTable('customers').set({ occupation: 'teacher' }).where('id', '=', customerId).execute()
await ctx.db.updateTable('customers').set({ company: 'Acme', job_title: 'CTO' }).where('id', '=', customerId).execute()
const audits = await ctx.db.selectFrom('audit_events').select(['id', 'occurred_at']).where('entity', '=', 'customers').where('entity_id', '=', customerId).orderBy('occurred_at').orderBy('id').execute()
const [auditInsert, , auditLast] = audits as [(typeof audits)[0], (typeof audits)[0], (typeof audits)[0]]

const T1 = '2026-01-10T10:00:00.000Z'
const T2 = '2026-01-11T10:00:00.123Z'
const T3 = '2026-01-12T10:00:00.000Z'

async function order(customer: string, at: string, archived = false) {
  return (await ctx.db.insertInto('orders').values({ customer_id: customer, currency: 'CNY', subtotal: '0.00', total: '0.00', ordered_at: at, ...(archived ? { archived_at: at } : {}) } as never).returning('id').executeTakeFirstOrThrow()).id
}
async function interaction(customer: string, at: string, archived = false) {
  return (await ctx.db.insertInto('interactions').values({ customer_id: customer, channel: 'phone', subject: 'Call', occurred_at: at, ...(archived ? { archived_at: at } : {}) }).returning('id').executeTakeFirstOrThrow()).id
}
async function feedback(customer: string, at: string, archived = false) {
  return (await ctx.db.insertInto('feedback').values({ customer_id: customer, kind: 'survey', survey_type: 'nps', score: 9, submitted_at: at, ...(archived ? { archived_at: at } : {}) }).returning('id').executeTakeFirstOrThrow()).id
}

// Ties: T1 and T2 hold one of each source; the last profile change's instant holds one of each too.
for (const at of [T1, T2, T3, auditLast.occurred_at]) {
  await order(customerId, at)
  await interaction(customerId, at)
  await feedback(customerId, at)
}
await order(customerId, T1)
await interaction(customerId, T2)
// Archived items and another customer's items never show.
await order(customerId, T3, true)
await interaction(customerId, T3, true)
await feedback(customerId, T3, true)
await order(other, T1)
await interaction(other, T2)
await feedback(other, T3)

/** The expected timeline, computed from the raw tables: newest first, id descending on ties. */
async function expected(types: readonly string[] = ['order', 'interaction', 'feedback', 'profile_change']): Promise<Array<[string, string, string]>> {
  const rows: Array<[string, string, string]> = []
  if (types.includes('order')) {
    for (const r of await ctx.db.selectFrom('orders').select(['id', 'ordered_at']).where('customer_id', '=', customerId).where('archived_at', 'is', null).execute()) rows.push(['order', r.id, r.ordered_at])
  }
  if (types.includes('interaction')) {
    for (const r of await ctx.db.selectFrom('interactions').select(['id', 'occurred_at']).where('customer_id', '=', customerId).where('archived_at', 'is', null).execute()) rows.push(['interaction', r.id, r.occurred_at])
  }
  if (types.includes('feedback')) {
    for (const r of await ctx.db.selectFrom('feedback').select(['id', 'submitted_at']).where('customer_id', '=', customerId).where('archived_at', 'is', null).execute()) rows.push(['feedback', r.id, r.submitted_at])
  }
  if (types.includes('profile_change')) {
    for (const r of await ctx.db.selectFrom('audit_events').select(['id', 'occurred_at']).where('entity', '=', 'customers').where('entity_id', '=', customerId).execute()) rows.push(['profile_change', r.id, r.occurred_at])
  }
  return rows.sort((x, y) => y[2].localeCompare(x[2]) || y[1].localeCompare(x[1]))
}

async function get(qs: string, headers: Record<string, string> = everything, customer = customerId) {
  return ctx.app.inject({ url: `/v1/customers/${customer}/timeline${qs ? `?${qs}` : ''}`, headers })
}

async function walk(qs: string, limit: number, headers: Record<string, string> = everything, start: string | null = null): Promise<Array<[string, string, string]>> {
  const out: Array<[string, string, string]> = []
  let cursor: string | null = start
  let pages = 0
  do {
    const res = await get(`${qs}${qs ? '&' : ''}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, headers)
    if (res.statusCode !== 200) throw new Error(res.body)
    const page = res.json() as Page
    if (page.data.length > limit) throw new Error('page larger than limit')
    out.push(...page.data.map((i): [string, string, string] => [i.type, i.id, i.occurred_at]))
    cursor = page.next_cursor
    if (++pages > 200) throw new Error('endless pagination')
  } while (cursor)
  return out
}

t.test('all four sources merged newest first, ties broken by id, whatever the page size', async (t) => {
  const want = await expected()
  t.equal(want.length, 4 * 3 + 2 + 3, 'twelve tied items, two extra, three profile changes')
  t.same(new Set(want.map((w) => w[0])), new Set(['order', 'interaction', 'feedback', 'profile_change']))
  const instants = new Map<string, number>()
  for (const w of want) instants.set(w[2], (instants.get(w[2]) ?? 0) + 1)
  t.ok([...instants.values()].filter((n) => n >= 4).length >= 3, 'several instants hold items of all sources')
  for (const limit of [1, 2, 3, 4, 5, 7, 16, 17, 200]) {
    t.same(await walk('', limit), want, `limit ${limit}: every item once, in order`)
  }
  const first = (await get('')).json() as Page
  t.equal(first.next_cursor, null, 'the default page holds everything here')
  const newest = first.data.slice(0, 4)
  t.ok(newest.every((i) => i.occurred_at === auditLast.occurred_at), 'the newest instant is the last profile change\'s')
  t.same(newest.map((i) => i.type).sort(), ['feedback', 'interaction', 'order', 'profile_change'], 'which one item of each source ties with')
  for (let i = 1; i < first.data.length; i++) {
    const [prev, cur] = [first.data[i - 1]!, first.data[i]!]
    if (prev.occurred_at === cur.occurred_at) t.ok(prev.id > cur.id, `tie at ${cur.occurred_at}: ids descend`)
    else t.ok(prev.occurred_at > cur.occurred_at, 'time descends')
  }
  t.equal(first.data[first.data.length - 1]!.occurred_at, T1, 'the oldest last')
  t.ok(first.data.findIndex((i) => i.id === auditInsert.id) < first.data.findIndex((i) => i.occurred_at === T3), 'the creation (now) before the dated items')
})

t.test('summaries: a few fields, profile changes name the changed fields only', async (t) => {
  const data = ((await get('')).json() as Page).data
  const change = data.find((i) => i.id === auditLast.id)!
  t.same(change.summary.changed_fields, ['company', 'job_title'])
  t.notOk(JSON.stringify(change.summary).includes('Acme'), 'no values of the profile')
  t.equal(data.find((i) => i.id === auditInsert.id)!.summary.action, 'insert')
  t.match(data.find((i) => i.type === 'order')!.summary, { status: 'pending', total: '0.00', currency: 'CNY' })
  t.match(data.find((i) => i.type === 'feedback')!.summary, { kind: 'survey', score: 9 })
  t.match(data.find((i) => i.type === 'interaction')!.summary, { channel: 'phone', subject: 'Call' })
})

t.test('a cursor stays correct while items are added on both sides of it', async (t) => {
  const want = await expected()
  const res = await get('limit=5')
  const p1 = res.json() as Page
  const newer = await order(customerId, '2027-01-01T00:00:00Z')
  const older = await feedback(customerId, '2025-01-01T00:00:00Z')
  t.ok(p1.next_cursor)
  const rest = await walk('', 4, everything, p1.next_cursor)
  const ids = [...p1.data.map((i) => i.id), ...rest.map((r) => r[1])]
  t.notOk(ids.includes(newer), 'a newer item is not on later pages')
  t.same(ids, [...want.map((w) => w[1]), older], 'no gaps, no repeats; the older item shows at the end')
  await ctx.db.updateTable('orders').set({ archived_at: new Date().toISOString() }).where('id', '=', newer).execute()
  await ctx.db.updateTable('feedback').set({ archived_at: new Date().toISOString() }).where('id', '=', older).execute()
})

t.test('each source needs its read scope; types= narrows further', async (t) => {
  const optional = ['orders:read', 'interactions:read', 'feedback:read'] as const
  const typeOf = { 'orders:read': 'order', 'interactions:read': 'interaction', 'feedback:read': 'feedback' } as const
  for (let mask = 0; mask < 8; mask++) {
    const scopes = optional.filter((_, i) => mask & (1 << i))
    const headers = await ctx.auth(['customers:read', ...scopes].join(' '))
    const types = ['profile_change', ...scopes.map((s) => typeOf[s])]
    t.same(await walk('', 6, headers), await expected(types), `customers:read ${scopes.join(' ')} sees ${types.join(', ')}`)
  }
  t.same(await walk('types=order,feedback', 4), await expected(['order', 'feedback']), 'types=order,feedback')
  t.same(await walk('types=profile_change', 2), await expected(['profile_change']), 'types=profile_change')
  t.same(await walk('types=interaction,interaction', 3), await expected(['interaction']), 'a repeated type counts once')
  const noOrders = await get('types=order', await ctx.auth('customers:read feedback:read'))
  t.same(noOrders.json(), { data: [], next_cursor: null }, 'a type the token cannot read is left out, not an error')
  t.same(await walk('', 5, await ctx.auth()), await expected(), 'admin sees everything')
  t.same(await walk('', 5, await ctx.auth('customers:read orders:* interactions:* feedback:*')), await expected(), 'domain:* grants read')
})

t.test('errors: unknown customer 404, bad types and cursors 400 with pointers, scope 403', async (t) => {
  t.equal((await get('', everything, UNKNOWN)).statusCode, 404)
  t.equal((await get('types=order', everything, UNKNOWN)).statusCode, 404, 'also with a types filter')
  t.equal((await get('', await ctx.auth('customers:read'), UNKNOWN)).statusCode, 404)
  t.equal((await get('cursor=garbage', everything, UNKNOWN)).statusCode, 404, 'an unknown customer is a 404 before a bad cursor is a 400')
  const quiet = await get('types=order', everything, await newCustomer('Quiet'))
  t.equal(quiet.statusCode, 200, 'a customer with no events of the types asked for has an empty timeline')
  t.same(quiet.json(), { data: [], next_cursor: null })
  t.equal((await get('', everything, 'nope')).statusCode, 400)
  t.equal((await get('', await ctx.auth('orders:read feedback:read'))).statusCode, 403, 'the timeline needs customers:read')
  const pointersOf = async (qs: string) => {
    const res = await get(qs)
    t.equal(res.statusCode, 400, `${qs}: ${res.body}`)
    return (res.json().errors ?? []).map((e: { pointer: string }) => e.pointer)
  }
  t.same(await pointersOf('types=order,tweet'), ['/types'])
  t.same(await pointersOf('types=Order'), ['/types'])
  t.same(await pointersOf('limit=0'), ['/limit'])
  t.same(await pointersOf('cursor=garbage'), ['/cursor'])
  const forge = (v: unknown[]) => Buffer.from(JSON.stringify({ s: '-occurred_at', v })).toString('base64url')
  t.same(await pointersOf(`cursor=${forge(['not a time', UNKNOWN])}`), ['/cursor'], 'a forged cursor with a bad time')
  t.same(await pointersOf(`cursor=${forge([T1, 'not-a-uuid'])}`), ['/cursor'], 'a forged cursor with a bad id')
  t.same(await pointersOf(`cursor=${forge([null, null])}`), ['/cursor'], 'a forged cursor with nulls')
  t.same(await pointersOf(`cursor=${forge([42, UNKNOWN])}`), ['/cursor'], 'a forged cursor with a number')
})

t.test('a page is one query, however many sources', async (t) => {
  const statements: string[] = []
  const logged = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: scopedPool(createPool({ connectionString: ctx.url, max: 2 })) }),
    log(event) {
      if (event.level === 'query') statements.push(event.query.sql)
    },
  })
  const app = await buildTestApp(logged)
  await app.ready()
  t.teardown(async () => {
    await app.close()
    await logged.destroy()
  })
  const first = await app.inject({ url: `/v1/customers/${customerId}/timeline?limit=4`, headers: everything })
  t.equal(first.statusCode, 200)
  const statementsPerPage = [statements.splice(0)]
  const cursor = (first.json() as Page).next_cursor
  t.ok(cursor)
  const second = await app.inject({ url: `/v1/customers/${customerId}/timeline?limit=4&cursor=${cursor}`, headers: everything })
  t.equal(second.statusCode, 200)
  statementsPerPage.push(statements.splice(0))
  // Resolving the token's principal (is its subject a user?) is one lookup per token, cached.
  t.ok(statementsPerPage[0]!.some((s) => /from "users"/.test(s)), 'the token\'s subject is looked up once')
  for (const [i, all] of statementsPerPage.entries()) {
    const page = all.filter((s) => !/from "users"/.test(s))
    const unions = page.filter((s) => /union all/i.test(s))
    t.equal(unions.length, 1, `page ${i + 1}: one UNION ALL query`)
    t.equal((unions[0]!.match(/union all/gi) ?? []).length, 3, 'which reads all four sources')
    t.equal(page.length, 1, `page ${i + 1}: that query alone (it also finds the customer), nothing per item`)
  }
  t.same((second.json() as Page).data.map((i) => i.id), (await expected()).slice(4, 8).map((w) => w[1]))
})
