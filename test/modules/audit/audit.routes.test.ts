import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { setup } from '../../helpers/app.js'

/**
 * Audit events are produced here by test-only routes that write through request.db, so this
 * file depends on the audit mechanism only, not on any domain module.
 */
async function writer(app: FastifyInstance) {
  app.post('/test/audit-fixture', { config: { scope: 'customers:write' } }, async (request) => {
    const body = request.body as {
      customers: Array<{ name: string; birthday?: string }>
      contact_points?: Array<{ customer: number; kind: string; value: string; value_normalized: string; address?: Record<string, unknown> }>
    }
    const customers = await request.db.insertInto('customers').values(body.customers).returning('id').execute()
    const contacts = body.contact_points?.length
      ? await request.db
          .insertInto('contact_points')
          .values(body.contact_points.map(({ customer, ...c }) => ({ ...c, customer_id: customers[customer]!.id })))
          .returning('id')
          .execute()
      : []
    return { customers: customers.map((c) => c.id), contact_points: contacts.map((c) => c.id) }
  })
  app.patch('/test/audit-fixture/:id', { config: { scope: 'customers:write' } }, async (request) => {
    const { id } = request.params as { id: string }
    await request.db.updateTable('customers').set(request.body as { name: string }).where('id', '=', id).execute()
    return { id }
  })
}

const ctx = await setup({ plugins: [writer] })
const auditor = await ctx.auth('audit:read')
const auditorPii = await ctx.auth('audit:read pii:read')

/** The server's request id of each fixture write, by the name the test sent as x-request-id (its correlation id). */
const requestIds = new Map<string, string>()
const rid = (name: string) => requestIds.get(name)!

async function write(sub: string, requestId: string, payload: Record<string, unknown>) {
  const res = await ctx.app.inject({
    method: 'POST', url: '/test/audit-fixture', payload,
    headers: { ...(await ctx.auth('customers:write', { sub })), 'x-request-id': requestId },
  })
  if (res.statusCode !== 200) throw new Error(`fixture write failed: ${res.body}`)
  requestIds.set(requestId, res.headers['x-request-id'] as string)
  return res.json() as { customers: string[]; contact_points: string[] }
}

async function list(query: string, headers = auditor) {
  return ctx.app.inject({ url: `/v1/audit-events${query ? '?' + query : ''}`, headers })
}

type Event = { id: string; occurred_at: string; actor: string; request_id: string; correlation_id: string | null; action: string; entity: string; entity_id: string; before: Record<string, unknown> | null; after: Record<string, unknown> | null }

/** Follows next_cursor to the end, returning every id in order. */
async function walk(query: string, from: string | null = null): Promise<string[]> {
  const ids: string[] = []
  let cursor = from
  for (let page = 0; page < 100; page++) {
    const res = await list(query + (cursor ? `&cursor=${cursor}` : ''))
    if (res.statusCode !== 200) throw new Error(res.body)
    const body = res.json() as { data: Event[]; next_cursor: string | null }
    ids.push(...body.data.map((e) => e.id))
    cursor = body.next_cursor
    if (!cursor) return ids
  }
  throw new Error('pagination did not end')
}

const a = await write('user:alice', 'req-alice-1', { customers: [{ name: 'Alpha One' }, { name: 'Alpha Two' }] })
const b = await write('user:bob', 'req-bob-1', { customers: [{ name: 'Bravo' }] })
const renamed = await ctx.app.inject({
  method: 'PATCH', url: `/test/audit-fixture/${a.customers[0]}`, payload: { name: 'Alpha One Renamed' },
  headers: { ...(await ctx.auth('customers:write', { sub: 'user:alice' })), 'x-request-id': 'req-alice-2' },
})
requestIds.set('req-alice-2', renamed.headers['x-request-id'] as string)

t.test('the scope is audit:read; admin and audit:* grant it, others do not', async (t) => {
  t.equal((await list('')).statusCode, 200)
  t.equal((await list('', await ctx.auth())).statusCode, 200)
  t.equal((await list('', await ctx.auth('audit:*'))).statusCode, 200)
  for (const scope of ['customers:read', 'customers:* pii:read', 'analytics:read']) {
    const res = await list('', await ctx.auth(scope))
    t.equal(res.statusCode, 403, scope)
    t.match(res.headers['content-type'], /application\/problem\+json/)
  }
  const anonymous = await ctx.app.inject({ url: '/v1/audit-events' })
  t.equal(anonymous.statusCode, 401)
  const one = await ctx.app.inject({ url: `/v1/audit-events/${b.customers[0]}`, headers: await ctx.auth('customers:read') })
  t.equal(one.statusCode, 403)
})

