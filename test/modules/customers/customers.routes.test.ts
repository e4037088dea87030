import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const admin = await ctx.auth()
const reader = await ctx.auth('customers:read')

async function create(body: Record<string, unknown>, headers: Record<string, string> = admin) {
  return ctx.app.inject({ method: 'POST', url: '/v1/customers', headers, payload: body })
}

async function auditFor(requestId: string) {
  return ctx.db.selectFrom('audit_events').selectAll().where('request_id', '=', requestId).orderBy('id').execute()
}

t.test('create answers 201 with Location, ETag and the record; audit has one row per inserted row', async (t) => {
  const res = await create({
    name: '李娜 Li Na', given_name: 'Na', family_name: 'Li', gender: 'female', birthday: '1990-05-17',
    tags: [' VIP ', 'vip', 'Newsletter'], attributes: { shoe_size: 38 }, consent: { email_marketing: true },
    credit_limit: '5000.00', credit_currency: 'CNY', payment_terms_days: 30,
    contact_points: [
      { kind: 'email', value: 'Li.Na@Example.com' },
      { kind: 'phone', value: '+86 138-0000-1234', label: 'mobile' },
      { kind: 'address', address: { line1: '88 Century Avenue', city: 'Shanghai', country: 'CN' } },
      { kind: 'social', network: 'wechat', value: 'lina_wx' },
    ],
  })
  t.equal(res.statusCode, 201, res.body)
  const body = res.json()
  t.equal(res.headers.location, `/v1/customers/${body.id}`)
  t.equal(res.headers.etag, '"1"')
  t.match(body.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/, 'UUID v7')
  t.same(body.tags, ['vip', 'newsletter'], 'tags trimmed, lower-cased, deduplicated')
  t.equal(body.primary_email, 'Li.Na@Example.com')
  t.equal(body.primary_phone, '+86 138-0000-1234')
  t.equal(body.credit_limit, '5000.00')
  t.equal(body.contact_points.length, 4)
  t.ok(body.contact_points.every((c: { is_primary: boolean }) => c.is_primary), 'first of each kind is primary')
  const audit = await auditFor(res.headers['x-request-id'] as string)
  t.equal(audit.length, 5, 'one customer + four contact points')
  t.ok(audit.every((a) => a.actor === 'user:test' && a.action === 'insert' && a.route === 'POST /v1/customers'))
})

t.test('get embeds contact points, honours If-None-Match, and 404s unknown ids', async (t) => {
  const created = (await create({ name: 'Zhang Wei', contact_points: [{ kind: 'email', value: 'zhang.wei@example.com' }] })).json()
  const res = await ctx.app.inject({ url: `/v1/customers/${created.id}?include=contact_points`, headers: admin })
  t.equal(res.statusCode, 200)
  t.equal(res.json().contact_points[0].value, 'zhang.wei@example.com')
  const cached = await ctx.app.inject({ url: `/v1/customers/${created.id}`, headers: { ...admin, 'if-none-match': '"1"' } })
  t.equal(cached.statusCode, 304)
  const missing = await ctx.app.inject({ url: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: admin })
  t.equal(missing.statusCode, 404)
  t.match(missing.json(), { status: 404, code: 'not-found' })
  const bad = await ctx.app.inject({ url: '/v1/customers/not-a-uuid', headers: admin })
  t.equal(bad.statusCode, 400)
  t.same(bad.json().errors.map((e: { pointer: string }) => e.pointer), ['/id'])
  const badInclude = await ctx.app.inject({ url: `/v1/customers/${created.id}?include=orders_x`, headers: admin })
  t.equal(badInclude.statusCode, 400)
})

t.test('without pii:read, phone, email, address and birthday are masked everywhere', async (t) => {
  const c = (await create({
    name: 'Masked Person', birthday: '1985-01-02',
    contact_points: [
      { kind: 'email', value: 'secret.person@example.org' },
      { kind: 'phone', value: '+44 20 7946 0958' },
      { kind: 'address', address: { line1: '10 Downing Street', city: 'London', postal_code: 'SW1A 2AA', country: 'GB' } },
    ],
  })).json()
  const secrets = ['secret.person', 'example.org', '7946', '0958', 'Downing', 'London', 'SW1A', '1985-01-02']
  for (const url of [`/v1/customers/${c.id}?include=contact_points`, `/v1/customers?include=contact_points&q=Masked`, `/v1/customers/${c.id}/contact-points`]) {
    const res = await ctx.app.inject({ url, headers: reader })
    t.equal(res.statusCode, 200, url)
    t.equal(res.headers['x-pii-masked'], 'true')
    for (const s of secrets) t.notOk(res.body.includes(s), `${url} does not contain ${s}`)
    if (!url.includes('contact-points')) t.ok(res.body.includes('Masked Person'), 'the name is not PII-masked')
  }
  const full = await ctx.app.inject({ url: `/v1/customers/${c.id}?include=contact_points`, headers: await ctx.auth('customers:read pii:read') })
  t.ok(full.body.includes('secret.person@example.org') && full.body.includes('1985-01-02'))
  t.notOk(full.headers['x-pii-masked'])
  // Searching by email would reveal who owns it: without pii:read, q matches names only.
  const probe = await ctx.app.inject({ url: '/v1/customers?q=secret.person', headers: reader })
  t.equal(probe.json().data.length, 0)
})

