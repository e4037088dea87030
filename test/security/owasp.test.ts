import t from 'tap'
import fp from 'fastify-plugin'
import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { sql } from 'kysely'
import { SignJWT, generateKeyPair } from 'jose'
import { AUDIENCE, ISSUER, TEST_AUTH, TEST_PUBLIC_JWK, setup, token } from '../helpers/app.js'
import { fillPath, openApiDocument, operations, refName, resolve, responseValidator, routeUrl, type JsonSchema, type Operation } from '../helpers/openapi.js'
import { SCOPES, hasScope, type RouteScope } from '../../src/plugins/auth.js'
import { buildApp } from '../../src/app.js'
import { MAX_LIMIT } from '../../src/lib/pagination.js'
import { MAX_JSON_DEPTH } from '../../src/plugins/json-body.js'
import { conform } from '../helpers/conformance.js'

/**
 * OWASP API Security Top 10 (2023), checked over every operation of the OpenAPI document so
 * routes added later are covered without edits:
 * API1 object-level access, API3 mass assignment (property-level), API4 resource consumption,
 * API5 function-level access (every route × every scope), API8 misconfiguration (errors, headers,
 * CORS), API2 broken authentication (invalid JWTs beyond test/plugins/auth.test.ts, on every
 * mutating route). Every refusal is checked to have changed nothing: every table's rows, and so
 * the audit trail, are fingerprinted before and after.
 */

/** The scope each route declares, as the router resolved it for a real request. */
const scopes = new Map<string, RouteScope | undefined>()
const recorder = fp(async (app: FastifyInstance) => {
  app.addHook('onResponse', async (request) => {
    if (request.routeOptions.url) scopes.set(`${request.method} ${request.routeOptions.url}`, request.routeOptions.config?.scope)
  })
})

const ctx = await setup({ plugins: [recorder] })
const admin = await ctx.auth()
const doc = openApiDocument(ctx.app)
const ops = operations(doc)
const validate = responseValidator(doc)
const MUTATING = new Set(['POST', 'PATCH', 'PUT', 'DELETE'])

// ---------------------------------------------------------------------------------------------
// Every answer of this file goes through send(): any error body is checked for leaked internals.

