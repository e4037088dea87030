import t, { type Test } from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

/**
 * POST /v1/customers/{id}/merge: everything of the duplicate moves to the target in one audited
 * transaction, contact points dedupe with one primary per kind, the profile merges per `prefer`,
 * metrics stay exact for both, the duplicate's external_ref keeps finding the target, and
 * refused merges change nothing.
 */
const ctx = await setup()
const admin = await ctx.auth()
const PURCHASE = new Set(['paid', 'fulfilled', 'partially_refunded'])

async function create(body: Record<string, unknown>): Promise<Record<string, any>> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: body })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json()
}

function merge(target: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return ctx.app.inject({ method: 'POST', url: `/v1/customers/${target}/merge`, headers: { ...admin, ...headers }, payload: body })
}

async function get(id: string, include = '') {
  const res = await ctx.app.inject({ url: `/v1/customers/${id}${include ? `?include=${include}` : ''}`, headers: admin })
  return res
}

let day = 0
async function order(customerId: string, total: string, status = 'paid', currency = 'CNY') {
  day += 1
  const paid = status === 'pending' || status === 'cancelled' ? '0' : total
  return (await ctx.db.insertInto('orders').values({
    customer_id: customerId, currency, subtotal: total, total, status, amount_paid: paid,
    ordered_at: new Date(Date.now() - day * 86_400_000).toISOString(),
  } as never).returning('id').executeTakeFirstOrThrow()).id as string
}

async function interaction(customerId: string, daysAgo: number) {
  return (await ctx.db.insertInto('interactions').values({ customer_id: customerId, channel: 'phone', occurred_at: new Date(Date.now() - daysAgo * 86_400_000).toISOString() } as never)
    .returning('id').executeTakeFirstOrThrow()).id as string
}

async function feedback(customerId: string, values: Record<string, unknown>) {
  return (await ctx.db.insertInto('feedback').values({ customer_id: customerId, ...values } as never).returning('id').executeTakeFirstOrThrow()).id as string
}

/** All metrics, recomputed here from the raw rows. */
async function expectedMetrics(customerId: string) {
  const orders = await sql<{ status: string; currency: string; total: string; amount_refunded: string; ordered_at: string; archived_at: string | null }>`
    select status, currency, total::text, amount_refunded::text, ordered_at, archived_at from orders where customer_id = ${customerId}`.execute(ctx.db)
  const interactions = await sql<{ occurred_at: string }>`select occurred_at from interactions where customer_id = ${customerId} and archived_at is null`.execute(ctx.db)
  const fb = await sql<{ id: string; kind: string; status: string | null; survey_type: string | null; score: number | null; submitted_at: string }>`
    select id, kind, status, survey_type, score, submitted_at from feedback where customer_id = ${customerId} and archived_at is null`.execute(ctx.db)
  const counted = orders.rows.filter((r) => PURCHASE.has(r.status) && !r.archived_at)
  const cents = (s: string) => BigInt(s.replace('.', ''))
  const spend = new Map<string, { n: number; c: bigint }>()
  for (const r of counted) {
    const cur = spend.get(r.currency) ?? { n: 0, c: 0n }
    spend.set(r.currency, { n: cur.n + 1, c: cur.c + cents(r.total) - cents(r.amount_refunded) })
  }
  const fmt = (c: bigint) => `${c / 100n}.${String(c % 100n).padStart(2, '0')}`
  const iso = (d: unknown) => new Date(d as string).toISOString()
  const times = counted.map((r) => iso(r.ordered_at)).sort()
  const latest = (type: string) => {
    const rows = fb.rows.filter((r) => r.survey_type === type).sort((a, b) => iso(b.submitted_at).localeCompare(iso(a.submitted_at)) || (b.id < a.id ? -1 : 1))
    return rows[0]?.score ?? null
  }
  const itimes = interactions.rows.map((r) => iso(r.occurred_at)).sort()
  return {
    order_count: counted.length,
    first_order_at: times[0] ?? null,
    last_order_at: times[times.length - 1] ?? null,
    spend: [...spend.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([currency, v]) => ({ currency, order_count: v.n, total_spent: fmt(v.c) })),
    interaction_count: interactions.rows.length,
    last_interaction_at: itimes[itimes.length - 1] ?? null,
    open_complaints: fb.rows.filter((r) => r.kind === 'complaint' && (r.status === 'open' || r.status === 'in_progress')).length,
    latest_csat: latest('csat'),
    latest_nps: latest('nps'),
  }
}