t.test('external_ref upsert updates instead of duplicating', async (t) => {
  const first = await create({ external_ref: 'shop-1', name: 'Wang Fang', attributes: { a: 1, b: 2 }, contact_points: [{ kind: 'email', value: 'wang.fang@example.com' }] })
  t.equal(first.statusCode, 201)
  const again = await create({ external_ref: 'shop-1', name: 'Wang Fang (updated)', attributes: { b: null, c: 3 }, contact_points: [{ kind: 'email', value: 'WANG.FANG@example.com', label: 'work' }] })
  t.equal(again.statusCode, 200)
  t.notOk(again.headers.location)
  const body = again.json()
  t.equal(body.id, first.json().id)
  t.equal(body.name, 'Wang Fang (updated)')
  t.same(body.attributes, { a: 1, c: 3 }, 'attributes merged as a merge patch')
  t.equal(body.contact_points.length, 1, 'same email (case-insensitive) is updated, not duplicated')
  t.equal(body.contact_points[0].label, 'work')
  t.equal(body.version, 2)
  const n = await ctx.db.selectFrom('customers').select(sql<number>`count(*)::int`.as('n')).where('external_ref', '=', 'shop-1').executeTakeFirstOrThrow()
  t.equal(n.n, 1)
})

t.test('duplicate primary email is a 409 that changes nothing', async (t) => {
  await create({ name: 'Owner', contact_points: [{ kind: 'email', value: 'taken@example.com' }] })
  const before = { customers: await ctx.count('customers'), contacts: await ctx.count('contact_points'), audit: await ctx.count('audit_events') }
  const res = await create({ name: 'Intruder', contact_points: [{ kind: 'phone', value: '+8613800001111' }, { kind: 'email', value: 'Taken@Example.com' }] })
  t.equal(res.statusCode, 409)
  t.same(res.json().errors, [{ pointer: '/contact_points/1/value', message: 'is the primary email of another customer' }])
  t.notOk(res.body.includes('contact_points_primary_email_idx'), 'no constraint name leaks')
  t.same({ customers: await ctx.count('customers'), contacts: await ctx.count('contact_points'), audit: await ctx.count('audit_events') }, before)
})

