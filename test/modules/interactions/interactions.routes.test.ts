import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('interactions:write interactions:read')
const reader = await ctx.auth('interactions:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

async function customer(fields: Record<string, unknown> = {}) {
  return (await ctx.db.insertInto('customers').values({ name: 'Test customer', ...fields } as never).returning('id').executeTakeFirstOrThrow()).id
}

async function order(customerId: string) {
  return (await ctx.db.insertInto('orders').values({ customer_id: customerId, currency: 'CNY' } as never).returning('id').executeTakeFirstOrThrow()).id as string
}

async function post(body: Record<string, unknown>, headers: Record<string, string> = writer) {
  return ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers, payload: body })
}

async function patch(id: string, body: unknown, headers: Record<string, string> = writer) {
  return ctx.app.inject({ method: 'PATCH', url: `/v1/interactions/${id}`, headers: { ...headers, 'content-type': 'application/merge-patch+json' }, payload: JSON.stringify(body) })
}

/** Every audit row written by one request (any table). */
async function auditFor(res: { headers: Record<string, unknown> }) {
  const requestId = res.headers['x-request-id'] as string
  return ctx.db.selectFrom('audit_events').selectAll().where('request_id', '=', requestId).orderBy('id').execute()
}

async function counts() {
  return { interactions: await ctx.count('interactions'), audit: await ctx.count('audit_events') }
}

const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer).sort()

t.test('create answers 201 + Location + ETag with defaults, and writes one audit row with the request id', async (t) => {
  const c = await customer()
  const res = await post({ customer_id: c, channel: 'phone', subject: 'Hello', notes: 'n'.repeat(10_000) })
  t.equal(res.statusCode, 201, res.body)
  const i = res.json()
  t.equal(res.headers.location, `/v1/interactions/${i.id}`)
  t.equal(res.headers.etag, '"1"')
  t.match(i, {
    customer_id: c, channel: 'phone', direction: 'inbound', subject: 'Hello', duration_seconds: null, outcome: null, agent: null,
    follow_up_on: null, follow_up_done: false, follow_up_due: false, order_id: null, external_ref: null, version: 1, archived_at: null,
  })
  t.equal(i.notes.length, 10_000)
  t.match(i.occurred_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, 'occurred_at defaults to now, RFC 3339')
  t.ok(Math.abs(Date.parse(i.occurred_at) - Date.now()) < 60_000)
  const audit = await auditFor(res)
  t.same(audit.map((a) => `${a.action} ${a.entity} ${a.entity_id}`), [`insert interactions ${i.id}`])
  t.match(audit[0], { actor: 'user:test', route: 'POST /v1/interactions', request_id: res.headers['x-request-id'] })
})

t.test('get: ETag, If-None-Match 304, 404, 400, scopes', async (t) => {
  const i = (await post({ customer_id: await customer(), channel: 'email', direction: 'outbound', occurred_at: '2026-01-02T03:04:05Z' })).json()
  const url = `/v1/interactions/${i.id}`
  const res = await ctx.app.inject({ url, headers: reader })
  t.equal(res.statusCode, 200)
  t.equal(res.headers.etag, '"1"')
  t.same(res.json(), i)
  t.equal(i.occurred_at, '2026-01-02T03:04:05.000Z')
  const cached = await ctx.app.inject({ url, headers: { ...reader, 'if-none-match': '"1"' } })
  t.equal(cached.statusCode, 304)
  t.equal(cached.body, '')
  t.equal((await ctx.app.inject({ url, headers: { ...reader, 'if-none-match': '"2"' } })).statusCode, 200)
  const missing = await ctx.app.inject({ url: `/v1/interactions/${UNKNOWN}`, headers: reader })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal((await ctx.app.inject({ url: '/v1/interactions/nope', headers: reader })).statusCode, 400)
  t.equal((await ctx.app.inject({ url, headers: await ctx.auth('orders:read customers:read') })).statusCode, 403)
  t.equal((await ctx.app.inject({ url })).statusCode, 401)
  t.equal((await post({ customer_id: i.customer_id, channel: 'sms' }, reader)).statusCode, 403)
  t.equal((await post({ customer_id: i.customer_id, channel: 'sms' }, await ctx.auth('interactions:*'))).statusCode, 201, 'interactions:* grants write')
})

