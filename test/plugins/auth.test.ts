import t from 'tap'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { SignJWT, exportSPKI, generateKeyPair, importJWK, type CryptoKey } from 'jose'
import { AUDIENCE, ISSUER, TEST_PUBLIC_JWK, buildTestApp, setup, token } from '../helpers/app.js'
import { SCOPES, VerifiedTokens } from '../../src/plugins/auth.js'

/** Test-only routes, so these tests do not depend on any domain module. */
async function routes(app: FastifyInstance) {
  app.get('/test/scoped', { config: { scope: 'orders:read' } }, async (request) => ({ sub: request.auth?.sub, scopes: [...(request.auth?.scopes ?? [])] }))
  app.get('/test/public', { config: { scope: 'public' } }, async (request) => ({ auth: request.auth }))
  app.post('/test/scoped/:id', { config: { scope: 'orders:write' } }, async () => ({ ok: true }))
}

/** Records, for every request, which route it reached and the scope that route declares. */
const reached: Array<{ method: string; url: string | undefined; scope: unknown; status: number }> = []
const recorder = fp(async (app: FastifyInstance) => {
  app.addHook('onResponse', async (request, reply) => {
    reached.push({ method: request.method, url: request.routeOptions.url, scope: request.routeOptions.config?.scope, status: reply.statusCode })
  })
})

const ctx = await setup({ plugins: [routes, recorder] })
const now = () => Math.floor(Date.now() / 1000)
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const claims = (extra: Record<string, unknown> = {}) => ({ sub: 'user:mallory', scope: 'admin', iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 600, ...extra })

async function get(url: string, authorization?: string) {
  return ctx.app.inject({ url, headers: authorization === undefined ? {} : { authorization } })
}

const KNOWN_401_DETAILS = [
  'Send an access token: Authorization: Bearer <token>.',
  'The Authorization header must be "Bearer <JWT>".',
  'The token has expired.',
  'The token signature is not valid.',
  'The token is signed with an algorithm this API does not accept.',
  'The token is not signed by a known key.',
  'The token is not valid.',
  'The token has no valid subject.',
]

/** A 401 problem with the challenge header and nothing of the verifier's internals. */
function assertUnauthorized(t: Pick<typeof import('tap').t, 'equal' | 'match' | 'same' | 'ok' | 'notOk'>, res: Awaited<ReturnType<typeof get>>, label: string) {
  t.equal(res.statusCode, 401, label)
  t.match(res.headers['content-type'], /^application\/problem\+json/, label)
  t.match(res.headers['www-authenticate'], /^Bearer( error="(invalid_request|invalid_token)")?$/, label)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['code', 'detail', 'instance', 'request_id', 'status', 'title', 'type'], label)
  t.match(body, { status: 401, code: /^token-(missing|invalid|expired)$/ }, label)
  t.ok(KNOWN_401_DETAILS.includes(body.detail) || /^The token's "[a-z]+" claim is not accepted\.$/.test(body.detail), `${label}: ${body.detail}`)
  for (const secret of [ISSUER, AUDIENCE, 'test-key', 'ERR_J', 'jose', 'ES256', 'stack']) t.notOk(res.body.includes(secret), `${label} does not mention ${secret}`)
}