async function checkMetrics(t: Test, id: string, label: string) {
  const res = await get(id, 'metrics')
  t.equal(res.statusCode, 200)
  const m = res.json().metrics
  const want = await expectedMetrics(id)
  const norm = (v: string | null) => (v === null ? null : new Date(v).toISOString())
  t.same({
    ...m, first_order_at: norm(m.first_order_at), last_order_at: norm(m.last_order_at), last_interaction_at: norm(m.last_interaction_at),
    spend: m.spend.map((s: Record<string, unknown>) => ({ currency: s.currency, order_count: s.order_count, total_spent: s.total_spent })),
    days_since_last_order: undefined,
  }, { ...want, days_since_last_order: undefined }, `${label}: metrics equal a recomputation from raw rows`)
}

async function contactPoints(id: string) {
  return ctx.db.selectFrom('contact_points').selectAll().where('customer_id', '=', id).orderBy('kind').orderBy('value_normalized').execute()
}

function onePrimaryPerKind(t: Test, points: Array<{ kind: string; is_primary: boolean }>, label: string) {
  const kinds = new Set(points.map((p) => p.kind))
  for (const kind of kinds) t.equal(points.filter((p) => p.kind === kind && p.is_primary).length, 1, `${label}: one primary ${kind}`)
}

async function auditCount() {
  return ctx.count('audit_events')
}