t.test('bad input is a 400 with one pointer per bad field, and changes nothing', async (t) => {
  const c = await customer()
  const archived = await customer({ archived_at: new Date().toISOString() })
  const before = await counts()
  const owned = await post({ customer_id: c, channel: 'phone', id: UNKNOWN, version: 3, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', archived_at: null, follow_up_due: true })
  t.equal(owned.statusCode, 400)
  t.same(pointers(owned), ['/archived_at', '/created_at', '/follow_up_due', '/id', '/updated_at', '/version'], 'server-owned fields are refused')
  const bad = await post({
    customer_id: 'nope', channel: 'fax', direction: 'sideways', subject: 's'.repeat(301), notes: 'n'.repeat(10_001), occurred_at: 'yesterday',
    duration_seconds: -1, outcome: 'great', agent: 'a'.repeat(201), follow_up_on: '2026-13-01', follow_up_done: 'yes', order_id: 42,
    external_ref: 'e'.repeat(201),
  })
  t.equal(bad.statusCode, 400)
  t.same(pointers(bad), [
    '/agent', '/channel', '/customer_id', '/direction', '/duration_seconds', '/external_ref', '/follow_up_done', '/follow_up_on', '/notes',
    '/occurred_at', '/order_id', '/outcome', '/subject',
  ])
  const missing = await post({})
  t.same(pointers(missing), ['/channel', '/customer_id'])
  t.equal((await post({ customer_id: c, channel: 'phone', duration_seconds: 604_801 })).statusCode, 400)
  t.equal((await post({ customer_id: c, channel: 'phone', duration_seconds: 1.5 })).statusCode, 400)
  const unknownCustomer = await post({ customer_id: UNKNOWN, channel: 'phone' })
  t.equal(unknownCustomer.statusCode, 422)
  t.same(pointers(unknownCustomer), ['/customer_id'])
  const toArchived = await post({ customer_id: archived, channel: 'phone' })
  t.equal(toArchived.statusCode, 422, 'archived customers get no new interactions')
  t.same(pointers(toArchived), ['/customer_id'])
  const notJson = await ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers: { ...writer, 'content-type': 'text/plain' }, payload: 'hi' })
  t.equal(notJson.statusCode, 415)
  t.same(await counts(), before, 'no interaction and no audit row was written')
})

t.test('order link: the order must exist and belong to the same customer (422 /order_id), on create and on patch', async (t) => {
  const c = await customer()
  const other = await customer()
  const own = await order(c)
  const foreign = await order(other)
  const ok = await post({ customer_id: c, channel: 'phone', order_id: own })
  t.equal(ok.statusCode, 201, ok.body)
  t.equal(ok.json().order_id, own)
  const before = await counts()
  for (const orderId of [foreign, UNKNOWN]) {
    const res = await post({ customer_id: c, channel: 'phone', order_id: orderId })
    t.equal(res.statusCode, 422)
    t.same(pointers(res), ['/order_id'])
    const p = await patch(ok.json().id, { order_id: orderId, subject: 'changed' })
    t.equal(p.statusCode, 422)
    t.same(pointers(p), ['/order_id'])
  }
  t.same(await counts(), before, 'nothing changed')
  const cleared = await patch(ok.json().id, { order_id: null })
  t.equal(cleared.statusCode, 200)
  t.equal(cleared.json().order_id, null)
  const relinked = await patch(ok.json().id, { order_id: own })
  t.equal(relinked.json().order_id, own)
  t.equal(relinked.json().version, 3)
})

t.test('external_ref upsert: 201 then 200 on the same interaction, never a duplicate', async (t) => {
  const c = await customer()
  const first = await post({ external_ref: 'cc-1', customer_id: c, channel: 'phone', subject: 'first' })
  t.equal(first.statusCode, 201)
  const again = await post({ external_ref: 'cc-1', customer_id: c, channel: 'phone', subject: 'second', outcome: 'resolved' })
  t.equal(again.statusCode, 200, again.body)
  t.equal(again.headers.location, undefined)
  t.equal(again.headers.etag, '"2"')
  t.match(again.json(), { id: first.json().id, subject: 'second', outcome: 'resolved', version: 2 })
  t.same((await auditFor(again)).map((a) => `${a.action} ${a.entity}`), ['update interactions'])
  const same = await post({ external_ref: 'cc-1', customer_id: c, channel: 'phone', subject: 'second', outcome: 'resolved' })
  t.equal(same.statusCode, 200)
  t.equal(same.json().version, 2, 'an identical re-sync changes nothing')
  t.same(await auditFor(same), [], 'and writes no audit row')
  const n = await ctx.db.selectFrom('interactions').select((eb) => eb.fn.countAll<number>().as('n')).where('external_ref', '=', 'cc-1').executeTakeFirstOrThrow()
  t.equal(n.n, 1)
  const otherCustomer = await post({ external_ref: 'cc-1', customer_id: await customer(), channel: 'phone' })
  t.equal(otherCustomer.statusCode, 422)
  t.same(pointers(otherCustomer), ['/customer_id'])
  const badOrder = await post({ external_ref: 'cc-1', customer_id: c, channel: 'phone', order_id: UNKNOWN })
  t.equal(badOrder.statusCode, 422)
  t.same(pointers(badOrder), ['/order_id'])
  const taken = (await post({ external_ref: 'cc-2', customer_id: c, channel: 'email' })).json()
  const dup = await patch(taken.id, { external_ref: 'cc-1' })
  t.equal(dup.statusCode, 409)
  t.same(pointers(dup), ['/external_ref'])
  const parallel = await Promise.all(Array.from({ length: 6 }, () => post({ external_ref: 'cc-race', customer_id: c, channel: 'chat' })))
  t.same(parallel.map((r) => r.statusCode).sort(), [200, 200, 200, 200, 200, 201], 'concurrent upserts: one creates, the others update')
  t.equal(new Set(parallel.map((r) => r.json().id)).size, 1)
})

