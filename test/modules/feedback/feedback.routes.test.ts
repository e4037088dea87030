import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('feedback:write feedback:read')
const reader = await ctx.auth('feedback:read')
const UNKNOWN = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'

async function customer(fields: Record<string, unknown> = {}) {
  const row = await ctx.db.insertInto('customers').values({ name: 'Test customer', ...fields } as never).returning('id').executeTakeFirstOrThrow()
  return row.id
}

async function order(customerId: string) {
  const row = await ctx.db.insertInto('orders').values({ customer_id: customerId, currency: 'CNY' } as never).returning('id').executeTakeFirstOrThrow()
  return row.id
}

async function interaction(customerId: string) {
  const row = await ctx.db.insertInto('interactions').values({ customer_id: customerId, channel: 'phone' }).returning('id').executeTakeFirstOrThrow()
  return row.id
}

async function post(body: Record<string, unknown>, headers: Record<string, string> = writer) {
  return ctx.app.inject({ method: 'POST', url: '/v1/feedback', headers, payload: body })
}

async function patch(id: string, body: Record<string, unknown>, headers: Record<string, string> = writer) {
  return ctx.app.inject({ method: 'PATCH', url: `/v1/feedback/${id}`, headers, payload: body })
}

async function auditFor(requestId: string) {
  return ctx.db.selectFrom('audit_events').selectAll().where('request_id', '=', requestId).where('entity', '=', 'feedback').orderBy('id').execute()
}

/** Row and audit counts: a refused request must leave both as they were. */
async function counts() {
  return { feedback: await ctx.count('feedback'), audit: await ctx.count('audit_events') }
}

const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer).sort()

t.test('create: 201 + Location + ETag, defaults, and one audit row with the request id', async (t) => {
  const c = await customer()
  const res = await post({ customer_id: c, kind: 'suggestion', subject: 'More oolong', body: 'Please stock the 500 g tin.', channel: 'web' })
  t.equal(res.statusCode, 201, res.body)
  const f = res.json()
  t.equal(res.headers.location, `/v1/feedback/${f.id}`)
  t.equal(res.headers.etag, '"1"')
  t.match(f, {
    customer_id: c, kind: 'suggestion', survey_type: null, score: null, status: null, priority: null, sla_due_at: null, sla_breached: null,
    resolved_at: null, resolution_note: null, version: 1, archived_at: null, channel: 'web',
  })
  t.match(f.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7/, 'a UUID v7')
  const audit = await auditFor(res.headers['x-request-id'] as string)
  t.same(audit.map((a) => [a.action, a.entity_id, a.actor, a.route]), [['insert', f.id, 'user:test', 'POST /v1/feedback']])
  const given = await post({ customer_id: c, kind: 'praise' }, { ...writer, 'x-request-id': 'req-feedback-1' })
  t.equal(given.headers['x-correlation-id'], 'req-feedback-1')
  t.equal((await auditFor(given.headers['x-request-id'] as string)).length, 1, 'the audit row carries the request id the response reports')

  const complaint = await post({ customer_id: c, kind: 'complaint', subject: 'Late' })
  t.equal(complaint.statusCode, 201)
  const cf = complaint.json()
  t.match(cf, { status: 'open', priority: 'normal', sla_breached: false, resolved_at: null })
  t.equal(Date.parse(cf.sla_due_at) - Date.parse(cf.submitted_at), 72 * 3600_000, 'normal: 72 h')
})

