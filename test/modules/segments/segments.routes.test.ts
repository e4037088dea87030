import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'
import { conformingFetch } from '../../helpers/conformance.js'
import { seed } from '../filters/filter.model.js'

const ctx = await setup()
const writer = await ctx.auth('segments:write segments:read customers:read pii:read financial:read')
const reader = await ctx.auth('segments:read financial:read')
const customersReader = await ctx.auth('customers:read pii:read financial:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'
await seed(ctx.db, 7, 120)

const FILTER = { or: [{ field: 'tags', op: 'has_any', value: ['vip'] }, { orders: { min_count: 2 } }] }

async function create(body: Record<string, unknown>, headers = writer) {
  return ctx.app.inject({ method: 'POST', url: '/v1/segments', headers, payload: body })
}
async function get(url: string, headers: Record<string, string> = writer) {
  return ctx.app.inject({ method: 'GET', url, headers })
}
async function allPages(url: string, headers: Record<string, string> = writer): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | null = null
  do {
    const res = await get(`${url}${url.includes('?') ? '&' : '?'}limit=37${cursor ? `&cursor=${cursor}` : ''}`, headers)
    if (res.statusCode !== 200) throw new Error(res.body)
    const body = res.json() as { data: Array<{ id: string }>; next_cursor: string | null }
    ids.push(...body.data.map((d) => d.id))
    cursor = body.next_cursor
  } while (cursor)
  return ids
}
async function searchIds(filter: unknown): Promise<string[]> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers/search', headers: customersReader, payload: { filter, limit: 200 } })
  return (res.json() as { data: Array<{ id: string }> }).data.map((d) => d.id)
}
const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer)

t.test('create, read, patch with If-Match, archive: each change audited', async (t) => {
  const res = await create({ name: 'VIP or repeat', kind: 'dynamic', filter: FILTER, description: 'test' })
  t.equal(res.statusCode, 201, res.body)
  const s = res.json()
  t.equal(res.headers.location, `/v1/segments/${s.id}`)
  t.equal(res.headers.etag, '"1"')
  t.match(s, { name: 'VIP or repeat', kind: 'dynamic', filter: FILTER, description: 'test', version: 1, archived_at: null })

  const got = await get(`/v1/segments/${s.id}`, reader)
  t.equal(got.statusCode, 200)
  t.same(got.json(), s)
  t.equal((await ctx.app.inject({ method: 'GET', url: `/v1/segments/${s.id}`, headers: { ...reader, 'if-none-match': '"1"' } })).statusCode, 304)

  const stale = await ctx.app.inject({ method: 'PATCH', url: `/v1/segments/${s.id}`, headers: { ...writer, 'if-match': '"7"' }, payload: { description: null } })
  t.equal(stale.statusCode, 412)
  const patched = await ctx.app.inject({
    method: 'PATCH', url: `/v1/segments/${s.id}`, headers: { ...writer, 'if-match': '"1"', 'content-type': 'application/merge-patch+json' },
    payload: JSON.stringify({ description: null, filter: { field: 'tags', op: 'has_any', value: ['vip'] } }),
  })
  t.equal(patched.statusCode, 200, patched.body)
  t.match(patched.json(), { description: null, name: 'VIP or repeat', version: 2, filter: { field: 'tags', op: 'has_any', value: ['vip'] } })
  t.equal(patched.headers.etag, '"2"')

  const badPatch = await ctx.app.inject({ method: 'PATCH', url: `/v1/segments/${s.id}`, headers: writer, payload: { filter: { field: 'tags', op: 'eq', value: 'x' } } })
  t.equal(badPatch.statusCode, 400)
  t.same(pointers(badPatch), ['/filter/op'])
  t.equal((await ctx.app.inject({ method: 'PATCH', url: `/v1/segments/${s.id}`, headers: writer, payload: { kind: 'static' } })).statusCode, 400, 'kind is read-only')

  const del = await ctx.app.inject({ method: 'DELETE', url: `/v1/segments/${s.id}`, headers: { ...writer, 'if-match': '"1"' } })
  t.equal(del.statusCode, 412)
  t.equal((await ctx.app.inject({ method: 'DELETE', url: `/v1/segments/${s.id}`, headers: writer })).statusCode, 204)
  t.ok((await get(`/v1/segments/${s.id}`)).json().archived_at)
  const live = await get('/v1/segments')
  t.notOk(live.json().data.some((x: { id: string }) => x.id === s.id), 'archived segments are not listed')
  const archived = await get('/v1/segments?archived=true')
  t.ok(archived.json().data.some((x: { id: string }) => x.id === s.id))

  const audit = await ctx.db.selectFrom('audit_events').select(['action', 'actor', 'route']).where('entity', '=', 'segments').where('entity_id', '=', s.id).orderBy('occurred_at').orderBy('id').execute()
  t.same(audit.map((a) => a.action), ['insert', 'update', 'update'])
  t.ok(audit.every((a) => a.actor === 'user:test'))
  t.equal(audit[0]!.route, 'POST /v1/segments')
})