t.test('patch: merge patch semantics, If-Match 412, audit of the change', async (t) => {
  const i = (await post({ customer_id: await customer(), channel: 'meeting', subject: 's', notes: 'n', agent: 'a', duration_seconds: 60 })).json()
  const stale = await patch(i.id, { notes: 'x' }, { ...writer, 'if-match': '"7"' })
  t.equal(stale.statusCode, 412)
  t.equal((await patch(i.id, { notes: 'x' }, { ...writer, 'if-match': 'seven' })).statusCode, 400)
  const res = await patch(i.id, { notes: null, outcome: 'follow_up', follow_up_on: '2030-01-31', direction: 'outbound' }, { ...writer, 'if-match': '"1"' })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers.etag, '"2"')
  t.match(res.json(), { notes: null, subject: 's', agent: 'a', duration_seconds: 60, outcome: 'follow_up', follow_up_on: '2030-01-31', direction: 'outbound', follow_up_due: false, version: 2 })
  const audit = await auditFor(res)
  t.equal(audit.length, 1)
  t.match(audit[0], { action: 'update', entity: 'interactions', entity_id: i.id, route: 'PATCH /v1/interactions/:id' })
  t.match(audit[0]!.before, { notes: 'n', version: 1 })
  t.match(audit[0]!.after, { notes: null, version: 2 })
  const owned = await patch(i.id, { version: 9, customer_id: UNKNOWN, created_at: '2026-01-01T00:00:00Z' })
  t.equal(owned.statusCode, 400)
  t.same(pointers(owned), ['/created_at', '/customer_id', '/version'], 'server-owned fields and customer_id cannot be patched')
  t.same([...new Set(pointers(await patch(i.id, { channel: null, follow_up_done: null })))], ['/channel', '/follow_up_done'], 'required fields cannot be cleared')
  t.equal((await patch(i.id, {})).statusCode, 400, 'an empty patch is refused')
  t.equal((await patch(UNKNOWN, { notes: 'x' })).statusCode, 404)
  t.equal((await patch(UNKNOWN, { notes: 'x' }, { ...writer, 'if-match': '"1"' })).statusCode, 404, '404 wins over 412 for an unknown id')
  const noop = await patch(i.id, { subject: 's' })
  t.equal(noop.json().version, 2, 'sending the current value is no change')
  t.same(await auditFor(noop), [])
})

t.test('If-Match race: K parallel PATCHes of version 1 give one 200 and K-1 412s', async (t) => {
  const i = (await post({ customer_id: await customer(), channel: 'chat' })).json()
  const K = 8
  const results = await Promise.all(Array.from({ length: K }, (_, k) => patch(i.id, { subject: `writer ${k}` }, { ...writer, 'if-match': '"1"' })))
  const codes = results.map((r) => r.statusCode).sort()
  t.same(codes, [200, ...Array(K - 1).fill(412)])
  const winner = results.find((r) => r.statusCode === 200)!.json()
  const now = (await ctx.app.inject({ url: `/v1/interactions/${i.id}`, headers: reader })).json()
  t.equal(now.subject, winner.subject, 'the stored row is the winner\'s')
  t.equal(now.version, 2)
  const audits = await ctx.db.selectFrom('audit_events').select('action').where('entity_id', '=', i.id).execute()
  t.same(audits.map((a) => a.action).sort(), ['insert', 'update'], 'the losers wrote nothing')
})