t.test('surveys: scores per type, inclusive bounds; other kinds and their scores', async (t) => {
  const c = await customer()
  const cases: Array<[Record<string, unknown>, number, string[]]> = [
    [{ kind: 'survey', survey_type: 'csat', score: 1 }, 201, []],
    [{ kind: 'survey', survey_type: 'csat', score: 5 }, 201, []],
    [{ kind: 'survey', survey_type: 'csat', score: 0 }, 422, ['/score']],
    [{ kind: 'survey', survey_type: 'csat', score: 6 }, 422, ['/score']],
    [{ kind: 'survey', survey_type: 'nps', score: 0 }, 201, []],
    [{ kind: 'survey', survey_type: 'nps', score: 10 }, 201, []],
    [{ kind: 'survey', survey_type: 'nps', score: 11 }, 400, ['/score']],
    [{ kind: 'survey', survey_type: 'nps', score: -1 }, 400, ['/score']],
    [{ kind: 'survey', survey_type: 'nps', score: 7.5 }, 400, ['/score']],
    [{ kind: 'survey', survey_type: 'nps', score: '7' }, 400, ['/score']],
    [{ kind: 'survey', survey_type: 'nps' }, 422, ['/score']],
    [{ kind: 'survey', score: 3 }, 422, ['/survey_type']],
    [{ kind: 'survey', survey_type: 'ces', score: 3 }, 400, ['/survey_type']],
    [{ kind: 'review' }, 201, []],
    [{ kind: 'review', score: 1 }, 201, []],
    [{ kind: 'review', score: 5 }, 201, []],
    [{ kind: 'review', score: 0 }, 422, ['/score']],
    [{ kind: 'review', score: 6 }, 422, ['/score']],
    [{ kind: 'review', survey_type: 'csat', score: 4 }, 422, ['/survey_type']],
    [{ kind: 'praise', score: 5 }, 422, ['/score']],
    [{ kind: 'suggestion', score: 3 }, 422, ['/score']],
    [{ kind: 'complaint', score: 1 }, 422, ['/score']],
    [{ kind: 'complaint', survey_type: 'nps' }, 422, ['/survey_type']],
    [{ kind: 'suggestion', survey_type: null, score: null }, 201, []],
  ]
  for (const [body, status, ptrs] of cases) {
    const before = await counts()
    const res = await post({ customer_id: c, ...body })
    t.equal(res.statusCode, status, `${JSON.stringify(body)} → ${status}: ${res.body}`)
    if (status === 201) {
      t.match(res.json(), { kind: body.kind, survey_type: body.survey_type ?? null, score: body.score ?? null })
    } else {
      t.same(pointers(res), ptrs, `${JSON.stringify(body)} points at ${ptrs}`)
      t.same(await counts(), before, 'nothing written, nothing audited')
    }
  }
})

t.test('workflow fields are refused for non-complaints, on create and on update', async (t) => {
  const c = await customer()
  const before = await counts()
  for (const kind of ['survey', 'suggestion', 'review', 'praise']) {
    const extra = kind === 'survey' ? { survey_type: 'csat', score: 4 } : {}
    const res = await post({ customer_id: c, kind, ...extra, status: 'open', priority: 'high', sla_due_at: '2030-01-01T00:00:00Z', resolution_note: 'x' })
    t.equal(res.statusCode, 422, kind)
    t.same(pointers(res), ['/priority', '/resolution_note', '/sla_due_at', '/status'], kind)
  }
  t.same(await counts(), before)
  const praise = (await post({ customer_id: c, kind: 'praise', assignee: 'agent:a' })).json()
  t.equal(praise.assignee, 'agent:a', 'assignee is for any kind')
  const after = await counts()
  for (const body of [{ status: 'resolved' }, { priority: 'urgent' }, { sla_due_at: '2030-01-01T00:00:00Z' }, { resolution_note: 'done' }, { score: 3 }]) {
    const res = await patch(praise.id, body)
    t.equal(res.statusCode, 422, JSON.stringify(body))
    t.same(pointers(res), [`/${Object.keys(body)[0]}`])
  }
  t.equal((await patch(praise.id, { resolution_note: null })).statusCode, 200, 'null is what a praise has: no change')
  const fixed = await patch(praise.id, { kind: 'complaint', survey_type: 'csat', customer_id: c, version: 3, sla_breached: true, resolved_at: '2030-01-01T00:00:00Z' })
  t.equal(fixed.statusCode, 400)
  t.same(pointers(fixed), ['/customer_id', '/kind', '/resolved_at', '/sla_breached', '/survey_type', '/version'])
  const badStatus = await patch(praise.id, { status: null })
  t.equal(badStatus.statusCode, 400, 'status is never null')
  t.same(await counts(), after, 'refused patches write nothing')
  const survey = (await post({ customer_id: c, kind: 'survey', survey_type: 'nps', score: 8 })).json()
  const cleared = await patch(survey.id, { score: null })
  t.equal(cleared.statusCode, 422)
  t.same(pointers(cleared), ['/score'])
  t.equal((await patch(survey.id, { score: 0 })).json().score, 0)
})