const LEAKS = /\bat [\w$.<>]+ \(|node_modules|\.ts:\d+|\bSELECT\b|\bINSERT\b|\bUPDATE\b|\bDELETE FROM\b|duplicate key|violates|constraint|_fkey|_pkey|_key\b|_check\b|relation "|syntax error|stack|ERR_[A-Z_]+|FST_|pg_|kysely/i
let errorBodies = 0
const leaked: string[] = []

async function send(opts: InjectOptions) {
  const res = await ctx.app.inject(opts)
  if (res.statusCode >= 400) {
    errorBodies++
    if (LEAKS.test(res.body)) leaked.push(`${String(opts.method ?? 'GET')} ${String(opts.url)} ${res.statusCode}: ${res.body.slice(0, 300)}`)
  }
  return res
}

/** A fingerprint of every application table: row count and a hash of all rows. */
const tables = (await sql<{ name: string }>`
  select table_name as name from information_schema.tables
  where table_schema = 'public' and table_type = 'BASE TABLE' and table_name not like 'kysely_%'
  order by table_name`.execute(ctx.db)).rows.map((r) => r.name)

async function snapshot(): Promise<Record<string, string>> {
  const parts = tables.map((name) => sql`select ${name}::text as name, count(*)::text || ':' || coalesce(md5(string_agg(x::text, ',' order by x::text)), '') as fp from ${sql.table(name)} x`)
  const rows = (await sql<{ name: string; fp: string }>`${sql.join(parts, sql` union all `)}`.execute(ctx.db)).rows
  return Object.fromEntries(rows.map((r) => [r.name, r.fp]))
}

type Assert = Pick<typeof t, 'equal' | 'ok' | 'notOk' | 'same' | 'match' | 'not' | 'comment' | 'fail' | 'pass' | 'test'>

async function unchanged(t: Assert, before: Record<string, string>, label: string) {
  t.same(await snapshot(), before, `${label}: nothing changed (rows and audit events)`)
}

function assertProblem(t: Assert, res: Awaited<ReturnType<typeof send>>, status: number, label: string) {
  t.equal(res.statusCode, status, `${label} → ${status}${res.statusCode === status ? '' : `: ${res.body.slice(0, 300)}`}`)
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${label}: problem+json`)
  t.match(res.json(), { type: String, title: String, status }, `${label}: type, title, status`)
}

// ---------------------------------------------------------------------------------------------
// Fixtures: one record of every resource the document can create, made from the schemas'
// own examples (ids of other resources and unique values substituted).

const fixtures = new Map<string, string>()
const resourceOf = (name: string) => {
  const n = name.replace(/-/g, '_').replace(/_id$/, '')
  return n.endsWith('s') ? n : `${n}s`
}
const pathResource = (path: string, param?: string) => {
  const segments = path.split('/').filter(Boolean)
  const end = param ? segments.indexOf(`{${param}}`) : segments.length
  const literal = segments.slice(0, end).filter((s) => !s.startsWith('{'))
  return resourceOf(literal[literal.length - 1] ?? '')
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A schema's example made usable: fixture ids for *_id fields, fresh unique refs and emails. */
function usable(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => usable(v, key))
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, usable(v, k)]))
  if (typeof value === 'string') {
    if (key.endsWith('_id') && UUID.test(value)) return fixtures.get(resourceOf(key)) ?? value
    if (key === 'external_ref' || key === 'order_number' || key === 'subject') return `${value}-${randomBytes(4).toString('hex')}`
    // A role's key stays taken when the role is archived, as a user's subject does.
    if (key === 'key') return `${value}_${randomBytes(4).toString('hex')}`
    if (/^[^@\s]+@[^@\s]+$/.test(value)) return `u${randomBytes(4).toString('hex')}@example.com`
  }
  return value
}

/** The example request body of an operation, or undefined when the document gives none. */
function exampleBody(op: Operation): unknown {
  if (!op.body) return undefined
  const s = resolve(doc, op.body)
  return s.example === undefined ? undefined : usable(structuredClone(s.example))
}

function pathValues(op: Operation, override: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {}
  for (const p of op.pathParams) out[p.name] = override[p.name] ?? fixtures.get(p.name === 'id' ? pathResource(op.path, 'id') : resourceOf(p.name)) ?? randomUUID()
  return out
}

function request(op: Operation, headers: Record<string, string>, opts: { path?: Record<string, string>; body?: unknown; query?: Record<string, string | string[]> } = {}): InjectOptions {
  const body = 'body' in opts ? opts.body : exampleBody(op)
  return {
    method: op.method,
    url: fillPath(op.path, opts.path ?? pathValues(op)),
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(opts.query ? { query: opts.query } : {}),
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  }
}

const creators = ops.filter((o) => o.method === 'POST' && o.body && o.jsonBody && !/\/batch$/.test(o.path))
  .sort((a, b) => a.pathParams.length - b.pathParams.length)

t.before(async () => {
  // Creation can depend on other fixtures (orders need a customer): a few passes settle it.
  for (let pass = 0; pass < 3; pass++) {
    for (const op of creators) {
      const resource = pathResource(op.path)
      if (fixtures.has(resource)) continue
      const res = await send(request(op, admin))
      if (res.statusCode === 200 || res.statusCode === 201) {
        const body = res.json() as Record<string, unknown>
        const id = typeof body.id === 'string' ? body.id : undefined
        if (id) fixtures.set(resource, id)
      }
    }
  }
  const audit = (await send({ url: '/v1/audit-events?limit=1', headers: admin })).json() as { data: Array<{ id: string }> }
  if (audit.data[0]) fixtures.set('audit_events', audit.data[0].id)
})

t.test('fixtures: a record of each resource made from the document examples', async (t) => {
  for (const r of ['customers', 'contact_points', 'orders', 'audit_events']) t.ok(fixtures.has(r), `a fixture ${r}`)
  t.comment(`fixtures: ${[...fixtures.keys()].join(', ')}`)
})

// ---------------------------------------------------------------------------------------------
// API5 function-level authorization: every route × a token with each single scope.

t.test('function-level access: every operation × every scope', async (t) => {
  const secured: Array<[Operation, RouteScope]> = []
  for (const op of ops) {
    const res = await send(request(op, {}))
    const scope = scopes.get(`${op.method} ${routeUrl(op.path)}`)
    t.ok(scope, `${op.operationId} declares a scope (${String(scope)})`)
    if (!scope || scope === 'public') {
      t.not(res.statusCode, 401, `${op.operationId} is public`)
      continue
    }
    assertProblem(t, res, 401, `${op.operationId} without a token`)
    t.equal(res.headers['www-authenticate'], 'Bearer', `${op.operationId}: WWW-Authenticate challenge`)
    secured.push([op, scope])
  }
  t.ok(secured.length >= 20, `${secured.length} secured operations`)

  let denied = 0
  let allowed = 0
  // Denied first, with requests that would succeed with the right scope: nothing may change.
  for (const [op, scope] of secured) {
    for (const s of [...SCOPES, '', 'orders:* customers:*']) {
      const principal = { sub: 'x', scopes: new Set(s.split(' ').filter(Boolean)) }
      if (hasScope(principal, scope)) continue
      const before = MUTATING.has(op.method) ? await snapshot() : undefined
      const res = await send(request(op, await ctx.auth(s)))
      t.equal(res.statusCode, 403, `${op.operationId} (${scope}) with "${s}" → 403`)
      t.match(res.json(), { status: 403, code: 'insufficient-scope', detail: `This operation needs the scope "${scope}".` })
      t.notOk(res.headers['www-authenticate'], 'a 403 is not a challenge')
      if (before) await unchanged(t, before, `${op.operationId} with "${s}"`)
      denied++
    }
  }
  // Then allowed: the scope itself, its domain:* and admin are never refused.
  for (const [op, scope] of secured) {
    // Field-class grants are not function scopes: an example that reads purchase figures (an
    // orders condition in a filter) needs financial:read besides the operation's scope.
    for (const s of [scope, `${scope.split(':')[0]}:*`, 'admin']) {
      const res = await send(request(op, await ctx.auth(`${s} financial:read`)))
      t.ok(res.statusCode !== 401 && res.statusCode !== 403, `${op.operationId} (${scope}) with "${s}" is not refused (${res.statusCode})`)
      allowed++
    }
  }
  t.comment(`function-level matrix: ${denied} denied, ${allowed} allowed requests over ${secured.length} operations`)
})

// ---------------------------------------------------------------------------------------------
// API2 broken authentication: 10+ kinds of invalid JWT on every mutating operation, each a 401
// that changes nothing. test/plugins/auth.test.ts checks the 401 details on read routes.

t.test('invalid JWTs: 401 and nothing changed, on every mutating operation', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const claims = { sub: 'user:mallory', scope: 'admin', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600 }
  const stranger = await generateKeyPair('ES256')
  const good = await token('admin')
  const [h, p, sig] = good.split('.') as [string, string, string]
  const flip = (s: string) => s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1)
  const kinds: Array<[string, string]> = [
    ['expired', `Bearer ${await token('admin', { expiresIn: now - 3600 })}`],
    ['not yet valid (nbf)', `Bearer ${await token('admin', { claims: { nbf: now + 3600 } })}`],
    ['wrong issuer', `Bearer ${await token('admin', { issuer: 'https://evil.test' })}`],
    ['wrong audience', `Bearer ${await token('admin', { audience: 'another-api' })}`],
    ['alg none', `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`],
    ['HS256 keyed with the public key (alg confusion)', `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'test-key' }).sign(new TextEncoder().encode(JSON.stringify(TEST_PUBLIC_JWK)))}`],
    ['unknown kid', `Bearer ${await token('admin', { kid: 'retired-key' })}`],
    ['tampered payload (scope raised to admin)', `Bearer ${(await token('customers:read')).split('.')[0]}.${b64(claims)}.${(await token('customers:read')).split('.')[2]}`],
    ['tampered signature', `Bearer ${h}.${p}.${flip(sig)}`],
    ['missing sub', `Bearer ${await token('admin', { sub: null })}`],
    ['missing exp', `Bearer ${await token('admin', { expiresIn: null })}`],
    ['malformed: two parts', `Bearer ${h}.${p}`],
    ['malformed: bad base64', `Bearer ${h}.${p.slice(0, 10)}*${p.slice(11)}.${sig}`],
    ['malformed: payload not JSON', `Bearer ${h}.${Buffer.from('not json').toString('base64url')}.${sig}`],
    ['wrong scheme (Basic)', `Basic ${Buffer.from('admin:admin').toString('base64')}`],
    ['signed by another key with the trusted kid', `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'test-key' }).sign(stranger.privateKey)}`],
    ['oversized token', `Bearer ${await token('admin', { claims: { pad: 'x'.repeat(20_000) } })}`],
    ['token in the query string instead', ''],
    ['JWE-shaped (five parts)', `Bearer ${h}.${p}.${sig}.${p}.${sig}`],
    ['embedded jwk header (key injection)', `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } }).sign(stranger.privateKey)}`],
  ]
  t.ok(kinds.length >= 15, `${kinds.length} kinds of invalid token`)
  const mutating = ops.filter((o) => MUTATING.has(o.method) && scopes.get(`${o.method} ${routeUrl(o.path)}`) !== 'public')
  t.ok(mutating.length >= 10, `${mutating.length} mutating operations`)
  for (const op of mutating) {
    const before = await snapshot()
    for (const [label, authorization] of kinds) {
      const req = request(op, authorization ? { authorization } : {})
      if (!authorization) req.query = { access_token: good }
      const res = await send(req)
      assertProblem(t, res, 401, `${op.operationId}: ${label}`)
      t.match(res.headers['www-authenticate'], /^Bearer/, `${op.operationId}: ${label}: challenge`)
    }
    await unchanged(t, before, `${op.operationId} with ${kinds.length} invalid tokens`)
  }
  t.ok(TEST_AUTH.algorithms.every((a) => a !== 'none' && !a.startsWith('HS')), 'the allowlist holds no none or HMAC algorithm')
})

// ---------------------------------------------------------------------------------------------
// API1 object-level access: unknown ids, ids of other resources, a child under another parent.

/** Operations whose path parameters are all record ids. */
const byUuid = (op: Operation) => op.pathParams.every((p) => resolve(doc, p.schema).format === 'uuid')

t.test('object-level access: unknown and foreign ids answer 404 and leak nothing', async (t) => {
  const withIds = ops.filter((o) => o.pathParams.length > 0 && byUuid(o) && scopes.get(`${o.method} ${routeUrl(o.path)}`) !== 'public')
  t.ok(withIds.length >= 10, `${withIds.length} operations address a record`)
  const foreignIds = [...fixtures.entries()]
  for (const op of withIds) {
    const before = await snapshot()
    const unknown = await send(request(op, admin, { path: Object.fromEntries(op.pathParams.map((p) => [p.name, randomUUID()])) }))
    assertProblem(t, unknown, 404, `${op.operationId} with an unknown id`)
    const reference = unknown.json() as Record<string, unknown>
    // The first id swapped for a record of another resource: the same 404, word for word.
    const first = op.pathParams[0]!.name
    const own = first === 'id' ? pathResource(op.path, 'id') : resourceOf(first)
    for (const [resource, id] of foreignIds) {
      if (resource === own) continue
      const res = await send(request(op, admin, { path: { ...pathValues(op), [first]: id, ...Object.fromEntries(op.pathParams.slice(1).map((p) => [p.name, randomUUID()])) } }))
      assertProblem(t, res, 404, `${op.operationId} with a ${resource} id`)
      t.same({ ...res.json(), instance: 0, request_id: 0 }, { ...reference, instance: 0, request_id: 0 }, `${op.operationId}: a ${resource} id looks exactly like an unknown one`)
    }
    if (MUTATING.has(op.method)) await unchanged(t, before, `${op.operationId} on ids it does not own`)
  }
})

t.test('object-level access: a child record reached under another parent is 404', async (t) => {
  const nested = ops.filter((o) => o.pathParams.length >= 2 && byUuid(o))
  t.ok(nested.length >= 2, `${nested.length} nested operations`)
  const createParent = creators.find((o) => o.pathParams.length === 0 && pathResource(o.path) === 'customers')!
  const other = (await send(request(createParent, admin))).json() as { id: string }
  t.ok(other.id, 'a second customer')
  for (const op of nested) {
    const [parent] = op.pathParams
    const before = await snapshot()
    const res = await send(request(op, admin, { path: pathValues(op, { [parent!.name]: other.id }) }))
    assertProblem(t, res, 404, `${op.operationId}: the first customer's child under the second customer`)
    await unchanged(t, before, op.operationId)
  }
})