t.test('archive (204, idempotent) hides it from lists; restore brings it back; both audited', async (t) => {
  const c = await customer()
  const i = (await post({ customer_id: c, channel: 'visit' })).json()
  const url = `/v1/interactions/${i.id}`
  t.equal((await ctx.app.inject({ method: 'DELETE', url, headers: { ...writer, 'if-match': '"5"' } })).statusCode, 412)
  const del = await ctx.app.inject({ method: 'DELETE', url, headers: { ...writer, 'if-match': '"1"' } })
  t.equal(del.statusCode, 204)
  t.equal(del.body, '')
  t.same((await auditFor(del)).map((a) => `${a.action} ${a.entity}`), ['update interactions'])
  const archivedAt = (await ctx.app.inject({ url, headers: reader })).json().archived_at
  t.ok(archivedAt)
  const again = await ctx.app.inject({ method: 'DELETE', url, headers: writer })
  t.equal(again.statusCode, 204)
  t.same(await auditFor(again), [], 'archiving again changes nothing')
  t.equal((await ctx.app.inject({ url, headers: reader })).json().archived_at, archivedAt)
  const listed = (await ctx.app.inject({ url: `/v1/customers/${c}/interactions`, headers: reader })).json()
  t.same(listed.data, [])
  const archived = (await ctx.app.inject({ url: `/v1/customers/${c}/interactions?archived=true`, headers: reader })).json()
  t.same(archived.data.map((x: { id: string }) => x.id), [i.id])
  t.equal((await ctx.app.inject({ method: 'POST', url: `${url}/restore`, headers: { ...writer, 'if-match': '"1"' } })).statusCode, 412)
  const restore = await ctx.app.inject({ method: 'POST', url: `${url}/restore`, headers: writer })
  t.equal(restore.statusCode, 200)
  t.match(restore.json(), { archived_at: null, version: 3 })
  t.equal(restore.headers.etag, '"3"')
  t.same((await auditFor(restore)).map((a) => `${a.action} ${a.entity}`), ['update interactions'])
  t.equal((await ctx.app.inject({ method: 'DELETE', url: `/v1/interactions/${UNKNOWN}`, headers: writer })).statusCode, 404)
  t.equal((await ctx.app.inject({ method: 'POST', url: `/v1/interactions/${UNKNOWN}/restore`, headers: writer })).statusCode, 404)
  t.equal((await ctx.app.inject({ method: 'DELETE', url, headers: reader })).statusCode, 403)
})

t.test('the contract: every operation named and tagged, every schema described with an example, every body string bounded', async (t) => {
  const doc = (await ctx.app.inject({ url: '/openapi.json' })).json()
  const ops = {
    'get /v1/interactions': 'listInteractions', 'post /v1/interactions': 'createInteraction', 'post /v1/interactions/batch': 'batchCreateInteractions',
    'get /v1/interactions/{id}': 'getInteraction', 'patch /v1/interactions/{id}': 'updateInteraction', 'delete /v1/interactions/{id}': 'archiveInteraction',
    'post /v1/interactions/{id}/restore': 'restoreInteraction', 'get /v1/customers/{id}/interactions': 'listCustomerInteractions',
  }
  for (const [key, operationId] of Object.entries(ops)) {
    const [method, path] = key.split(' ') as [string, string]
    t.match(doc.paths[path]?.[method], { operationId, tags: ['interactions'], summary: String }, key)
  }
  t.ok(doc.tags.some((tag: { name: string }) => tag.name === 'interactions'))
  for (const name of ['Interaction', 'InteractionCreate', 'InteractionPatch', 'InteractionList', 'InteractionBatch', 'InteractionBatchResult']) {
    t.match(doc.components.schemas[name], { description: String, example: Object }, name)
  }
  for (const name of ['InteractionCreate', 'InteractionPatch']) {
    const schema = doc.components.schemas[name]
    t.equal(schema.additionalProperties, false, `${name} is closed`)
    for (const [field, prop] of Object.entries(schema.properties as Record<string, { type?: string; maxLength?: number; format?: string; enum?: unknown[] }>)) {
      if (prop.type !== 'string' || prop.enum) continue
      t.ok(prop.maxLength !== undefined || ['uuid', 'date', 'date-time'].includes(prop.format ?? ''), `${name}.${field} is bounded`)
    }
    t.equal(schema.properties.notes.maxLength, 10_000)
  }
})

t.test('the customer timeline shows interactions made through this API, and hides archived ones', async (t) => {
  const c = await customer()
  const i = (await post({ customer_id: c, channel: 'phone', direction: 'outbound', subject: 'Timeline call', outcome: 'completed', occurred_at: '2026-02-02T02:02:02Z' })).json()
  const timeline = async () =>
    (await ctx.app.inject({ url: `/v1/customers/${c}/timeline?types=interaction`, headers: await ctx.auth('interactions:read customers:read') })).json()
  const shown = await timeline()
  t.match(shown.data, [{ type: 'interaction', id: i.id, occurred_at: i.occurred_at, summary: { channel: 'phone', direction: 'outbound', subject: 'Timeline call', outcome: 'completed' } }])
  t.equal(shown.data.length, 1)
  await ctx.app.inject({ method: 'DELETE', url: `/v1/interactions/${i.id}`, headers: writer })
  t.same((await timeline()).data, [])
})