t.test('links: an order or interaction must exist and belong to the same customer', async (t) => {
  const c = await customer()
  const other = await customer()
  const o = await order(c)
  const i = await interaction(c)
  const foreignOrder = await order(other)
  const foreignInteraction = await interaction(other)
  const ok = await post({ customer_id: c, kind: 'complaint', order_id: o, interaction_id: i })
  t.equal(ok.statusCode, 201, ok.body)
  t.match(ok.json(), { order_id: o, interaction_id: i })
  const archived = await customer({ archived_at: new Date().toISOString() })
  const before = await counts()
  const foreign = await post({ customer_id: c, kind: 'complaint', order_id: foreignOrder, interaction_id: foreignInteraction })
  t.equal(foreign.statusCode, 422)
  t.same(pointers(foreign), ['/interaction_id', '/order_id'])
  t.match(foreign.json().errors.find((e: { pointer: string }) => e.pointer === '/order_id'), { message: /another customer/ })
  const missing = await post({ customer_id: c, kind: 'praise', order_id: UNKNOWN, interaction_id: UNKNOWN })
  t.equal(missing.statusCode, 422)
  t.same(pointers(missing), ['/interaction_id', '/order_id'])
  t.match(missing.json().errors[0], { message: /not an existing/ })
  const badCustomer = await post({ customer_id: UNKNOWN, kind: 'praise' })
  t.equal(badCustomer.statusCode, 422)
  t.same(pointers(badCustomer), ['/customer_id'])
  t.equal((await post({ customer_id: archived, kind: 'praise' })).statusCode, 422, 'archived customers give no feedback')
  const moved = await patch(ok.json().id, { order_id: foreignOrder })
  t.equal(moved.statusCode, 422)
  t.same(pointers(moved), ['/order_id'])
  t.same(await counts(), before, 'refused links write nothing')
  const unlinked = await patch(ok.json().id, { order_id: null, interaction_id: null })
  t.match(unlinked.json(), { order_id: null, interaction_id: null, version: 2 })
  t.equal((await patch(ok.json().id, { order_id: o })).json().order_id, o)
})

t.test('external_ref upsert: 201 then 200 on the same feedback, never a duplicate', async (t) => {
  const c = await customer()
  const first = await post({ external_ref: 'survey-1', customer_id: c, kind: 'survey', survey_type: 'csat', score: 3 })
  t.equal(first.statusCode, 201)
  const again = await post({ external_ref: 'survey-1', customer_id: c, kind: 'survey', survey_type: 'csat', score: 4, body: 'better' })
  t.equal(again.statusCode, 200, again.body)
  t.equal(again.headers.location, undefined)
  t.equal(again.headers.etag, '"2"')
  t.match(again.json(), { id: first.json().id, score: 4, body: 'better', version: 2 })
  const same = await post({ external_ref: 'survey-1', customer_id: c, kind: 'survey', survey_type: 'csat', score: 4, body: 'better' })
  t.equal(same.statusCode, 200)
  t.equal(same.json().version, 2, 'an identical re-sync changes nothing')
  t.same(await auditFor(same.headers['x-request-id'] as string), [], 'and audits nothing')
  const stranger = await customer()
  const before = await counts()
  const changed = await post({ external_ref: 'survey-1', customer_id: stranger, kind: 'review', survey_type: null, score: 4 })
  t.equal(changed.statusCode, 422)
  t.same(pointers(changed), ['/customer_id', '/kind', '/survey_type'])
  const range = await post({ external_ref: 'survey-1', customer_id: c, kind: 'survey', survey_type: 'csat', score: 9 })
  t.equal(range.statusCode, 422, 'upserts follow the survey rules')
  t.same(await counts(), before)
  const second = await post({ external_ref: 'survey-2', customer_id: c, kind: 'praise' })
  const taken = await patch(second.json().id, { external_ref: 'survey-1' })
  t.equal(taken.statusCode, 409)
  t.same(pointers(taken), ['/external_ref'])
  const complaint = await post({ external_ref: 'desk-1', customer_id: c, kind: 'complaint' })
  const resolve = await post({ external_ref: 'desk-1', customer_id: c, kind: 'complaint', status: 'resolved', resolution_note: 'fixed' })
  t.equal(resolve.statusCode, 200)
  t.match(resolve.json(), { id: complaint.json().id, status: 'resolved', resolution_note: 'fixed' })
  t.ok(resolve.json().resolved_at)
  const illegal = await post({ external_ref: 'desk-1', customer_id: c, kind: 'complaint', status: 'in_progress' })
  t.equal(illegal.statusCode, 422, 'upserts follow the workflow')
  t.same(pointers(illegal), ['/status'])
})

