import t from 'tap'
import { sql } from 'kysely'
import { buildTestApp, setup } from '../../helpers/app.js'

/**
 * /v1/webhook-subscriptions: CRUD with ETags and If-Match, the secret shown once and kept out of
 * every read and of the audit trail, rotation with an overlap, scopes, idempotency, and the SSRF
 * guard at create and update.
 */
const ctx = await setup({ app: { webhooks: { allowedHosts: '127.0.0.0/8,::1' } } })
const admin = await ctx.auth()
const body = { url: 'http://127.0.0.1:9/hook', event_types: ['customer.*', 'order.paid'] }

const create = (payload: unknown, headers: Record<string, string> = admin) =>
  ctx.app.inject({ method: 'POST', url: '/v1/webhook-subscriptions', headers, payload: payload as object })

t.test('create answers the secret once; reads never show it', async (t) => {
  const res = await create({ ...body, description: 'shop sync', filter: { changed_fields: ['status'] } })
  t.equal(res.statusCode, 201, res.body)
  const created = res.json()
  t.match(created.secret, /^whsec_[A-Za-z0-9+/]{43}=$/)
  t.equal(res.headers.location, `/v1/webhook-subscriptions/${created.id}`)
  t.equal(res.headers.etag, '"1"')
  t.match(created, { status: 'active', event_types: body.event_types, filter: { changed_fields: ['status'] }, description: 'shop sync', disabled_reason: null })

  const got = await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${created.id}`, headers: admin })
  t.equal(got.statusCode, 200)
  t.notOk('secret' in got.json(), 'GET does not show the secret')
  const cached = await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${created.id}`, headers: { ...admin, 'if-none-match': '"1"' } })
  t.equal(cached.statusCode, 304)
  const list = await ctx.app.inject({ method: 'GET', url: '/v1/webhook-subscriptions?status=active', headers: admin })
  t.ok(list.json().data.some((s: { id: string }) => s.id === created.id))
  t.notOk(list.body.includes('whsec_'), 'the list shows no secret')

  const audit = await sql<{ n: number }>`select count(*)::int as n from audit_events where entity = 'webhook_subscriptions' and entity_id = ${created.id} and actor = 'user:test'`.execute(ctx.db)
  t.equal(audit.rows[0]!.n, 1, 'the create is audited as the caller')
  const leaked = await sql<{ n: number }>`select count(*)::int as n from audit_events where after::text like '%whsec_%' or before::text like '%whsec_%'`.execute(ctx.db)
  t.equal(leaked.rows[0]!.n, 0, 'no secret reaches the audit trail')
})

t.test('update with If-Match, pause, archive and restore', async (t) => {
  const s = (await create(body)).json()
  const stale = await ctx.app.inject({ method: 'PATCH', url: `/v1/webhook-subscriptions/${s.id}`, headers: { ...admin, 'if-match': '"7"' }, payload: { status: 'paused' } })
  t.equal(stale.statusCode, 412)
  const paused = await ctx.app.inject({ method: 'PATCH', url: `/v1/webhook-subscriptions/${s.id}`, headers: { ...admin, 'if-match': '"1"' }, payload: { status: 'paused', filter: { entity_ids: ['0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'] } } })
  t.equal(paused.statusCode, 200, paused.body)
  t.equal(paused.headers.etag, '"2"')
  t.match(paused.json(), { status: 'paused', filter: { entity_ids: ['0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'] } })
  const cleared = await ctx.app.inject({ method: 'PATCH', url: `/v1/webhook-subscriptions/${s.id}`, headers: admin, payload: { filter: null, description: null } })
  t.equal(cleared.json().filter, null)
  const empty = await ctx.app.inject({ method: 'PATCH', url: `/v1/webhook-subscriptions/${s.id}`, headers: admin, payload: {} })
  t.equal(empty.statusCode, 400, 'an empty patch is a 400')
  const del = await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${s.id}`, headers: admin })
  t.equal(del.statusCode, 204)
  const again = await ctx.app.inject({ method: 'DELETE', url: `/v1/webhook-subscriptions/${s.id}`, headers: admin })
  t.equal(again.statusCode, 204, 'archiving again changes nothing')
  const archived = await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${s.id}`, headers: admin })
  t.equal(archived.statusCode, 200)
  t.ok(archived.json().archived_at, 'still readable by id, with archived_at')
  const listed = async (q: string) => (await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions${q}`, headers: admin })).json().data.some((x: { id: string }) => x.id === s.id)
  t.notOk(await listed('?limit=200'), 'hidden from the list')
  t.ok(await listed('?archived=true&limit=200'), 'listed with archived=true')
  const restored = await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${s.id}/restore`, headers: admin })
  t.equal(restored.statusCode, 200)
  t.equal(restored.json().archived_at, null)
  const gone = await ctx.app.inject({ method: 'GET', url: '/v1/webhook-subscriptions/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: admin })
  t.equal(gone.statusCode, 404)
  t.equal(gone.json().code, 'not-found')
})