t.test('everything moves, contact points dedupe, the target wins by default, and it is all audited', async (t) => {
  const target = await create({
    external_ref: 'merge-T1', name: 'Target Tan', company: 'Tan Trading', tags: ['vip', 'shared'], interests: ['golf'],
    attributes: { shoe_size: 38, nested: { x: 1 } }, preferences: { language: 'en' }, consent: { email_marketing: true },
    loyalty_points: 100,
    contact_points: [
      { kind: 'email', value: 'tan@example.com', is_primary: true },
      { kind: 'email', value: 'both@example.com' },
      { kind: 'phone', value: '+8613800000001' },
    ],
  })
  const dup = await create({
    external_ref: 'merge-D1', name: 'Dup Tan', given_name: 'Dee', company: 'Dup Co', job_title: 'CTO', gender: 'female',
    tags: ['shared', 'newsletter'], interests: ['tennis', 'golf'], attributes: { shoe_size: 40, hat: 'L', nested: { y: 2 } },
    preferences: { language: 'zh', currency: 'CNY' }, consent: { email_marketing: false, sms_marketing: true }, loyalty_points: 50,
    credit_limit: '500.00', credit_currency: 'CNY',
    contact_points: [
      { kind: 'email', value: 'BOTH@example.com', is_primary: true, verified: true },
      { kind: 'email', value: 'dee@example.com' },
      { kind: 'phone', value: '+86 138-0000-0002', is_primary: true },
      { kind: 'social', network: 'wechat', value: 'dee_wx' },
      { kind: 'address', address: { line1: '1 Nanjing Rd', city: 'Shanghai', country: 'CN' } },
    ],
  })
  const tOrders = [await order(target.id, '10.00'), await order(target.id, '5.00', 'pending')]
  const dOrders = [await order(dup.id, '20.50'), await order(dup.id, '7.25', 'paid', 'USD'), await order(dup.id, '3.00', 'cancelled')]
  const dInteractions = [await interaction(dup.id, 3), await interaction(dup.id, 1)]
  await interaction(target.id, 10)
  const dFeedback = [
    await feedback(dup.id, { kind: 'complaint', status: 'open', priority: 'normal' }),
    await feedback(dup.id, { kind: 'survey', survey_type: 'csat', score: 2, submitted_at: new Date(Date.now() - 1000).toISOString() }),
  ]
  await feedback(target.id, { kind: 'survey', survey_type: 'csat', score: 5, submitted_at: new Date(Date.now() - 86_400_000).toISOString() })
  const dupPoints = await contactPoints(dup.id)

  const res = await merge(target.id, { duplicate_id: dup.id })
  t.equal(res.statusCode, 200, res.body)
  const merged = res.json()
  t.equal(res.headers.etag, `"${merged.version}"`, 'ETag is the merged version')
  t.match(merged, {
    id: target.id, external_ref: 'merge-T1', name: 'Target Tan', given_name: 'Dee', company: 'Tan Trading', job_title: 'CTO', gender: 'female',
    credit_limit: '500.00', credit_currency: 'CNY', loyalty_points: 150, archived_at: null, merged_into_id: null,
    primary_email: 'tan@example.com', primary_phone: '+8613800000001',
  })
  t.same(merged.tags, ['vip', 'shared', 'newsletter'], 'tags united, the target\'s first')
  t.same(merged.interests, ['golf', 'tennis'], 'interests united')
  t.same(merged.attributes, { shoe_size: 38, hat: 'L', nested: { x: 1, y: 2 } }, 'attributes deep-merged, the target winning')
  t.same(merged.preferences, { language: 'en', currency: 'CNY' })
  t.same(merged.consent, { email_marketing: true, sms_marketing: true })

  // Activity moved.
  for (const table of ['orders', 'interactions', 'feedback'] as const) {
    const left = await ctx.db.selectFrom(table).select('id').where('customer_id', '=', dup.id).execute()
    t.equal(left.length, 0, `no ${table} left on the duplicate`)
  }
  const ordersNow = await ctx.db.selectFrom('orders').select('id').where('customer_id', '=', target.id).execute()
  t.same(new Set(ordersNow.map((o) => o.id)), new Set([...tOrders, ...dOrders]), 'all orders are the target\'s')
  t.equal((await ctx.db.selectFrom('interactions').select('id').where('customer_id', '=', target.id).execute()).length, 3)
  t.equal((await ctx.db.selectFrom('feedback').select('id').where('customer_id', '=', target.id).execute()).length, 3)

  // Contact points.
  const points = await contactPoints(target.id)
  t.same(points.map((p) => [p.kind, p.value_normalized, p.is_primary]), [
    ['address', '1 nanjing rd, shanghai, cn', true],
    ['email', 'both@example.com', false],
    ['email', 'dee@example.com', false],
    ['email', 'tan@example.com', true],
    ['phone', '+8613800000001', true],
    ['phone', '+8613800000002', false],
    ['social', 'dee_wx', true],
  ], 'one per kind and value; the target keeps its primaries and takes the duplicate\'s where it had none')
  t.equal(points.find((p) => p.value_normalized === 'both@example.com')!.verified, true, 'the kept copy is verified when either was')
  onePrimaryPerKind(t, points, 'target')
  t.same(await contactPoints(dup.id), [], 'the duplicate has no contact points left')

  // The duplicate: archived, merged, still readable by id.
  const dupNow = await get(dup.id)
  t.equal(dupNow.statusCode, 200)
  t.match(dupNow.json(), { id: dup.id, external_ref: 'merge-D1', merged_into_id: target.id, loyalty_points: 0, archived_at: String })
  t.equal(dupNow.headers.etag, `"${dupNow.json().version}"`)
  const listed = await ctx.app.inject({ url: '/v1/customers?q=Dup%20Tan', headers: admin })
  t.same(listed.json().data, [], 'hidden from lists like any archived customer')

  // Metrics and lifecycle, exact for both.
  await checkMetrics(t, target.id, 'target')
  await checkMetrics(t, dup.id, 'duplicate')
  t.match((await get(dup.id, 'metrics')).json(), { lifecycle_stage: 'lead', metrics: { order_count: 0, interaction_count: 0, open_complaints: 0, latest_csat: null, spend: [] } })
  t.equal((await get(target.id)).json().lifecycle_stage, 'repeat', 'three purchases (one cancelled, one pending do not count): repeat')
  t.equal((await get(target.id, 'metrics')).json().metrics.latest_csat, 2, 'the duplicate\'s later csat is now the target\'s latest')

  // Audit: every changed row, with the response's request id.
  const requestId = res.headers['x-request-id'] as string
  const audit = await ctx.db.selectFrom('audit_events').select(['entity', 'entity_id', 'action', 'actor']).where('request_id', '=', requestId).execute()
  const has = (entity: string, id: string, action: string) => audit.some((a) => a.entity === entity && a.entity_id === id && a.action === action)
  for (const id of dOrders) t.ok(has('orders', id, 'update'), `order ${id} move audited`)
  for (const id of dInteractions) t.ok(has('interactions', id, 'update'), 'interaction move audited')
  for (const id of dFeedback) t.ok(has('feedback', id, 'update'), 'feedback move audited')
  for (const p of dupPoints) {
    t.ok(has('contact_points', p.id, p.value_normalized === 'both@example.com' ? 'delete' : 'update'), `contact point ${p.value_normalized} audited`)
  }
  t.ok(has('customers', target.id, 'update'), 'target update audited')
  t.ok(has('customers', dup.id, 'update'), 'duplicate archive audited')
  t.notOk(audit.some((a) => a.entity === 'orders' && tOrders.includes(a.entity_id)), 'the target\'s own orders are not touched')
  t.ok(audit.every((a) => a.actor === 'user:test'), 'all by the caller')

  // The duplicate's external_ref finds the target from now on.
  const before = await ctx.count('customers')
  const upsert = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { external_ref: 'merge-D1', name: 'Target Tan', occupation: 'engineer', attributes: { eye: 'brown' } } })
  t.equal(upsert.statusCode, 200, upsert.body)
  t.match(upsert.json(), { id: target.id, external_ref: 'merge-T1', occupation: 'engineer', attributes: { shoe_size: 38, hat: 'L', eye: 'brown' } })
  t.equal(await ctx.count('customers'), before, 'no customer created')
  t.match((await get(dup.id)).json(), { occupation: null, merged_into_id: target.id }, 'the duplicate is not written')
  const own = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { external_ref: 'merge-T1', name: 'Target Tan' } })
  t.equal(own.json().id, target.id, 'the target\'s own external_ref still works')

  // A merged customer is a forwarding record: not restored, not written.
  const auditBefore = await auditCount()
  const dupBefore = (await get(dup.id)).json()
  const restore = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${dup.id}/restore`, headers: admin })
  t.equal(restore.statusCode, 422)
  t.match(restore.json().detail, target.id, 'names the survivor')
  const patch = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${dup.id}`, headers: admin, payload: { job_title: 'Ghost' } })
  t.equal(patch.statusCode, 422, 'no profile writes')
  const point = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${dup.id}/contact-points`, headers: admin, payload: { kind: 'email', value: 'ghost@example.com' } })
  t.equal(point.statusCode, 422, 'no contact points')
  t.same((await get(dup.id)).json(), dupBefore, 'the duplicate is unchanged')
  t.equal(await auditCount(), auditBefore, 'and nothing was audited')
})

t.test('prefer=duplicate: the duplicate\'s values win where both are set, nulls are still filled', async (t) => {
  const target = await create({
    name: 'Pref Target', given_name: 'Pat', company: 'Old Co', occupation: 'teacher', credit_limit: '100.00', credit_currency: 'USD',
    attributes: { a: 1, b: 1 }, tags: ['x'],
    contact_points: [{ kind: 'phone', value: '+8613900000001' }],
  })
  const dup = await create({
    name: 'Pref Dup', company: 'New Co', job_title: 'Buyer', payment_terms_days: 30, attributes: { b: 2, c: 2 }, tags: ['x', 'y'],
    contact_points: [{ kind: 'email', value: 'pref@example.com' }, { kind: 'phone', value: '+8613900000002' }],
  })
  await order(dup.id, '1.00')
  await order(dup.id, '2.00')
  const res = await merge(target.id, { duplicate_id: dup.id, prefer: 'duplicate' })
  t.equal(res.statusCode, 200, res.body)
  t.match(res.json(), {
    name: 'Pref Dup', given_name: 'Pat', company: 'New Co', occupation: 'teacher', job_title: 'Buyer', payment_terms_days: 30,
    credit_limit: '100.00', credit_currency: 'USD', primary_email: 'pref@example.com', primary_phone: '+8613900000001', lifecycle_stage: 'repeat',
  })
  t.same(res.json().attributes, { a: 1, b: 2, c: 2 }, 'the duplicate wins key by key')
  t.same(res.json().tags, ['x', 'y'])
  const points = await contactPoints(target.id)
  onePrimaryPerKind(t, points, 'target')
  t.equal(points.length, 3)
  t.equal((await get(dup.id)).json().lifecycle_stage, 'lead', 'the duplicate, without orders, is a lead again')
  await checkMetrics(t, target.id, 'target')
  await checkMetrics(t, dup.id, 'duplicate')

  // Default prefer (target) with the same shapes, the other way round.
  const t2 = await create({ name: 'Keep Me', company: 'Keep Co' })
  const d2 = await create({ name: 'Drop Me', company: 'Drop Co', occupation: 'chef', credit_limit: '9.00', credit_currency: 'EUR' })
  const r2 = await merge(t2.id, { duplicate_id: d2.id, prefer: 'target' })
  t.match(r2.json(), { name: 'Keep Me', company: 'Keep Co', occupation: 'chef', credit_limit: '9.00', credit_currency: 'EUR' })
})

t.test('a primary email never collides: the duplicate\'s primary equals a non-primary of the target', async (t) => {
  const target = await create({ name: 'Col T', contact_points: [{ kind: 'email', value: 'main@col.example' }, { kind: 'email', value: 'same@col.example' }] })
  const dup = await create({ name: 'Col D', contact_points: [{ kind: 'email', value: 'Same@Col.Example' }] })
  const res = await merge(target.id, { duplicate_id: dup.id })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().primary_email, 'main@col.example')
  const points = await contactPoints(target.id)
  t.same(points.map((p) => [p.value_normalized, p.is_primary]), [['main@col.example', true], ['same@col.example', false]])

  // The target has no email at all: the duplicate's primary stays primary.
  const t2 = await create({ name: 'No Mail' })
  const d2 = await create({ name: 'Mail', contact_points: [{ kind: 'email', value: 'only@col.example' }, { kind: 'email', value: 'second@col.example' }] })
  const r2 = await merge(t2.id, { duplicate_id: d2.id })
  t.equal(r2.json().primary_email, 'only@col.example')
  onePrimaryPerKind(t, await contactPoints(t2.id), 'target without email')
})

t.test('refused merges change nothing', async (t) => {
  const a = await create({ name: 'Refuse A', contact_points: [{ kind: 'email', value: 'a@refuse.example' }] })
  const b = await create({ name: 'Refuse B', contact_points: [{ kind: 'email', value: 'b@refuse.example' }] })
  await order(b.id, '1.00')
  const archived = await create({ name: 'Refuse Archived' })
  await ctx.app.inject({ method: 'DELETE', url: `/v1/customers/${archived.id}`, headers: admin })
  const x = await create({ name: 'Refuse X' })
  const y = await create({ name: 'Refuse Y' })
  t.equal((await merge(x.id, { duplicate_id: y.id })).statusCode, 200)

  const snapshot = async () => ({
    audit: await auditCount(),
    customers: await ctx.db.selectFrom('customers').select(['id', 'version', 'archived_at', 'merged_into_id']).orderBy('id').execute(),
    points: await ctx.db.selectFrom('contact_points').select(['id', 'customer_id', 'version']).orderBy('id').execute(),
    orders: await ctx.db.selectFrom('orders').select(['id', 'customer_id', 'version']).orderBy('id').execute(),
  })
  const before = await snapshot()
  const unknown = '0193a7d0-0000-7000-8000-000000000000'
  const cases: Array<[string, string, Record<string, unknown>, number, Record<string, string>?]> = [
    ['unknown target', unknown, { duplicate_id: b.id }, 404],
    ['into itself', a.id, { duplicate_id: a.id }, 422],
    ['unknown target into itself', unknown, { duplicate_id: unknown }, 404],
    ['unknown duplicate', a.id, { duplicate_id: unknown }, 422],
    ['into an archived customer', archived.id, { duplicate_id: b.id }, 422],
    ['into a merged customer', y.id, { duplicate_id: b.id }, 422],
    ['a duplicate already merged', a.id, { duplicate_id: y.id }, 422],
    ['stale If-Match', a.id, { duplicate_id: b.id }, 412, { 'if-match': `"${a.version + 5}"` }],
    ['bad prefer', a.id, { duplicate_id: b.id, prefer: 'newest' }, 400],
    ['unknown property', a.id, { duplicate_id: b.id, keep: 'all' }, 400],
    ['no duplicate_id', a.id, {}, 400],
  ]
  for (const [label, target, body, status, headers] of cases) {
    const res = await merge(target, body, headers)
    t.equal(res.statusCode, status, `${label}: ${status}`)
    t.match(res.headers['content-type'], /application\/problem\+json/)
    if (status === 422) t.ok(res.json().detail, `${label}: says why`)
  }
  const readOnly = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${a.id}/merge`, headers: await ctx.auth('customers:read'), payload: { duplicate_id: b.id } })
  t.equal(readOnly.statusCode, 403, 'needs customers:write')
  t.same(await snapshot(), before, 'no row and no audit row changed')

  const ok = await merge(a.id, { duplicate_id: b.id }, { 'if-match': `"${a.version}"` })
  t.equal(ok.statusCode, 200, 'the current ETag merges')
  const writer = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${archived.id}/merge`, headers: await ctx.auth('customers:write'), payload: { duplicate_id: a.id } })
  t.equal(writer.statusCode, 422)
})

t.test('a concurrent double merge of the same pair has one effect', async (t) => {
  const a = await create({ name: 'Race A', loyalty_points: 10, contact_points: [{ kind: 'email', value: 'a@race.example' }] })
  const b = await create({ name: 'Race B', loyalty_points: 5, contact_points: [{ kind: 'email', value: 'b@race.example' }] })
  const o = await order(b.id, '3.00')
  const results = await Promise.all([merge(a.id, { duplicate_id: b.id }), merge(a.id, { duplicate_id: b.id })])
  t.same(results.map((r) => r.statusCode).sort(), [200, 422])
  const winner = results.find((r) => r.statusCode === 200)!
  t.match((await get(a.id)).json(), { loyalty_points: 15, version: winner.json().version })
  const moves = await ctx.db.selectFrom('audit_events').select('id').where('entity', '=', 'orders').where('entity_id', '=', o).where('action', '=', 'update').execute()
  t.equal(moves.length, 1, 'the order moved once')
  t.equal((await contactPoints(a.id)).length, 2)
  await checkMetrics(t, a.id, 'target')

  // Both directions at once: one wins, the other finds its target merged.
  const c = await create({ name: 'Race C' })
  const d = await create({ name: 'Race D' })
  const cross = await Promise.all([merge(c.id, { duplicate_id: d.id }), merge(d.id, { duplicate_id: c.id })])
  t.same(cross.map((r) => r.statusCode).sort(), [200, 422])
  const rows = await ctx.db.selectFrom('customers').select(['id', 'merged_into_id']).where('id', 'in', [c.id, d.id]).execute()
  t.equal(rows.filter((r) => r.merged_into_id !== null).length, 1, 'exactly one of them is merged')
})

t.test('merging a target away repoints earlier merges, so external_refs follow to the survivor', async (t) => {
  const a = await create({ name: 'Chain A', external_ref: 'chain-a' })
  const b = await create({ name: 'Chain B', external_ref: 'chain-b' })
  const c = await create({ name: 'Chain C', external_ref: 'chain-c' })
  t.equal((await merge(b.id, { duplicate_id: a.id })).statusCode, 200)
  t.equal((await merge(c.id, { duplicate_id: b.id })).statusCode, 200)
  t.equal((await get(a.id)).json().merged_into_id, c.id, 'a now points at c')
  t.equal((await get(b.id)).json().merged_into_id, c.id)
  const up = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { external_ref: 'chain-a', name: 'Chain C', job_title: 'Owner' } })
  t.equal(up.statusCode, 200)
  t.match(up.json(), { id: c.id, job_title: 'Owner', external_ref: 'chain-c' })
  const clash = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: admin, payload: { external_ref: 'chain-a' } })
  t.not(clash.statusCode, 200, 'a merged duplicate\'s external_ref stays reserved')
  t.ok(clash.statusCode < 500, clash.body)
})

t.test('a bulk import by a merged duplicate\'s external_ref updates the survivor', async (t) => {
  const target = await create({ name: 'Imp Target', external_ref: 'imp-t' })
  const dup = await create({ name: 'Imp Dup', external_ref: 'imp-d' })
  t.equal((await merge(target.id, { duplicate_id: dup.id })).statusCode, 200)
  const before = await ctx.count('customers')
  const csv = ['external_ref,name,email', 'imp-d,Imp Survivor,imp@example.com', 'imp-t,Imp Twice,', 'imp-new,Imp New,'].join('\n')
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/imports', headers: { ...admin, 'content-type': 'text/csv' }, payload: csv })
  t.equal(res.statusCode, 202, res.body)
  let job: Record<string, any> = {}
  for (let i = 0; i < 200 && job.status !== 'succeeded' && job.status !== 'failed'; i++) {
    if (i) await new Promise((r) => setTimeout(r, 25))
    job = (await ctx.app.inject({ url: `/v1/imports/${res.json().id}`, headers: admin })).json()
  }
  t.match(job, { status: 'succeeded', rows_created: 1, rows_updated: 1, rows_rejected: 1 })
  t.same(job.errors.map((e: { line: number; message: string }) => [e.line, e.message]), [[3, 'external_ref names the same customer as line 2']],
    'the survivor\'s own ref in the same file is refused, as a repeated ref is')
  t.equal(await ctx.count('customers'), before + 1)
  t.match((await get(target.id)).json(), { name: 'Imp Survivor', primary_email: 'imp@example.com', external_ref: 'imp-t' })
  t.match((await get(dup.id)).json(), { name: 'Imp Dup', primary_email: null, merged_into_id: target.id }, 'the merged duplicate is not written')
})

t.test('static segment memberships move to the target, one per segment', async (t) => {
  const target = await create({ name: 'Seg Target' })
  const dup = await create({ name: 'Seg Dup' })
  const segment = async (name: string, members: string[]) => {
    const res = await ctx.app.inject({ method: 'POST', url: '/v1/segments', headers: admin, payload: { name, kind: 'static' } })
    t.equal(res.statusCode, 201, res.body)
    const id = res.json().id as string
    const add = await ctx.app.inject({ method: 'POST', url: `/v1/segments/${id}/members`, headers: admin, payload: { customer_ids: members } })
    t.ok(add.statusCode < 300, add.body)
    return id
  }
  const both = await segment('merge both', [target.id, dup.id])
  const onlyDup = await segment('merge only dup', [dup.id])
  const res = await merge(target.id, { duplicate_id: dup.id })
  t.equal(res.statusCode, 200, res.body)
  const members = async (segmentId: string) =>
    (await ctx.db.selectFrom('segment_members').select('customer_id').where('segment_id', '=', segmentId).execute()).map((r) => r.customer_id)
  t.same(await members(both), [target.id], 'one membership where both were members')
  t.same(await members(onlyDup), [target.id], 'the duplicate\'s membership moves')
})