t.test('object-level access: a token without the scope learns nothing about existence', async (t) => {
  for (const op of ops.filter((o) => o.pathParams.length > 0 && byUuid(o) && o.method === 'GET')) {
    const scope = scopes.get(`${op.method} ${routeUrl(op.path)}`)
    if (!scope || scope === 'public') continue
    const outsider = SCOPES.find((s) => !hasScope({ sub: 'x', scopes: new Set([s]) }, scope))!
    const existing = await send(request(op, await ctx.auth(outsider)))
    const unknown = await send(request(op, await ctx.auth(outsider), { path: Object.fromEntries(op.pathParams.map((p) => [p.name, randomUUID()])) }))
    t.equal(existing.statusCode, 403, `${op.operationId}: existing record → 403`)
    t.same({ ...existing.json(), instance: 0, request_id: 0 }, { ...unknown.json(), instance: 0, request_id: 0 }, `${op.operationId}: same answer for an unknown record`)
  }
})

t.test('archived records: readable by id, hidden from lists unless archived=true, archiving is repeatable', async (t) => {
  const archivable = ops.filter((o) => o.method === 'DELETE' && o.pathParams.length === 1)
  t.ok(archivable.length >= 2, `${archivable.length} archive operations`)
  for (const del of archivable) {
    const get = ops.find((o) => o.method === 'GET' && o.path === del.path)
    const list = ops.find((o) => o.method === 'GET' && o.path === del.path.replace(/\/\{id\}$/, ''))
    const create = creators.find((o) => o.path === del.path.replace(/\/\{id\}$/, ''))
    const record = get?.responses['200'] ? resolve(doc, get.responses['200']) : undefined
    if (!get || !list || !create || !record?.properties?.archived_at) {
      t.comment(`${del.operationId}: no get/list/create and archived_at, skipped`)
      continue
    }
    let created = await send(request(create, admin))
    const fixture = fixtures.get(pathResource(del.path))
    if (created.statusCode === 409 && fixture) {
      // The fixture made from the same example holds its live-unique values (a segment's name),
      // and the access matrix above restored it: archive it, then create again.
      await send(request(del, admin, { path: { id: fixture } }))
      created = await send(request(create, admin))
    }
    t.ok([200, 201].includes(created.statusCode), `${create.operationId} for archiving (${created.statusCode})`)
    const id = (created.json() as { id: string }).id
    const archived = await send(request(del, admin, { path: { id } }))
    t.equal(archived.statusCode, 204, `${del.operationId} → 204`)
    const read = await send(request(get, admin, { path: { id } }))
    t.equal(read.statusCode, 200, `${get.operationId} still reads an archived record`)
    t.ok((read.json() as { archived_at: unknown }).archived_at, 'with archived_at set')
    const listed = async (query: Record<string, string>) => {
      const res = await send(request(list, admin, { query: { limit: String(MAX_LIMIT), ...query } }))
      t.equal(res.statusCode, 200, `${list.operationId} ${JSON.stringify(query)}`)
      return (res.json() as { data: Array<{ id: string }> }).data.some((r) => r.id === id)
    }
    t.notOk(await listed({}), `${list.operationId} hides it`)
    t.ok(await listed({ archived: 'true' }), `${list.operationId}?archived=true shows it`)
    t.ok(await listed({ archived: 'all' }), `${list.operationId}?archived=all shows it`)
    const again = await send(request(del, admin, { path: { id } }))
    t.equal(again.statusCode, 204, 'archiving again answers 204')
  }
  // An archived customer cannot be given new orders (a documented business rule: 422).
  const customer = (await send(request(creators.find((o) => o.path === '/v1/customers')!, admin))).json() as { id: string }
  await send({ method: 'DELETE', url: `/v1/customers/${customer.id}`, headers: admin })
  const createOrder = ops.find((o) => o.operationId === 'createOrder')!
  const before = await snapshot()
  const order = await send(request(createOrder, admin, { body: { ...(exampleBody(createOrder) as object), customer_id: customer.id } }))
  assertProblem(t, order, 422, 'an order for an archived customer')
  await unchanged(t, before, 'order for an archived customer')
})