t.test('concurrent upserts of one external_ref make one feedback', async (t) => {
  const c = await customer()
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => post({ external_ref: 'race-ref', customer_id: c, kind: 'review', score: (i % 5) + 1 })))
  t.same(results.map((r) => r.statusCode).sort(), [200, 200, 200, 200, 201])
  t.equal(new Set(results.map((r) => r.json().id)).size, 1)
  const n = await ctx.db.selectFrom('feedback').select((eb) => eb.fn.countAll<number>().as('n')).where('external_ref', '=', 'race-ref').executeTakeFirstOrThrow()
  t.equal(n.n, 1)
})

t.test('get: ETag, If-None-Match 304, 404, 400 and scopes', async (t) => {
  const f = (await post({ customer_id: await customer(), kind: 'praise', body: 'Lovely tea' })).json()
  const url = `/v1/feedback/${f.id}`
  const res = await ctx.app.inject({ url, headers: reader })
  t.equal(res.statusCode, 200)
  t.equal(res.headers.etag, '"1"')
  t.same(res.json(), f)
  const cached = await ctx.app.inject({ url, headers: { ...reader, 'if-none-match': '"1"' } })
  t.equal(cached.statusCode, 304)
  t.equal(cached.body, '')
  t.equal((await ctx.app.inject({ url, headers: { ...reader, 'if-none-match': '"2"' } })).statusCode, 200)
  const missing = await ctx.app.inject({ url: `/v1/feedback/${UNKNOWN}`, headers: reader })
  t.equal(missing.statusCode, 404)
  t.equal(missing.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal((await ctx.app.inject({ url: '/v1/feedback/nope', headers: reader })).statusCode, 400)
  t.equal((await ctx.app.inject({ url, headers: await ctx.auth('customers:read orders:read') })).statusCode, 403)
  t.equal((await post({ customer_id: f.customer_id, kind: 'praise' }, reader)).statusCode, 403, 'reading is not writing')
  t.equal((await patch(f.id, { body: 'x' }, reader)).statusCode, 403)
  t.equal((await ctx.app.inject({ url, headers: await ctx.auth('feedback:*') })).statusCode, 200)
  t.equal((await ctx.app.inject({ url })).statusCode, 401)
})

t.test('patch: merge patch, If-Match 412, audit row per change, no-op writes nothing', async (t) => {
  const f = (await post({ customer_id: await customer(), kind: 'review', score: 2, subject: 'Meh', body: 'b', channel: 'app' })).json()
  const url = `/v1/feedback/${f.id}`
  const before = await counts()
  const stale = await ctx.app.inject({ method: 'PATCH', url, headers: { ...writer, 'if-match': '"7"' }, payload: { body: 'x' } })
  t.equal(stale.statusCode, 412)
  t.equal((await ctx.app.inject({ method: 'PATCH', url, headers: { ...writer, 'if-match': 'seven' }, payload: { body: 'x' } })).statusCode, 400)
  t.same(await counts(), before, 'a 412 writes nothing')
  const res = await ctx.app.inject({
    method: 'PATCH', url, headers: { ...writer, 'if-match': '"1"', 'content-type': 'application/merge-patch+json' },
    payload: JSON.stringify({ body: null, score: 4, assignee: 'agent:b' }),
  })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers.etag, '"2"')
  t.match(res.json(), { body: null, score: 4, assignee: 'agent:b', subject: 'Meh', channel: 'app', version: 2 })
  const audit = await auditFor(res.headers['x-request-id'] as string)
  t.equal(audit.length, 1)
  t.match(audit[0], { action: 'update', entity_id: f.id, route: 'PATCH /v1/feedback/:id', before: { score: 2, body: 'b' }, after: { score: 4, body: null } })
  const same = await patch(f.id, { score: 4 })
  t.equal(same.json().version, 2, 'the current value is no change')
  t.same(await auditFor(same.headers['x-request-id'] as string), [])
  t.equal((await patch(f.id, {})).statusCode, 400, 'an empty patch is a 400')
  t.equal((await patch(UNKNOWN, { body: 'x' })).statusCode, 404)
  const long = await patch(f.id, { subject: 'x'.repeat(301), body: 'y'.repeat(10001), assignee: '' })
  t.equal(long.statusCode, 400)
  t.same(pointers(long), ['/assignee', '/body', '/subject'])
})