t.test('bad input is a 400 with a pointer per field and changes nothing', async (t) => {
  const before = { customers: await ctx.count('customers'), audit: await ctx.count('audit_events') }
  const cases: Array<[Record<string, unknown>, string[]]> = [
    [{}, ['/name']],
    [{ name: 'X', id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', version: 3 }, ['/id', '/version']],
    [{ name: 'X', created_at: '2026-01-01T00:00:00Z' }, ['/created_at']],
    [{ name: 42, gender: 'robot', birthday: '1990-13-45' }, ['/name', '/gender', '/birthday']],
    [{ name: 'X', loyalty_points: '12' }, ['/loyalty_points']],
    [{ name: 'X', tags: 'vip' }, ['/tags']],
    [{ name: 'X', attributes: { 'Bad Key': 1 } }, ['/attributes']],
    [{ name: 'X', credit_limit: '12.3456', credit_currency: 'cny' }, ['/credit_limit', '/credit_currency']],
    [{ name: 'X', credit_limit: '100.00' }, ['/credit_currency']],
    [{ name: 'X', contact_points: [{ kind: 'email', value: 'nope' }, { kind: 'phone', value: 'abc' }, { kind: 'social', value: 'h' }, { kind: 'fax', value: '1' }] }, ['/contact_points/3/kind']],
    [{ name: 'X', contact_points: [{ kind: 'email', value: 'nope' }, { kind: 'phone', value: 'abc' }, { kind: 'social', value: 'h' }] }, ['/contact_points/0/value', '/contact_points/1/value', '/contact_points/2/network']],
    [{ name: 'X', contact_points: [{ kind: 'email', value: 'a@example.com', is_primary: true }, { kind: 'email', value: 'b@example.com', is_primary: true }] }, ['/contact_points/1/is_primary']],
    [{ name: 'X', contact_points: [{ kind: 'address', address: { line1: 'x', city: 'y', country: 'china', extra: 1 } }] }, ['/contact_points/0/address/country', '/contact_points/0/address/extra']],
  ]
  for (const [body, pointers] of cases) {
    const res = await create(body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.match(res.headers['content-type'], /application\/problem\+json/)
    const got = (res.json().errors ?? []).map((e: { pointer: string }) => e.pointer)
    for (const p of pointers) t.ok(got.includes(p), `${JSON.stringify(body)} reports ${p} (got ${got.join(' ')})`)
  }
  t.same({ customers: await ctx.count('customers'), audit: await ctx.count('audit_events') }, before)
})

t.test('merge patch: null clears, absent untouched, objects merge; If-Match guards', async (t) => {
  const c = (await create({ name: 'Patchy', job_title: 'Clerk', company: 'Acme', attributes: { a: 1, nested: { x: 1, y: 2 } }, tags: ['a'] })).json()
  const res = await ctx.app.inject({
    method: 'PATCH', url: `/v1/customers/${c.id}`, headers: { ...admin, 'if-match': '"1"', 'content-type': 'application/merge-patch+json' },
    payload: JSON.stringify({ job_title: null, gender: null, attributes: { nested: { x: null, z: 3 }, b: 2 }, tags: ['b', 'c'] }),
  })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.equal(body.job_title, null)
  t.equal(body.company, 'Acme')
  t.same(body.attributes, { a: 1, b: 2, nested: { y: 2, z: 3 } })
  t.same(body.tags, ['b', 'c'])
  t.equal(body.version, 2)
  t.equal(res.headers.etag, '"2"')
  const audit = await auditFor(res.headers['x-request-id'] as string)
  t.equal(audit.length, 1)
  t.equal((audit[0]!.before as { job_title: string }).job_title, 'Clerk')
  t.equal((audit[0]!.after as { job_title: string | null }).job_title, null)

  const stale = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: { ...admin, 'if-match': '"1"' }, payload: { name: 'Late' } })
  t.equal(stale.statusCode, 412)
  const cleared = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: admin, payload: { name: null } })
  t.equal(cleared.statusCode, 400)
  const empty = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: admin, payload: {} })
  t.equal(empty.statusCode, 400)
  const readOnly = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: admin, payload: { version: 9 } })
  t.equal(readOnly.statusCode, 400)
  t.same(readOnly.json().errors.map((e: { pointer: string }) => e.pointer), ['/version'])
  const badEtag = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: { ...admin, 'if-match': 'garbage' }, payload: { name: 'x' } })
  t.equal(badEtag.statusCode, 400)
  const after = (await ctx.app.inject({ url: `/v1/customers/${c.id}`, headers: admin })).json()
  t.equal(after.version, 2, 'failed patches changed nothing')
})

t.test('parallel If-Match writers: exactly one wins', async (t) => {
  const c = (await create({ name: 'Race' })).json()
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: { ...admin, 'if-match': '"1"' }, payload: { job_title: `writer ${i}` } }),
    ),
  )
  const codes = results.map((r) => r.statusCode).sort()
  t.same(codes, [200, 412, 412, 412, 412, 412, 412, 412])
  const audits = await ctx.db.selectFrom('audit_events').select('id').where('entity_id', '=', c.id).where('action', '=', 'update').execute()
  t.equal(audits.length, 1)
})

t.test('archive hides from lists, restore brings back; both audited', async (t) => {
  const c = (await create({ name: 'Archivable Zed', tags: ['arch'] })).json()
  const del = await ctx.app.inject({ method: 'DELETE', url: `/v1/customers/${c.id}`, headers: admin })
  t.equal(del.statusCode, 204)
  t.equal(del.body, '')
  const listed = (await ctx.app.inject({ url: '/v1/customers?tag=arch', headers: admin })).json()
  t.equal(listed.data.length, 0)
  const archived = (await ctx.app.inject({ url: '/v1/customers?tag=arch&archived=true', headers: admin })).json()
  t.equal(archived.data.length, 1)
  t.ok(archived.data[0].archived_at)
  const stale = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${c.id}/restore`, headers: { ...admin, 'if-match': '"1"' } })
  t.equal(stale.statusCode, 412)
  const restore = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${c.id}/restore`, headers: admin })
  t.equal(restore.statusCode, 200)
  t.equal(restore.json().archived_at, null)
  const audits = await ctx.db.selectFrom('audit_events').select('action').where('entity_id', '=', c.id).orderBy('id').execute()
  t.same(audits.map((a) => a.action), ['insert', 'update', 'update'])
  const gone = await ctx.app.inject({ method: 'DELETE', url: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: admin })
  t.equal(gone.statusCode, 404)
})

t.test('scopes: read token cannot write; no token is 401', async (t) => {
  const res = await create({ name: 'Nope' }, reader)
  t.equal(res.statusCode, 403)
  const anon = await ctx.app.inject({ url: '/v1/customers' })
  t.equal(anon.statusCode, 401)
  t.equal(anon.headers['www-authenticate'], 'Bearer')
})