// ---------------------------------------------------------------------------------------------
// API3 mass assignment: every server-owned or computed property, in every POST/PATCH body
// (and in the objects nested in it), is a 400 pointing at it, and changes nothing.

/** The resource a request schema writes: XCreate/XPatch/XInput → X, else the op's 2xx schema. */
function resourceSchema(requestSchema: JsonSchema, fallback?: JsonSchema): JsonSchema | undefined {
  const name = refName(requestSchema)
  const base = name?.replace(/(Create|Patch|Input|Upsert)$/, '')
  if (base && base !== name && doc.components.schemas[base]) return doc.components.schemas[base]
  return fallback ? resolve(doc, fallback) : undefined
}

const SERVER_OWNED = ['id', 'version', 'created_at', 'updated_at', 'archived_at']

interface MassCase { pointer: string; body: unknown }

function massCases(requestSchema: JsonSchema, example: unknown, fallback: JsonSchema | undefined, at: string, out: MassCase[], root: unknown, path: Array<string | number>) {
  const req = resolve(doc, requestSchema)
  const res = resourceSchema(requestSchema, fallback)
  if (!example || typeof example !== 'object' || Array.isArray(example)) return
  const accepted = new Set(Object.keys(req.properties ?? {}))
  const owned = new Set([...SERVER_OWNED, ...Object.keys(res?.properties ?? {})])
  const resExample = (res?.example ?? {}) as Record<string, unknown>
  for (const field of owned) {
    if (accepted.has(field)) continue
    const body = structuredClone(root) as Record<string | number, unknown>
    let target = body
    for (const k of path) target = target[k] as Record<string | number, unknown>
    target[field] = field in resExample ? resExample[field] : field === 'version' ? 1 : field === 'id' ? randomUUID() : field.endsWith('_at') ? new Date().toISOString() : 'x'
    out.push({ pointer: `${at}/${field}`, body })
  }
  for (const [key, prop] of Object.entries(req.properties ?? {})) {
    const value = (example as Record<string, unknown>)[key]
    const p = resolve(doc, prop)
    if (p.type === 'array' && p.items && Array.isArray(value) && value.length > 0) {
      massCases(p.items, value[0], undefined, `${at}/${key}/0`, out, root, [...path, key, 0])
    } else if (prop.$ref && value && typeof value === 'object') {
      massCases(prop, value, undefined, `${at}/${key}`, out, root, [...path, key])
    }
  }
}