t.test('bad credentials answer 401 problem+json on every scoped route', async (t) => {
  const stranger = await generateKeyPair('ES256')
  const publicPem = await exportSPKI((await importJWK(TEST_PUBLIC_JWK, 'ES256')) as CryptoKey)
  const enc = new TextEncoder()
  const cases: Array<[string, string | undefined]> = [
    ['no header', undefined],
    ['empty header', ''],
    ['Basic scheme', 'Basic dXNlcjpwYXNz'],
    ['Bearer without token', 'Bearer'],
    ['Bearer with two dots missing', 'Bearer abc'],
    ['Bearer with a non-JWT', 'Bearer not.a!.jwt'],
    ['Bearer with garbage segments', 'Bearer aGVsbG8.d29ybGQ.c2ln'],
    ['two spaces after the scheme', `Bearer  ${await token('admin')}`],
    ['token and trailing junk', `Bearer ${await token('admin')} x`],
    ['forged signature (another key, trusted kid)', `Bearer ${await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: 'test-key' }).sign(stranger.privateKey)}`],
    ['tampered payload', `Bearer ${(await token('orders:read')).replace(/\.[^.]+\./, `.${b64(claims())}.`)}`],
    ['expired', `Bearer ${await token('admin', { expiresIn: now() - 3600 })}`],
    ['no exp', `Bearer ${await token('admin', { expiresIn: null })}`],
    ['alg none', `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
    ['alg none with the kid', `Bearer ${b64({ alg: 'none', kid: 'test-key' })}.${b64(claims())}.`],
    ['wrong issuer', `Bearer ${await token('admin', { issuer: 'https://evil.test' })}`],
    ['wrong audience', `Bearer ${await token('admin', { audience: 'another-api' })}`],
    ['HS256 keyed with the public JWK', `Bearer ${await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'test-key' }).sign(enc.encode(JSON.stringify(TEST_PUBLIC_JWK)))}`],
    ['HS256 keyed with the public PEM', `Bearer ${await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256' }).sign(enc.encode(publicPem))}`],
    ['missing sub', `Bearer ${await token('admin', { sub: null })}`],
    ['empty sub', `Bearer ${await token('admin', { sub: '' })}`],
    ['sub too long', `Bearer ${await token('admin', { sub: 'x'.repeat(201) })}`],
    ['nbf in the future', `Bearer ${await token('admin', { claims: { nbf: now() + 3600 } })}`],
    ['unknown kid', `Bearer ${await token('admin', { kid: 'retired-key' })}`],
  ]
  for (const url of ['/test/scoped', '/v1/audit-events', '/v1/audit-events/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11']) {
    for (const [label, header] of cases) assertUnauthorized(t, await get(url, header), `${url}: ${label}`)
  }
  const noHeader = await get('/test/scoped')
  t.equal(noHeader.headers['www-authenticate'], 'Bearer', 'no credentials: a bare challenge')
  const expired = await get('/test/scoped', `Bearer ${await token('admin', { expiresIn: now() - 3600 })}`)
  t.equal(expired.headers['www-authenticate'], 'Bearer error="invalid_token"')
  t.equal(expired.json().detail, 'The token has expired.')

  const post = await ctx.app.inject({ method: 'POST', url: '/test/scoped/1', headers: { 'content-type': 'text/plain' }, payload: 'x' })
  t.equal(post.statusCode, 401, 'authentication runs before the body is parsed')
})

t.test('a valid token without the route scope answers 403', async (t) => {
  for (const scope of ['', 'orders:write', 'customers:read pii:read', 'customers:*', 'orders', 'orders:readx', 'ORDERS:READ']) {
    const res = await get('/test/scoped', `Bearer ${await token(scope)}`)
    t.equal(res.statusCode, 403, `scope "${scope}"`)
    t.match(res.headers['content-type'], /application\/problem\+json/)
    t.match(res.json(), { status: 403, code: 'insufficient-scope', detail: 'This operation needs the scope "orders:read".' })
    t.notOk(res.headers['www-authenticate'])
  }
  t.equal((await get('/v1/audit-events', `Bearer ${await token('customers:read')}`)).statusCode, 403)
})

t.test('the scope itself, admin and domain:* grant access; scp arrays are read too', async (t) => {
  for (const scope of ['orders:read', 'admin', 'orders:*', 'customers:read orders:read', 'pii:read   orders:*']) {
    const res = await get('/test/scoped', `Bearer ${await token(scope, { sub: 'user:ok' })}`)
    t.equal(res.statusCode, 200, `scope "${scope}"`)
    t.equal(res.json().sub, 'user:ok')
  }
  t.equal((await get('/test/scoped', `bearer ${await token('orders:read')}`)).statusCode, 200, 'the scheme is case-insensitive')
  const scp = await get('/test/scoped', `Bearer ${await token('', { claims: { scope: undefined, scp: ['orders:read'] } })}`)
  t.equal(scp.statusCode, 200, 'scp claim as an array')
  const arrayScope = await get('/test/scoped', `Bearer ${await token('', { claims: { scope: ['orders:*'] } })}`)
  t.equal(arrayScope.statusCode, 200, 'scope claim as an array')
  t.equal((await get('/v1/audit-events', `Bearer ${await token('audit:*')}`)).statusCode, 200)
  const open = await get('/test/public')
  t.equal(open.statusCode, 200, 'public routes need no token')
  t.same(open.json(), { auth: null })
})

t.test('the clock tolerance (5 s in tests) is respected for exp and nbf', async (t) => {
  t.equal((await get('/test/scoped', `Bearer ${await token('admin', { expiresIn: now() - 1 })}`)).statusCode, 200, 'expired within tolerance')
  t.equal((await get('/test/scoped', `Bearer ${await token('admin', { expiresIn: now() - 60 })}`)).statusCode, 401, 'expired beyond tolerance')
  t.equal((await get('/test/scoped', `Bearer ${await token('admin', { claims: { nbf: now() + 1 } })}`)).statusCode, 200, 'not yet valid within tolerance')
  t.equal((await get('/test/scoped', `Bearer ${await token('admin', { claims: { nbf: now() + 60 } })}`)).statusCode, 401, 'not yet valid beyond tolerance')
})