t.test('rules: names, kinds, scopes, unknown ids', async (t) => {
  t.equal((await create({ name: 'Dup', kind: 'static' })).statusCode, 201)
  const dup = await create({ name: 'dup', kind: 'static' })
  t.equal(dup.statusCode, 409)
  t.same(pointers(dup), ['/name'])
  const noFilter = await create({ name: 'No filter', kind: 'dynamic' })
  t.equal(noFilter.statusCode, 422)
  t.same(pointers(noFilter), ['/filter'])
  t.equal((await create({ name: 'Static with filter', kind: 'static', filter: FILTER })).statusCode, 422)
  t.equal((await create({ name: 'x', kind: 'static' }, reader)).statusCode, 403)
  t.equal((await create({ name: 'x', kind: 'weird' })).statusCode, 400)
  t.equal((await get(`/v1/segments/${UNKNOWN}`)).statusCode, 404)
  t.equal((await get(`/v1/segments/${UNKNOWN}/members`)).statusCode, 404)
  t.equal((await get(`/v1/segments/${UNKNOWN}/count`)).statusCode, 404)
  t.equal((await ctx.app.inject({ method: 'POST', url: `/v1/segments/${UNKNOWN}/refresh`, headers: writer })).statusCode, 404)
  t.equal((await ctx.app.inject({ method: 'DELETE', url: `/v1/segments/${UNKNOWN}`, headers: writer })).statusCode, 404)
})

t.test('members, count and preview of a dynamic segment agree with search', async (t) => {
  const s = (await create({ name: 'Agree', kind: 'dynamic', filter: FILTER })).json()
  const expected = (await searchIds(FILTER)).sort()
  t.ok(expected.length > 5 && expected.length < 120, `a real subset (${expected.length})`)
  t.same((await allPages(`/v1/segments/${s.id}/members`)).sort(), expected)
  t.same((await allPages(`/v1/segments/${s.id}/members?sort=name`)).sort(), expected, 'another sort pages to the same set')
  t.same((await get(`/v1/segments/${s.id}/count`, reader)).json(), { count: expected.length })
  const preview = await ctx.app.inject({ method: 'POST', url: '/v1/segments/preview', headers: reader, payload: { filter: FILTER, limit: 10 } })
  t.equal(preview.statusCode, 200, preview.body)
  const p = preview.json()
  t.equal(p.count, expected.length)
  t.equal(p.data.length, 10)
  t.ok(p.next_cursor)
  t.ok(p.data.every((c: { id: string }) => expected.includes(c.id)))
  t.equal(preview.headers['x-pii-masked'], 'true', 'segments:read alone sees masked customers')
})