t.test('mass assignment: server-owned and computed properties are rejected in every body', async (t) => {
  const writers = ops.filter((o) => (o.method === 'POST' || o.method === 'PATCH' || o.method === 'PUT') && o.body && o.jsonBody)
  t.ok(writers.length >= 8, `${writers.length} operations take a body`)
  let cases = 0
  for (const op of writers) {
    const example = exampleBody(op)
    if (example === undefined) {
      t.fail(`${op.operationId}: its body schema has no example`)
      continue
    }
    t.notOk(validate(op.body!, example), `${op.operationId}: the example body is valid, so a 400 can only come from the added property`)
    const success = Object.entries(op.responses).find(([s, schema]) => s.startsWith('2') && schema)?.[1]
    const list: MassCase[] = []
    massCases(op.body!, example, success, '', list, example, [])
    t.ok(list.length >= 5, `${op.operationId}: ${list.length} server-owned properties to try`)
    t.comment(`${op.operationId}: ${list.map((c) => c.pointer).join(' ')}`)
    for (const c of list) {
      const before = await snapshot()
      const res = await send(request(op, admin, { body: c.body }))
      assertProblem(t, res, 400, `${op.operationId} with ${c.pointer}`)
      const pointers = ((res.json() as { errors?: Array<{ pointer: string }> }).errors ?? []).map((e) => e.pointer)
      t.ok(pointers.includes(c.pointer), `${op.operationId}: the error points at ${c.pointer} (${pointers.join(', ')})`)
      await unchanged(t, before, `${op.operationId} with ${c.pointer}`)
      cases++
    }
  }
  t.comment(`mass assignment: ${cases} cases`)
})