/** [method, path] of every route, from the router's own listing: a tree of path segments. */
function routeTable(app: FastifyInstance): Array<[string, string]> {
  const out: Array<[string, string]> = []
  const stack: string[] = []
  for (const line of app.printRoutes().split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (!m) continue
    const depth = m[1]!.length / 4
    stack.length = depth
    const path = stack.join('') + m[2]
    stack.push(m[2]!)
    for (const method of m[3]?.split(', ') ?? []) if (method !== 'HEAD') out.push([method, path])
  }
  return out
}

t.test('every registered route declares a scope, and all but public ones demand a token', async (t) => {
  const table = routeTable(ctx.app)
  for (const expected of [['GET', '/v1/audit-events'], ['GET', '/v1/audit-events/:id'], ['GET', '/healthz'], ['GET', '/test/scoped'], ['GET', '/docs/static/*'], ['POST', '/test/scoped/:id']]) {
    t.ok(table.some(([m, p]) => m === expected[0] && p === expected[1]), `the listing has ${expected.join(' ')}`)
  }
  const valid = new Set<unknown>([...SCOPES, 'public'])
  for (const [method, path] of table) {
    const url = path.replace(/:[A-Za-z_]+/g, '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11').replace('*', 'swagger-ui.css')
    reached.length = 0
    const res = await ctx.app.inject({ method: method as 'GET', url })
    const hit = reached.find((r) => r.method === method)
    t.ok(hit, `${method} ${path} was reached`)
    t.equal(hit?.url, path, `${method} ${url} reached its own route`)
    t.ok(valid.has(hit?.scope), `${method} ${path} declares a known scope (${String(hit?.scope)})`)
    if (hit?.scope !== 'public') t.equal(res.statusCode, 401, `${method} ${path} without a token`)
  }
})

t.test('a route registered without a scope stops the app from starting', async (t) => {
  const unscoped = async (app: FastifyInstance) => {
    app.get('/test/forgotten', async () => ({ ok: true }))
  }
  const app = await buildTestApp(ctx.db, { plugins: [unscoped] })
  await t.rejects(async () => { await app.ready() }, /routes without config\.scope: GET \/test\/forgotten/)
  await app.close().catch(() => {})
  const scoped = await buildTestApp(ctx.db, { plugins: [routes] })
  await t.resolves(async () => { await scoped.ready() }, 'the same app with scoped routes starts')
  await scoped.close()
})

t.test('a verified token is remembered: the same token again is still checked for scope, and a changed token is verified anew', async (t) => {
  const jwt = await token('orders:read', { sub: 'user:cached' })
  for (let i = 0; i < 3; i++) {
    const res = await get('/test/scoped', `Bearer ${jwt}`)
    t.equal(res.statusCode, 200, `request ${i + 1}`)
    t.equal(res.json().sub, 'user:cached')
  }
  t.equal((await ctx.app.inject({ method: 'POST', url: '/test/scoped/1', headers: { authorization: `Bearer ${jwt}` } })).statusCode, 403, 'a remembered token gets no more scopes')
  const [h, p, sig] = jwt.split('.')
  const otherSig = sig!.slice(0, -2) + (sig!.endsWith('AA') ? 'BB' : 'AA')
  assertUnauthorized(t, await get('/test/scoped', `Bearer ${h}.${p}.${otherSig}`), 'the remembered token with another signature')
  assertUnauthorized(t, await get('/test/scoped', `Bearer ${h}.${b64({ ...claims(), scope: 'admin' })}.${sig}`), 'the remembered signature with other claims')
})

t.test('VerifiedTokens keeps an entry until exp or one minute, whichever is sooner, and stays bounded', async (t) => {
  const cache = new VerifiedTokens()
  const at = 1_800_000_000_000
  cache.set('long', { sub: 'a', exp: at / 1000 + 3600 }, at)
  cache.set('short', { sub: 'b', exp: at / 1000 + 10 }, at)
  cache.set('expired', { sub: 'c', exp: at / 1000 - 1 }, at)
  cache.set('no-exp', { sub: 'd' }, at)
  t.equal(cache.get('long', at + 59_000)?.sub, 'a')
  t.equal(cache.get('long', at + 60_000), undefined, 'verified again after a minute')
  t.equal(cache.get('short', at + 9_000)?.sub, 'b')
  t.equal(cache.get('short', at + 10_000), undefined, 'never past exp')
  t.equal(cache.get('expired', at), undefined)
  t.equal(cache.get('no-exp', at), undefined)
  for (let i = 0; i < 10_001; i++) cache.set(`t${i}`, { sub: String(i), exp: at / 1000 + 3600 }, at)
  t.equal(cache.get('t0', at), undefined, 'the oldest entry is evicted at the bound')
  t.equal(cache.get('t10000', at)?.sub, '10000')
})