t.test('static members: batch add and remove, all or nothing, with history', async (t) => {
  const s = (await create({ name: 'Hand-picked', kind: 'static' })).json()
  const ids = (await ctx.db.selectFrom('customers').select('id').where('archived_at', 'is', null).orderBy('id').limit(5).execute()).map((r) => r.id)
  const add = (customer_ids: string[]) => ctx.app.inject({ method: 'POST', url: `/v1/segments/${s.id}/members`, headers: writer, payload: { customer_ids } })
  const remove = (customer_ids: string[]) => ctx.app.inject({ method: 'DELETE', url: `/v1/segments/${s.id}/members`, headers: writer, payload: { customer_ids } })

  const first = await add(ids.slice(0, 3))
  t.equal(first.statusCode, 200, first.body)
  t.same(first.json(), { added: 3, unchanged: 0 })
  t.same((await add(ids.slice(2, 5))).json(), { added: 2, unchanged: 1 })
  const bad = await add([ids[0]!, UNKNOWN])
  t.equal(bad.statusCode, 422)
  t.same(pointers(bad), ['/customer_ids/1'])
  t.same((await get(`/v1/segments/${s.id}/count`)).json(), { count: 5 })
  t.same((await allPages(`/v1/segments/${s.id}/members`)).sort(), [...ids].sort())

  t.same((await remove([ids[0]!, ids[1]!, UNKNOWN])).json(), { removed: 2, unchanged: 1 })
  t.same((await get(`/v1/segments/${s.id}/count`)).json(), { count: 3 })
  const tooMany = await add(Array.from({ length: 1001 }, () => UNKNOWN))
  t.equal(tooMany.statusCode, 400)

  const history = (await get(`/v1/segments/${s.id}/history?limit=200`)).json().data as Array<{ event: string; customer_id: string }>
  t.equal(history.filter((e) => e.event === 'entered').length, 5)
  t.same(history.filter((e) => e.event === 'left').map((e) => e.customer_id).sort(), [ids[0], ids[1]].sort())
  const audited = await ctx.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).where('entity', '=', 'segment_members').executeTakeFirstOrThrow()
  t.equal(Number(audited.n), 5 + 2, 'each insert and delete of a member is audited')

  const dynamic = (await create({ name: 'Dyn for members', kind: 'dynamic', filter: FILTER })).json()
  const refused = await ctx.app.inject({ method: 'POST', url: `/v1/segments/${dynamic.id}/members`, headers: writer, payload: { customer_ids: [ids[0]] } })
  t.equal(refused.statusCode, 422)
  t.equal((await ctx.app.inject({ method: 'POST', url: `/v1/segments/${s.id}/refresh`, headers: writer })).statusCode, 422, 'static segments are not refreshed')
})

t.test('refresh records who entered and who left, set-wise', async (t) => {
  const s = (await create({ name: 'Tagged gold', kind: 'dynamic', filter: { field: 'tags', op: 'has_any', value: ['gold'] } })).json()
  const ids = (await ctx.db.selectFrom('customers').select('id').where('archived_at', 'is', null).orderBy('id').limit(4).execute()).map((r) => r.id)
  const tag = (id: string, on: boolean) =>
    ctx.db.updateTable('customers').set({ tags: on ? sql`array_append(tags, 'gold')` : sql`array_remove(tags, 'gold')` } as never).where('id', '=', id).execute()
  const refresh = async () => {
    const res = await ctx.app.inject({ method: 'POST', url: `/v1/segments/${s.id}/refresh`, headers: writer })
    t.equal(res.statusCode, 200, res.body)
    return res.json()
  }
  for (const id of ids.slice(0, 3)) await tag(id, true)
  t.match(await refresh(), { entered: 3, left: 0, member_count: 3 })
  t.match(await refresh(), { entered: 0, left: 0, member_count: 3 }, 'nothing changed')
  await tag(ids[0]!, false)
  await tag(ids[3]!, true)
  t.match(await refresh(), { entered: 1, left: 1, member_count: 3 })

  const page1 = await get(`/v1/segments/${s.id}/history?limit=2`, reader)
  t.equal(page1.statusCode, 200)
  const body1 = page1.json()
  t.equal(body1.data.length, 2)
  const rest = await get(`/v1/segments/${s.id}/history?limit=50&cursor=${body1.next_cursor}`, reader)
  const events = [...body1.data, ...rest.json().data] as Array<{ event: string; customer_id: string; occurred_at: string }>
  t.equal(events.length, 5)
  t.same(events.slice(0, 2).map((e) => `${e.event} ${e.customer_id}`).sort(), [`entered ${ids[3]}`, `left ${ids[0]}`].sort(), 'newest first')
  t.ok(events.every((e, i) => i === 0 || e.occurred_at <= events[i - 1]!.occurred_at))
  const left = await get(`/v1/segments/${s.id}/history?event=left`, reader)
  t.same(left.json().data.map((e: { customer_id: string }) => e.customer_id), [ids[0]])
  const mine = await get(`/v1/segments/${s.id}/history?customer_id=${ids[0]}`, reader)
  t.same(mine.json().data.map((e: { event: string }) => e.event), ['left', 'entered'])
})