// ---------------------------------------------------------------------------------------------
// API4 unrestricted resource consumption.

t.test('resource consumption: page size, body size, nesting depth, array and string lengths', async (t) => {
  for (const op of ops.filter((o) => o.query.some((p) => p.name === 'limit'))) {
    for (const limit of [String(MAX_LIMIT + 1), '100000', '0', '-1']) {
      const res = await send(request(op, admin, { query: { limit } }))
      assertProblem(t, res, 400, `${op.operationId}?limit=${limit}`)
      t.match(res.json(), { errors: [{ pointer: '/limit' }] })
    }
    t.equal((await send(request(op, admin, { query: { limit: String(MAX_LIMIT) } }))).statusCode, 200, `${op.operationId}?limit=${MAX_LIMIT} is fine`)
  }

  // Repeatable query parameters (?tag=a&tag=b) are capped like body arrays.
  for (const op of ops) {
    for (const p of op.query) {
      const schema = resolve(doc, p.schema)
      const maxItems = schema.maxItems as number | undefined
      if (schema.type !== 'array' || maxItems === undefined) continue
      const item = (resolve(doc, schema.items ?? {}).example as string | undefined) ?? 'x'
      const res = await send(request(op, admin, { query: { [p.name]: Array.from({ length: maxItems + 1 }, (_, i) => `${item}${i}`) } }))
      assertProblem(t, res, 400, `${op.operationId}: ${maxItems + 1} × ${p.name}`)
    }
  }

  // JSON bodies; streamed uploads (CSV, NDJSON) have limits of their own, tested with their module.
  const bodied = ops.filter((o) => o.body && o.jsonBody)
  const before = await snapshot()
  for (const op of bodied) {
    const limit = /\/batch$/.test(op.path) ? 16 * 1024 * 1024 : 1024 * 1024
    const big = JSON.stringify({ ...(exampleBody(op) as object), padding: 'x'.repeat(limit) })
    const res = await send({ ...request(op, admin, { body: undefined }), payload: big, headers: { ...admin, 'content-type': 'application/json' } })
    assertProblem(t, res, 413, `${op.operationId} with a ${(big.length / 1024 / 1024).toFixed(1)} MiB body`)

    const deep = '{"a":'.repeat(MAX_JSON_DEPTH + 1) + '1' + '}'.repeat(MAX_JSON_DEPTH + 1)
    assertProblem(t, await send({ ...request(op, admin, { body: undefined }), payload: deep, headers: { ...admin, 'content-type': 'application/json' } }), 400, `${op.operationId} with JSON nested ${MAX_JSON_DEPTH + 1} deep`)

    // Every array and string of the body one past its declared maximum.
    const example = exampleBody(op) as Record<string, unknown>
    const schema = resolve(doc, op.body!)
    for (const [key, prop] of Object.entries(schema.properties ?? {})) {
      const p = resolve(doc, prop)
      const maxItems = p.maxItems as number | undefined
      const maxLength = p.maxLength as number | undefined
      if (p.type === 'array' && maxItems !== undefined) {
        const item = Array.isArray(example[key]) && (example[key] as unknown[]).length > 0 ? (example[key] as unknown[])[0] : 'x'
        const res = await send(request(op, admin, { body: { ...example, [key]: Array.from({ length: maxItems + 1 }, () => usable(structuredClone(item))) } }))
        assertProblem(t, res, 400, `${op.operationId}: ${key} with ${maxItems + 1} items`)
        t.ok(((res.json() as { errors?: Array<{ pointer: string }> }).errors ?? []).some((e) => e.pointer === `/${key}`), `${op.operationId}: points at /${key}`)
      } else if (p.type === 'string' && maxLength !== undefined && !p.enum && !p.format) {
        const res = await send(request(op, admin, { body: { ...example, [key]: 'x'.repeat(maxLength + 1) } }))
        assertProblem(t, res, 400, `${op.operationId}: ${key} of ${maxLength + 1} characters`)
      }
    }
  }
  await unchanged(t, before, 'oversized, deep and overlong bodies')
  t.notOk(bodied.some((op) => {
    const walk = (s: JsonSchema, seen = new Set<JsonSchema>()): boolean => {
      const r = resolve(doc, s)
      if (seen.has(r)) return false
      seen.add(r)
      if (r.type === 'array' && r.maxItems === undefined) return true
      if (r.type === 'string' && r.maxLength === undefined && !r.enum && !r.format && !r.pattern) return true
      return Object.values(r.properties ?? {}).some((p) => walk(p, seen)) || (r.items ? walk(r.items, seen) : false)
    }
    return walk(op.body!)
  }), 'every array in a request body has maxItems, every free string maxLength')
})