t.test('If-Match race: K parallel PATCHes with the same ETag, exactly one wins', async (t) => {
  const K = 8
  const f = (await post({ customer_id: await customer(), kind: 'complaint' })).json()
  const results = await Promise.all(Array.from({ length: K }, (_, i) =>
    ctx.app.inject({ method: 'PATCH', url: `/v1/feedback/${f.id}`, headers: { ...writer, 'if-match': '"1"' }, payload: { assignee: `agent:${i}` } })))
  const codes = results.map((r) => r.statusCode).sort()
  t.same(codes, [200, ...Array(K - 1).fill(412)])
  const winner = results.find((r) => r.statusCode === 200)!
  const now = (await ctx.app.inject({ url: `/v1/feedback/${f.id}`, headers: reader })).json()
  t.match(now, { version: 2, assignee: winner.json().assignee })
  const updates = await ctx.db.selectFrom('audit_events').select('request_id').where('entity_id', '=', f.id).where('action', '=', 'update').execute()
  t.same(updates.map((u) => u.request_id), [winner.headers['x-request-id']], 'one update, audited with the winner\'s request id')
})

t.test('delete archives (204), hides from lists, is idempotent, honours If-Match', async (t) => {
  const c = await customer()
  const f = (await post({ customer_id: c, kind: 'praise' })).json()
  const url = `/v1/feedback/${f.id}`
  t.equal((await ctx.app.inject({ method: 'DELETE', url, headers: { ...writer, 'if-match': '"9"' } })).statusCode, 412)
  const del = await ctx.app.inject({ method: 'DELETE', url, headers: { ...writer, 'if-match': '"1"' } })
  t.equal(del.statusCode, 204)
  t.same((await auditFor(del.headers['x-request-id'] as string)).map((a) => a.action), ['update'])
  const again = await ctx.app.inject({ method: 'DELETE', url, headers: writer })
  t.equal(again.statusCode, 204)
  t.same(await auditFor(again.headers['x-request-id'] as string), [], 'archiving again changes nothing')
  t.ok((await ctx.app.inject({ url, headers: reader })).json().archived_at, 'still readable by id')
  t.same((await ctx.app.inject({ url: `/v1/customers/${c}/feedback`, headers: reader })).json().data, [])
  t.equal((await ctx.app.inject({ url: `/v1/customers/${c}/feedback?archived=true`, headers: reader })).json().data[0].id, f.id)
  t.equal((await ctx.app.inject({ method: 'DELETE', url: `/v1/feedback/${UNKNOWN}`, headers: writer })).statusCode, 404)
})