t.test('export as CSV and NDJSON, masked without pii:read', async (t) => {
  const s = (await create({ name: 'Export me', kind: 'dynamic', filter: FILTER })).json()
  const expected = (await searchIds(FILTER)).sort()
  const csv = await get(`/v1/segments/${s.id}/export?format=csv`)
  t.equal(csv.statusCode, 200)
  t.match(csv.headers['content-type'], /^text\/csv/)
  t.match(csv.headers['content-disposition'], /attachment; filename="segment-.*\.csv"/)
  const lines = csv.body.trimEnd().split('\r\n')
  t.equal(lines[0]!.split(',')[0], 'id')
  t.same(lines.slice(1).map((l) => l.split(',')[0]).sort(), expected)

  const nd = await get(`/v1/segments/${s.id}/export?format=ndjson`, reader)
  t.equal(nd.statusCode, 200)
  t.match(nd.headers['content-type'], /^application\/x-ndjson/)
  t.equal(nd.headers['x-pii-masked'], 'true')
  const rows = nd.body.trimEnd().split('\n').map((l) => JSON.parse(l) as { id: string; birthday: unknown })
  t.same(rows.map((r) => r.id).sort(), expected)
  t.equal((await get(`/v1/segments/${s.id}/export?format=xml`)).statusCode, 400)
})

t.test('CSV cells are quoted and formulas neutralised', async (t) => {
  const s = (await create({ name: 'Odd names', kind: 'static' })).json()
  const c = await ctx.db.insertInto('customers').values({ name: '=HYPERLINK("x"), "quoted"' } as never).returning('id').executeTakeFirstOrThrow()
  await ctx.app.inject({ method: 'POST', url: `/v1/segments/${s.id}/members`, headers: writer, payload: { customer_ids: [c.id] } })
  const csv = await get(`/v1/segments/${s.id}/export`)
  t.match(csv.body, `,"'=HYPERLINK(""x""), ""quoted""",`)
})

t.test('a large export streams in chunks', async (t) => {
  await sql`insert into customers (name, tags) select 'Bulk ' || g, array['bulk'] from generate_series(1, 3000) g`.execute(ctx.db)
  const s = (await create({ name: 'Bulk', kind: 'dynamic', filter: { field: 'tags', op: 'has_all', value: ['bulk'] } })).json()
  const address = await ctx.app.listen({ port: 0, host: '127.0.0.1' })
  const res = await conformingFetch(`${address}/v1/segments/${s.id}/export?format=ndjson`, { headers: writer })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-length'), null, 'no length known up front')
  t.equal(res.headers.get('transfer-encoding'), 'chunked')
  let chunks = 0
  let text = ''
  const decoder = new TextDecoder()
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    chunks++
    text += decoder.decode(chunk, { stream: true })
  }
  const ids = text.trimEnd().split('\n').map((l) => (JSON.parse(l) as { id: string }).id)
  t.equal(ids.length, 3000)
  t.equal(new Set(ids).size, 3000, 'no customer twice across batches')
  t.ok(chunks >= 6, `arrived in ${chunks} chunks (batches of 500)`)
})