// ---------------------------------------------------------------------------------------------
// API8 security misconfiguration.

const API_HEADERS: Record<string, RegExp> = {
  'content-security-policy': /default-src 'none'.*frame-ancestors 'none'/,
  'x-content-type-options': /^nosniff$/,
  'x-frame-options': /^DENY$/,
  'strict-transport-security': /max-age=\d+/,
  'referrer-policy': /^no-referrer$/,
  'cross-origin-resource-policy': /^same-origin$/,
}

t.test('security headers on every kind of answer, no framework banner', async (t) => {
  const samples: Array<[string, InjectOptions]> = [
    ['200', { url: `/v1/customers/${fixtures.get('customers')}`, headers: admin }],
    ['400', { url: '/v1/customers?limit=0', headers: admin }],
    ['401', { url: '/v1/customers' }],
    ['403', { url: '/v1/customers', headers: await ctx.auth('orders:read') }],
    ['404 unknown route', { url: '/v1/nothing', headers: admin }],
    ['404 unknown id', { url: `/v1/customers/${randomUUID()}`, headers: admin }],
    ['405', { method: 'PUT', url: '/v1/customers', headers: admin }],
    ['413', { method: 'POST', url: '/v1/customers', headers: { ...admin, 'content-type': 'application/json' }, payload: JSON.stringify({ name: 'x'.repeat(1024 * 1024) }) }],
    ['415', { method: 'POST', url: '/v1/customers', headers: { ...admin, 'content-type': 'text/plain' }, payload: 'x' }],
    ['healthz', { url: '/healthz' }],
  ]
  for (const [label, opts] of samples) {
    const res = await send(opts)
    for (const [name, pattern] of Object.entries(API_HEADERS)) t.match(res.headers[name], pattern, `${label} (${res.statusCode}): ${name}`)
    t.notOk(res.headers['x-powered-by'], `${label}: no x-powered-by`)
    t.notOk(res.headers.server, `${label}: no server banner`)
  }
})

t.test('Swagger UI at /docs still works under its own CSP', async (t) => {
  const page = await send({ url: '/docs' })
  t.equal(page.statusCode, 200, '/docs')
  t.match(page.headers['content-type'], /text\/html/)
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /script-src 'self'/, 'the UI may run its own scripts')
  t.notMatch(csp, /default-src 'none'/, 'not the API\'s deny-all policy')
  t.notMatch(csp, /upgrade-insecure-requests/, 'usable on a plain-http development server')
  const initializer = await send({ url: '/docs/static/swagger-initializer.js' })
  t.equal(initializer.statusCode, 200)
  const spec = await send({ url: '/docs/json' })
  t.equal(spec.statusCode, 200, 'the UI loads the document')
  t.ok((spec.json() as { paths: object }).paths)
  const css = await send({ url: '/docs/static/swagger-ui.css' })
  t.equal(css.statusCode, 200, 'and its styles')
})

