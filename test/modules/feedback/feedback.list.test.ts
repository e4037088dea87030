import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('feedback:write feedback:read')
const reader = await ctx.auth('feedback:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

interface Item { id: string; kind: string; submitted_at: string; customer_id: string }
interface Page { data: Item[]; next_cursor: string | null }

const customer = async () => (await ctx.db.insertInto('customers').values({ name: 'Lister' } as never).returning('id').executeTakeFirstOrThrow()).id
const c = await customer()
const other = await customer()

async function post(body: Record<string, unknown>): Promise<Item> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/feedback', headers: writer, payload: body })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json()
}

async function page(qs: string, url = '/v1/feedback'): Promise<Page> {
  const res = await ctx.app.inject({ url: `${url}?${qs}`, headers: reader })
  if (res.statusCode !== 200) throw new Error(`${qs}: ${res.body}`)
  return res.json()
}

/** Every item of a list, page by page, following next_cursor. */
async function all(qs: string, url = '/v1/feedback', limit = 3): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const p: Page = await page(`${qs}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, url)
    ids.push(...p.data.map((f) => f.id))
    cursor = p.next_cursor
    if (++pages > 100) throw new Error('endless pagination')
  } while (cursor)
  return ids
}

// Twelve items over six days, two per day at the same instant (ties on the sort key), plus one of
// another customer.
const made: Array<Item & { body: Record<string, unknown> }> = []
const KINDS: Array<Record<string, unknown>> = [
  { kind: 'survey', survey_type: 'csat', score: 4 },
  { kind: 'survey', survey_type: 'nps', score: 9 },
  { kind: 'complaint', priority: 'high', assignee: 'agent:a' },
  { kind: 'complaint', priority: 'low', status: 'resolved', resolution_note: 'ok' },
  { kind: 'suggestion', assignee: 'agent:a' },
  { kind: 'review', score: 5 },
]
for (let day = 1; day <= 6; day++) {
  for (let j = 0; j < 2; j++) {
    const body = { customer_id: c, ...KINDS[(day * 2 + j) % KINDS.length], submitted_at: `2026-02-0${day}T09:00:00Z` }
    made.push({ ...(await post(body)), body })
  }
}
const foreign = await post({ customer_id: other, kind: 'praise', submitted_at: '2026-02-03T09:00:00Z' })

const expected = (filter: (f: (typeof made)[number]) => boolean, desc = true) =>
  made.filter(filter).sort((a, b) => {
    const k = a.submitted_at.localeCompare(b.submitted_at) || a.id.localeCompare(b.id)
    return desc ? -k : k
  }).map((f) => f.id)

t.test('default sort -submitted_at with id as tie-breaker; every item exactly once across pages', async (t) => {
  for (const limit of [1, 2, 3, 5, 12, 200]) {
    t.same(await all('', `/v1/customers/${c}/feedback`, limit), expected(() => true), `limit ${limit}`)
  }
  t.same(await all('sort=submitted_at', `/v1/customers/${c}/feedback`, 5), expected(() => true, false), 'ascending')
  const first = await page('limit=12', `/v1/customers/${c}/feedback`)
  t.equal(first.next_cursor, null, 'no next page when the page holds the rest')
  const global = await all(`customer_id=${c}`, '/v1/feedback', 4)
  t.same(global, expected(() => true))
  t.ok((await all('', '/v1/feedback', 50)).includes(foreign.id), 'the global list holds every customer')
  t.notOk((await all('', `/v1/customers/${c}/feedback`, 50)).includes(foreign.id))
})

t.test('a cursor stays correct while rows are inserted before and after it', async (t) => {
  const p1 = await page('limit=4', `/v1/customers/${c}/feedback`)
  const newer = await post({ customer_id: c, kind: 'praise', submitted_at: '2026-03-01T00:00:00Z' })
  const tie = await post({ customer_id: c, kind: 'praise', submitted_at: made[0]!.submitted_at })
  const rest = await all(`cursor=${p1.next_cursor}`, `/v1/customers/${c}/feedback`, 50)
  const ids = [...p1.data.map((f) => f.id), ...rest]
  t.notOk(ids.includes(newer.id), 'a newer row lands before the cursor: not repeated, not shown')
  t.same(ids.filter((id) => id !== tie.id), expected(() => true), 'no gaps and no repeats')
  t.ok(ids.includes(tie.id), 'a row inserted after the cursor position shows up')
  for (const id of [newer.id, tie.id]) await ctx.app.inject({ method: 'DELETE', url: `/v1/feedback/${id}`, headers: writer })
})

t.test('filters combine with AND', async (t) => {
  const url = `/v1/customers/${c}/feedback`
  const cases: Array<[string, (f: (typeof made)[number]) => boolean]> = [
    ['kind=survey', (f) => f.body.kind === 'survey'],
    ['kind=survey&survey_type=nps', (f) => f.body.survey_type === 'nps'],
    ['survey_type=csat', (f) => f.body.survey_type === 'csat'],
    ['kind=complaint&status=open', (f) => f.body.kind === 'complaint' && f.body.status === undefined],
    ['status=resolved', (f) => f.body.status === 'resolved'],
    ['priority=high', (f) => f.body.priority === 'high'],
    ['assignee=agent:a', (f) => f.body.assignee === 'agent:a'],
    ['assignee=agent:a&kind=suggestion', (f) => f.body.assignee === 'agent:a' && f.body.kind === 'suggestion'],
    ['submitted_after=2026-02-03T09:00:00Z&submitted_before=2026-02-05T09:00:00Z', (f) => f.submitted_at >= '2026-02-03T09' && f.submitted_at < '2026-02-05T09'],
    ['submitted_before=2026-02-02T00:00:00Z', (f) => f.submitted_at < '2026-02-02'],
    ['kind=praise', () => false],
  ]
  for (const [qs, filter] of cases) {
    const want = expected(filter)
    t.ok(want.length > 0 || qs === 'kind=praise', `${qs} selects something`)
    t.same(await all(qs, url, 2), want, qs)
  }
})

t.test('archived feedback is listed only with archived=true', async (t) => {
  const gone = made[3]!
  t.equal((await ctx.app.inject({ method: 'DELETE', url: `/v1/feedback/${gone.id}`, headers: writer })).statusCode, 204)
  const url = `/v1/customers/${c}/feedback`
  t.notOk((await all('', url, 50)).includes(gone.id))
  const archived = await all('archived=true', url, 50)
  t.ok(archived.includes(gone.id))
  t.notOk(archived.includes(made[4]!.id), 'archived=true lists only archived feedback')
})

t.test('bad list requests are 400s with pointers; unknown customers 404', async (t) => {
  const bad = async (qs: string, ptr: string) => {
    const res = await ctx.app.inject({ url: `/v1/feedback?${qs}`, headers: reader })
    t.equal(res.statusCode, 400, qs)
    t.same((res.json().errors ?? []).map((e: { pointer: string }) => e.pointer), [ptr], qs)
  }
  await bad('sort=score', '/sort')
  await bad('kind=rant', '/kind')
  await bad('status=lost', '/status')
  await bad('limit=0', '/limit')
  await bad('limit=201', '/limit')
  await bad('submitted_after=yesterday', '/submitted_after')
  await bad('sla_breached=maybe', '/sla_breached')
  await bad('customer_id=nope', '/customer_id')
  await bad('cursor=bm9wZQ', '/cursor')
  const forge = (v: unknown[]) => Buffer.from(JSON.stringify({ s: '-submitted_at', v })).toString('base64url')
  await bad(`cursor=${forge(['yesterday', UNKNOWN])}`, '/cursor')
  await bad(`cursor=${forge(['2026-02-01T09:00:00Z', 'not-a-uuid'])}`, '/cursor')
  await bad(`cursor=${forge([null, UNKNOWN])}`, '/cursor')
  const p1 = await page('limit=2&sort=created_at')
  await bad(`cursor=${p1.next_cursor}`, '/cursor')
  t.equal((await ctx.app.inject({ url: `/v1/customers/${UNKNOWN}/feedback`, headers: reader })).statusCode, 404)
  t.equal((await ctx.app.inject({ url: `/v1/customers/${c}/feedback`, headers: await ctx.auth('customers:read') })).statusCode, 403)
})