t.test('events carry who, which request and route, and before/after snapshots', async (t) => {
  const res = await list(`request_id=${rid('req-alice-2')}`)
  t.equal(res.statusCode, 200)
  const [event, ...rest] = res.json().data as Event[]
  t.equal(rest.length, 0)
  t.match(event, {
    actor: 'user:alice', request_id: rid('req-alice-2'), correlation_id: 'req-alice-2', route: 'PATCH /test/audit-fixture/:id', action: 'update',
    entity: 'customers', entity_id: a.customers[0], before: { name: 'Alpha One', version: 1 }, after: { name: 'Alpha One Renamed', version: 2 },
  })
  t.match(event!.occurred_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'RFC 3339 UTC')
  t.notOk('txid' in event!, 'internal columns are not shown')

  const one = await ctx.app.inject({ url: `/v1/audit-events/${event!.id}`, headers: auditor })
  t.equal(one.statusCode, 200)
  t.same(one.json(), event)
})

t.test('filters narrow the list and combine with AND', async (t) => {
  const ids = async (query: string) => {
    const res = await list(query)
    t.equal(res.statusCode, 200, query)
    return (res.json().data as Event[]).map((e) => `${e.actor} ${e.action} ${e.entity_id}`).sort()
  }
  t.same(await ids('actor=user:bob'), [`user:bob insert ${b.customers[0]}`])
  t.same(await ids(`request_id=${rid('req-alice-1')}`), [`user:alice insert ${a.customers[0]}`, `user:alice insert ${a.customers[1]}`].sort())
  t.same(await ids(`entity=customers&entity_id=${a.customers[0]}`), [`user:alice insert ${a.customers[0]}`, `user:alice update ${a.customers[0]}`].sort())
  t.same(await ids(`entity_id=${a.customers[0]}&action=update`), [`user:alice update ${a.customers[0]}`])
  t.same(await ids('actor=user:alice&action=delete'), [])
  t.same(await ids('entity=contact_points&actor=user:alice'), [])
  t.same(await ids('actor=user:nobody'), [])
})

t.test('occurred_after is inclusive, occurred_before exclusive', async (t) => {
  const first = (await list(`request_id=${rid('req-alice-1')}`)).json().data[0] as Event
  const second = (await list(`request_id=${rid('req-bob-1')}`)).json().data[0] as Event
  t.ok(second.occurred_at > first.occurred_at, 'separate transactions have distinct times')
  const actors = async (query: string) =>
    [...new Set(((await list(`${query}&entity=customers&action=insert`)).json().data as Event[]).map((e) => e.correlation_id))].sort()
  t.same(await actors(`occurred_before=${second.occurred_at}`), ['req-alice-1'])
  t.same(await actors(`occurred_after=${second.occurred_at}`), ['req-bob-1'])
  t.same(await actors(`occurred_after=${first.occurred_at}&occurred_before=${second.occurred_at}`), ['req-alice-1'])
  const offset = second.occurred_at.replace('Z', '+00:00')
  t.same(await actors(`occurred_after=${encodeURIComponent(offset)}`), ['req-bob-1'], 'an explicit offset is accepted')
})

t.test('pagination visits every event once in either order, also while events are added', async (t) => {
  // 23 rows from one statement share one occurred_at: the id breaks the ties.
  await write('user:bulk', 'req-bulk', { customers: Array.from({ length: 23 }, (_, i) => ({ name: `Bulk ${i}` })) })
  const all = await ctx.db.selectFrom('audit_events').select(['id', 'occurred_at']).orderBy('occurred_at', 'desc').orderBy('id', 'desc').execute()
  t.ok(all.length >= 27)

  const newest = await walk('limit=4')
  t.same(newest, all.map((r) => r.id), 'newest first by default, no duplicates, no gaps')
  t.same(await walk('limit=5&sort=-occurred_at'), newest)
  t.same(await walk('limit=6&sort=occurred_at'), [...newest].reverse(), 'oldest first')
  t.same(await walk('limit=200'), newest, 'one page')
  const bulk = await walk('limit=5&actor=user:bulk')
  t.equal(bulk.length, 23)
  t.equal(new Set(bulk).size, 23)

  // Events written between two pages neither repeat nor hide older ones.
  const page1 = (await list('limit=10')).json() as { data: Event[]; next_cursor: string }
  await write('user:late', 'req-late', { customers: [{ name: 'Late 1' }, { name: 'Late 2' }] })
  const rest = await walk('limit=10', page1.next_cursor)
  t.same([...page1.data.map((e) => e.id), ...rest], newest)

  const last = (await list('limit=200')).json()
  t.equal(last.next_cursor, null)
})