t.test('error bodies never carry stack traces, SQL or constraint names', async (t) => {
  // Provoke the database's own refusals: a duplicate unique value and an unknown reference.
  const createCustomer = ops.find((o) => o.operationId === 'createCustomer')!
  const createContact = ops.find((o) => o.operationId === 'createContactPoint')!
  const email = `dup${randomBytes(3).toString('hex')}@example.com`
  const a = (await send(request(createCustomer, admin))).json() as { id: string }
  const b = (await send(request(createCustomer, admin))).json() as { id: string }
  await send(request(createContact, admin, { path: { id: a.id }, body: { kind: 'email', value: email, is_primary: true } }))
  const dup = await send(request(createContact, admin, { path: { id: b.id }, body: { kind: 'email', value: email, is_primary: true } }))
  assertProblem(t, dup, 409, 'another customer\'s primary email')
  const createOrder = ops.find((o) => o.operationId === 'createOrder')!
  const orphan = await send(request(createOrder, admin, { body: { ...(exampleBody(createOrder) as object), customer_id: randomUUID() } }))
  t.ok([404, 422].includes(orphan.statusCode), `an order for an unknown customer (${orphan.statusCode})`)
  t.ok(errorBodies > 500, `${errorBodies} error bodies seen in this file`)
  t.same(leaked, [], 'none of them leaks internals')
})

t.test('CORS: none by default; an allowlist enables exactly those origins', async (t) => {
  const preflight = (origin: string) => ({
    method: 'OPTIONS' as const,
    url: '/v1/customers',
    headers: { origin, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization,content-type,if-match' },
  })
  const closed = await send(preflight('https://app.example'))
  t.notOk(closed.headers['access-control-allow-origin'], 'default: a preflight gets no Access-Control-Allow-Origin')
  t.equal(closed.statusCode, 405, 'default: OPTIONS is not a method of the API')
  const simple = await send({ url: '/v1/customers', headers: { ...admin, origin: 'https://app.example' } })
  t.equal(simple.statusCode, 200)
  t.notOk(simple.headers['access-control-allow-origin'], 'default: no CORS header on answers either')

  const app = await conform(buildApp({ db: ctx.db, ownsDb: false, auth: TEST_AUTH, corsOrigins: ['https://app.example', 'http://localhost:5173'] }))
  await app.ready()
  t.teardown(() => app.close())
  const allowed = await app.inject(preflight('https://app.example'))
  t.equal(allowed.statusCode, 204, 'an allowed preflight is answered without a token')
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example')
  t.match(allowed.headers['access-control-allow-methods'], /PATCH/)
  for (const h of ['authorization', 'content-type', 'if-match', 'idempotency-key']) t.match(allowed.headers['access-control-allow-headers'], new RegExp(h), `allows ${h}`)
  t.notOk(allowed.headers['access-control-allow-credentials'], 'no credentials: tokens, not cookies')
  t.ok(allowed.headers['access-control-max-age'], 'preflights are cached')
  t.match(allowed.headers.vary, /Origin/i)

  const evil = await app.inject(preflight('https://evil.example'))
  t.notOk(evil.headers['access-control-allow-origin'], 'another origin gets no Access-Control-Allow-Origin')
  const lookalike = await app.inject(preflight('https://app.example.evil.example'))
  t.notOk(lookalike.headers['access-control-allow-origin'], 'a look-alike origin neither')
  const nullOrigin = await app.inject(preflight('null'))
  t.notOk(nullOrigin.headers['access-control-allow-origin'], 'nor the null origin')

  const read = await app.inject({ url: `/v1/customers/${fixtures.get('customers')}`, headers: { ...admin, origin: 'https://app.example' } })
  t.equal(read.statusCode, 200)
  t.equal(read.headers['access-control-allow-origin'], 'https://app.example')
  t.match(read.headers['access-control-expose-headers'], /etag/i, 'the ETag is readable by the client')
  t.match(read.headers['access-control-expose-headers'], /location/i)
  const denied = await app.inject({ url: '/v1/customers', headers: { origin: 'https://app.example' } })
  t.equal(denied.statusCode, 401)
  t.equal(denied.headers['access-control-allow-origin'], 'https://app.example', 'a 401 is readable by an allowed origin')
  const foreign = await app.inject({ url: '/v1/customers', headers: { ...admin, origin: 'https://evil.example' } })
  t.notOk(foreign.headers['access-control-allow-origin'], 'an answer to another origin carries no CORS header')
  for (const [name, pattern] of Object.entries(API_HEADERS)) t.match(allowed.headers[name], pattern, `preflight: ${name}`)
})