t.test('rotate-secret: a new secret, the previous one valid for the overlap', async (t) => {
  const s = (await create(body)).json()
  const rotated = await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${s.id}/rotate-secret`, headers: admin, payload: { overlap_seconds: 3600 } })
  t.equal(rotated.statusCode, 200, rotated.body)
  const r = rotated.json()
  t.not(r.secret, s.secret)
  const overlapMs = Date.parse(r.previous_secret_expires_at) - Date.now()
  t.ok(overlapMs > 3_500_000 && overlapMs <= 3_600_000, 'the previous secret expires after the overlap')
  const secrets = await ctx.ownerDb.selectFrom('webhook_secrets').select(['secret', 'expires_at']).where('subscription_id', '=', s.id).execute()
  t.same(new Set(secrets.map((x) => x.secret)), new Set([s.secret, r.secret]), 'both secrets sign during the overlap')
  const now = await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${s.id}/rotate-secret`, headers: admin, payload: { overlap_seconds: 0 } })
  const after = await ctx.ownerDb.selectFrom('webhook_secrets').select('secret').where('subscription_id', '=', s.id)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<string>`now()`)])).execute()
  t.same(after.map((x) => x.secret).sort(), [now.json().secret, s.secret].sort(), 'overlap 0 retires the current secret at once; the first rotation\'s overlap runs on')
  const version = await ctx.app.inject({ method: 'GET', url: `/v1/webhook-subscriptions/${s.id}`, headers: admin })
  t.equal(version.json().version, 3, 'each rotation is a new version of the subscription (audited)')
  const bad = await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${s.id}/rotate-secret`, headers: admin, payload: { overlap_seconds: -1 } })
  t.equal(bad.statusCode, 400)
})

t.test('scopes and idempotency', async (t) => {
  const reader = await ctx.auth('webhooks:read')
  const refused = await create(body, reader)
  t.equal(refused.statusCode, 403)
  const listed = await ctx.app.inject({ method: 'GET', url: '/v1/webhook-subscriptions', headers: reader })
  t.equal(listed.statusCode, 200)
  const other = await ctx.app.inject({ method: 'GET', url: '/v1/webhook-subscriptions', headers: await ctx.auth('customers:read') })
  t.equal(other.statusCode, 403)
  const key = { ...admin, 'idempotency-key': 'webhook-create-1' }
  const first = await create(body, key)
  const again = await create(body, key)
  t.equal(again.statusCode, 201)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.json().id, first.json().id, 'a retried create with the same key creates nothing new')
})

t.test('bad input is a 400 with a pointer, never a 500', async (t) => {
  for (const [payload, where] of [
    [{ ...body, event_types: ['Customer Created'] }, '/event_types/0'],
    [{ ...body, event_types: [] }, '/event_types'],
    [{ ...body, url: 'not a url' }, '/url'],
    [{ ...body, secret: 'whsec_x' }, '/secret'],
    [{ ...body, filter: {} }, '/filter'],
    [{ ...body, status: 'disabled' }, '/status'],
  ] as const) {
    const res = await create(payload)
    t.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`)
    t.ok(res.json().errors?.some((e: { pointer: string }) => e.pointer.startsWith(where)), `points at ${where}: ${res.body}`)
  }
  const replay = await ctx.app.inject({ method: 'POST', url: `/v1/webhook-subscriptions/${(await create(body)).json().id}/replay`, headers: admin, payload: { position: 'nonsense' } })
  t.equal(replay.statusCode, 400)
  t.equal(replay.json().errors[0].pointer, '/position')
})

t.test('SSRF: private, loopback, link-local and mapped targets are refused unless allow-listed', async (t) => {
  const strict = await buildTestApp(ctx.db)
  await strict.ready()
  t.teardown(() => strict.close())
  const refusedUrls = [
    'http://127.0.0.1/hook', 'http://127.1/hook', 'http://0x7f000001/hook', 'http://localhost:8080/hook', 'http://[::1]/hook',
    'http://[::ffff:127.0.0.1]/hook', 'http://[::ffff:a9fe:a9fe]/hook', 'http://[64:ff9b::a00:1]/hook', 'http://169.254.169.254/latest/meta-data',
    'http://10.1.2.3/hook', 'http://172.16.0.1/hook', 'http://192.168.1.1/hook', 'http://100.64.0.1/hook', 'http://[fe80::1]/hook',
    'http://[fd00::1]/hook', 'http://0.0.0.0/hook', 'http://224.0.0.1/hook', 'ftp://example.com/hook', 'http://user:pw@93.184.215.14/hook',
  ]
  for (const url of refusedUrls) {
    const res = await strict.inject({ method: 'POST', url: '/v1/webhook-subscriptions', headers: admin, payload: { ...body, url } })
    t.equal(res.statusCode, 422, `${url}: ${res.body}`)
    t.equal(res.json().code, 'webhook-target-refused')
    t.equal(res.json().errors[0].pointer, '/url')
  }
  const ok = await strict.inject({ method: 'POST', url: '/v1/webhook-subscriptions', headers: admin, payload: { ...body, url: 'https://93.184.215.14/hook' } })
  t.equal(ok.statusCode, 201, 'a public address is accepted')
  const moved = await strict.inject({ method: 'PATCH', url: `/v1/webhook-subscriptions/${ok.json().id}`, headers: admin, payload: { url: 'http://[::ffff:10.0.0.1]/x' } })
  t.equal(moved.statusCode, 422, 'an update to a private target is refused as well')
  const allowed = await create({ ...body, url: 'http://[::1]:9/hook' })
  t.equal(allowed.statusCode, 201, 'the allow-list lets loopback through')
})