t.test('without pii:read, personal data in before/after is masked', async (t) => {
  const secrets = ['1984-02-29', 'Jane.Secret', 'jane.secret', 'xample.net', '555-0199', '5550199', 'Elm Street', 'elm street', 'Springfield', '62704']
  const w = await write('user:carol', 'req-pii', {
    customers: [{ name: 'Jane Secret', birthday: '1984-02-29' }],
    contact_points: [
      { customer: 0, kind: 'email', value: 'Jane.Secret@Example.net', value_normalized: 'jane.secret@example.net' },
      { customer: 0, kind: 'phone', value: '+1 (217) 555-0199', value_normalized: '+12175550199' },
      { customer: 0, kind: 'address', value: '742 Elm Street, Springfield', value_normalized: '742 elm street springfield',
        address: { line1: '742 Elm Street', city: 'Springfield', postal_code: '62704', country: 'US' } },
    ],
  })
  const masked = await list(`request_id=${rid('req-pii')}`)
  t.equal(masked.statusCode, 200)
  t.equal(masked.headers['x-pii-masked'], 'true')
  for (const s of secrets) t.notOk(masked.body.includes(s), `list does not contain ${s}`)
  const events = masked.json().data as Event[]
  t.equal(events.length, 4)
  const customer = events.find((e) => e.entity === 'customers')!
  t.equal(customer.after!.name, 'Jane Secret', 'the name is not masked')
  t.equal(customer.after!.birthday, '***')
  const contact = (kind: string) => events.find((e) => e.after!.kind === kind)!.after!
  t.match(contact('email'), { value: 'J***@***', value_normalized: 'j***@***', customer_id: w.customers[0] })
  t.match(contact('phone'), { value: '***99', value_normalized: '***99' })
  t.match(contact('address'), { value: '***', address: { line1: '***', city: '***', postal_code: '***', country: 'US' } })

  const one = await ctx.app.inject({ url: `/v1/audit-events/${customer.id}`, headers: auditor })
  t.equal(one.headers['x-pii-masked'], 'true')
  t.notOk(one.body.includes('1984-02-29'))

  const full = await list(`request_id=${rid('req-pii')}`, auditorPii)
  t.notOk(full.headers['x-pii-masked'])
  for (const s of ['1984-02-29', 'Jane.Secret@Example.net', '+1 (217) 555-0199', '62704']) t.ok(full.body.includes(s), `with pii:read: ${s}`)
  const fullOne = await ctx.app.inject({ url: `/v1/audit-events/${customer.id}`, headers: await ctx.auth() })
  t.equal(fullOne.json().after.birthday, '1984-02-29', 'admin reads PII')
})

t.test('bad filter values answer 400 with one pointer per bad parameter', async (t) => {
  const pointers = async (query: string) => {
    const res = await list(query)
    t.equal(res.statusCode, 400, query)
    t.match(res.headers['content-type'], /application\/problem\+json/)
    return (res.json().errors as Array<{ pointer: string }>).map((e) => e.pointer).sort()
  }
  t.same(await pointers('entity_id=not-a-uuid'), ['/entity_id'])
  t.same(await pointers('occurred_after=yesterday'), ['/occurred_after'])
  t.same(await pointers('occurred_before=2026-11-22T08:30:00'), ['/occurred_before'], 'a time without offset is not RFC 3339')
  t.same(await pointers('action=upsert'), ['/action'])
  t.same(await pointers('entity=Customers;drop'), ['/entity'])
  t.same(await pointers('limit=0'), ['/limit'])
  t.same(await pointers('limit=201'), ['/limit'])
  t.same(await pointers('unknown=1'), ['/unknown'])
  t.same(await pointers('entity_id=x&action=upsert&limit=abc'), ['/action', '/entity_id', '/limit'])
  t.same(await pointers('sort=actor'), ['/sort'])
  t.same(await pointers('cursor=garbage'), ['/cursor'])
  const page = (await list('limit=1')).json()
  t.same(await pointers(`limit=1&sort=occurred_at&cursor=${page.next_cursor}`), ['/cursor'], 'a cursor only works with its own sort')

  const badId = await ctx.app.inject({ url: '/v1/audit-events/123', headers: auditor })
  t.equal(badId.statusCode, 400)
  t.same(badId.json().errors.map((e: { pointer: string }) => e.pointer), ['/id'])
  const missing = await ctx.app.inject({ url: '/v1/audit-events/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: auditor })
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { status: 404, code: 'not-found' })
})

t.test('the audit trail is read-only through the API', async (t) => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
    const res = await ctx.app.inject({ method, url: '/v1/audit-events', headers: await ctx.auth(), payload: {} })
    t.equal(res.statusCode, 405, method)
    t.equal(res.headers.allow, 'GET')
  }
})

t.test('the contract names both operations and the AuditEvent schema', async (t) => {
  const doc = (await ctx.app.inject({ url: '/openapi.json' })).json()
  t.match(doc.paths['/v1/audit-events'].get, { operationId: 'listAuditEvents', tags: ['audit'] })
  t.match(doc.paths['/v1/audit-events/{id}'].get, { operationId: 'getAuditEvent', tags: ['audit'] })
  // The query parameters (the shared header parameters are $refs: X-Correlation-Id, X-Request-Id).
  const names = doc.paths['/v1/audit-events'].get.parameters.filter((p: { in?: string }) => p.in === 'query').map((p: { name: string }) => p.name).sort()
  t.same(names, ['action', 'actor', 'cursor', 'entity', 'entity_id', 'limit', 'occurred_after', 'occurred_before', 'request_id', 'sort'])
  t.match(doc.components.schemas.AuditEvent, { description: String, example: Object, properties: { before: { type: ['object', 'null'] }, after: { type: ['object', 'null'] } } })
  t.ok(doc.components.schemas.AuditEventList)
})
