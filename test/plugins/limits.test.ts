import t from 'tap'
import { setup, buildTestApp, TEST_APP_OPTIONS, token } from '../helpers/app.js'

/** Rate limits per token, load shedding, body limits and the request timeout (plugins/limits.ts, app.ts). */
const ctx = await setup({ app: { rateLimit: { max: 3, windowMs: 60_000 } } })
const alice = { authorization: `Bearer ${await token('customers:read', { sub: 'user:alice' })}` }
const aliceOtherToken = { authorization: `Bearer ${await token('customers:read customers:write', { sub: 'user:alice' })}` }
const bob = { authorization: `Bearer ${await token('customers:read', { sub: 'user:bob' })}` }

const list = (headers: Record<string, string>) => ctx.app.inject({ url: '/v1/customers?limit=1', headers })

t.test('each subject gets max requests per window, with RateLimit-* headers, then 429 + Retry-After', async (t) => {
  for (const remaining of [2, 1, 0]) {
    const res = await list(alice)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['ratelimit-limit'], '3')
    t.equal(res.headers['ratelimit-remaining'], String(remaining))
    t.ok(Number(res.headers['ratelimit-reset']) > 0, 'seconds until the window resets')
  }
  const refused = await list(aliceOtherToken)
  t.equal(refused.statusCode, 429, 'the budget belongs to the subject, not the token')
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  t.match(refused.json(), { status: 429, code: 'rate-limited', instance: '/v1/customers' })
  const retry = Number(refused.headers['retry-after'])
  t.ok(retry >= 1 && retry <= 60, `Retry-After ${refused.headers['retry-after']}`)
  t.equal(refused.headers['ratelimit-limit'], '3')
  t.equal(refused.headers['ratelimit-remaining'], '0')

  const other = await list(bob)
  t.equal(other.statusCode, 200, 'another subject has its own budget')
  t.equal(other.headers['ratelimit-remaining'], '2')

  const health = await ctx.app.inject({ url: '/healthz' })
  t.equal(health.statusCode, 200, 'public ops routes are not limited')
  t.notOk(health.headers['ratelimit-limit'])
})

t.test('failed authentications are limited per address, and never lock out a valid token', async (t) => {
  const bad = { authorization: 'Bearer a.b.c' }
  const ip = { remoteAddress: '203.0.113.9' }
  for (let i = 0; i < 3; i++) t.equal((await ctx.app.inject({ url: '/v1/customers', headers: bad, ...ip })).statusCode, 401)
  const refused = await ctx.app.inject({ url: '/v1/customers', headers: bad, ...ip })
  t.equal(refused.statusCode, 429)
  t.ok(Number(refused.headers['retry-after']) >= 1)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  const good = await ctx.app.inject({ url: '/v1/customers', headers: { authorization: `Bearer ${await token('customers:read', { sub: 'user:carol' })}` }, ...ip })
  t.equal(good.statusCode, 200, 'a valid token from the throttled address is served')
  const missing = await ctx.app.inject({ url: '/v1/customers', ...ip })
  t.equal(missing.statusCode, 429, 'a request with no token counts as a failure of the address too')
  const elsewhere = await ctx.app.inject({ url: '/v1/customers', headers: { authorization: 'Bearer x.y.z' }, remoteAddress: '203.0.113.10' })
  t.equal(elsewhere.statusCode, 401, 'another address is not affected')
})

t.test('a flood of bad tokens from one address, then a valid token from it: 200', async (t) => {
  // The lockout this replaces: about 17 failures a second (the default 1000 a minute) from one
  // address refused every token from there, valid ones included.
  const app = await buildTestApp(ctx.db, { app: { rateLimit: { max: 1_000_000, windowMs: 60_000, authFailureMax: 20 } } })
  await app.ready()
  t.teardown(() => app.close())
  const ip = { remoteAddress: '198.51.100.7' }
  const expired = await token('customers:read', { sub: 'user:flood', expiresIn: Math.floor(Date.now() / 1000) - 3600 })
  const statuses = new Map<number, number>()
  for (let i = 0; i < 100; i++) {
    const headers = { authorization: i % 2 ? `Bearer ${expired}` : `Bearer forged.${i}.sig` }
    const res = await app.inject({ url: '/v1/customers?limit=1', headers, ...ip })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
  }
  t.same(Object.fromEntries(statuses), { 401: 20, 429: 80 }, 'the flood is throttled after 20 failures')
  const valid = await app.inject({ url: '/v1/customers?limit=1', headers: { authorization: `Bearer ${await token('customers:read', { sub: 'user:dave' })}` }, ...ip })
  t.equal(valid.statusCode, 200, valid.body)

  const fresh = { remoteAddress: '198.51.100.8' }
  const sameToken = { authorization: `Bearer ${expired}` }
  t.equal((await app.inject({ url: '/v1/customers', headers: sameToken, ...fresh })).statusCode, 429, 'the failing token itself is throttled from any address')
})

t.test('X-Forwarded-For names the client only when the proxy is trusted', async (t) => {
  const opts = { rateLimit: { max: 1_000_000, windowMs: 60_000, authFailureMax: 2 } }
  const direct = await buildTestApp(ctx.db, { app: opts })
  const proxied = await buildTestApp(ctx.db, { app: { ...opts, trustProxy: ['10.0.0.0/8'] } })
  await Promise.all([direct.ready(), proxied.ready()])
  t.teardown(() => Promise.all([direct.close(), proxied.close()]))
  const viaProxy = (app: typeof direct, client: string, n: number) =>
    app.inject({ url: '/v1/customers', remoteAddress: '10.1.2.3', headers: { 'x-forwarded-for': client, authorization: `Bearer bad.${client}.${n}` } })
  for (let i = 0; i < 2; i++) await viaProxy(direct, '192.0.2.1', i)
  t.equal((await viaProxy(direct, '192.0.2.2', 0)).statusCode, 429, 'untrusted: every client behind the proxy is one address')
  for (let i = 0; i < 2; i++) await viaProxy(proxied, '192.0.2.1', i)
  t.equal((await viaProxy(proxied, '192.0.2.1', 9)).statusCode, 429, 'trusted: the client named by the proxy is throttled')
  t.equal((await viaProxy(proxied, '192.0.2.2', 0)).statusCode, 401, 'and another client behind the same proxy is not')
  const spoofed = await proxied.inject({ url: '/v1/customers', remoteAddress: '203.0.113.50', headers: { 'x-forwarded-for': '192.0.2.1', authorization: 'Bearer bad.spoof.1' } })
  t.equal(spoofed.statusCode, 401, 'a header from an untrusted peer is ignored')
})

t.test('under pressure every request answers 503 problem+json with Retry-After', async (t) => {
  // Any heap is over a 1-byte threshold: the app sheds load from its first sample on.
  const app = await buildTestApp(ctx.db, {
    app: { pressure: { ...TEST_APP_OPTIONS.pressure, maxHeapUsedBytes: 1, retryAfterSeconds: 7, sampleIntervalMs: 10 } },
  })
  await app.ready()
  t.teardown(() => app.close())
  while (app.memoryUsage().heapUsed === 0) await new Promise((r) => setTimeout(r, 5))
  const res = await app.inject({ url: '/v1/customers', headers: alice })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '7')
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.json(), { status: 503, code: 'overloaded' })
  const unauthenticated = await app.inject({ url: '/v1/customers' })
  t.equal(unauthenticated.statusCode, 503, 'shed before the token is even looked at')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'the liveness probe still answers')
})

t.test('a body over 1 MiB is 413 on every route but the batch routes', async (t) => {
  const app = await buildTestApp(ctx.db)
  await app.ready()
  t.teardown(() => app.close())
  const admin = { authorization: `Bearer ${await token('admin')}`, 'content-type': 'application/json' }
  const doc = app.swagger() as { paths: Record<string, Record<string, { requestBody?: unknown }>> }
  const big = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 100) })
  let checked = 0
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (!op.requestBody) continue
      const url = path.replace(/\{[^}]+\}/g, '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99')
      const res = await app.inject({ method: method.toUpperCase() as 'POST', url, headers: admin, payload: big })
      if (path.endsWith('/batch')) t.not(res.statusCode, 413, `${method.toUpperCase()} ${path} takes up to 16 MiB`)
      else {
        t.equal(res.statusCode, 413, `${method.toUpperCase()} ${path}`)
        t.match(res.headers['content-type'], /^application\/problem\+json/)
      }
      checked++
    }
  }
  t.ok(checked >= 8, `${checked} routes with a body`)
})

t.test('the request timeout is configured', async (t) => {
  t.equal(ctx.app.server.requestTimeout, 30_000, 'default 30 s')
  const app = await buildTestApp(ctx.db, { app: { requestTimeoutMs: 5_000 } })
  t.teardown(() => app.close())
  t.equal(app.server.requestTimeout, 5_000, 'REQUEST_TIMEOUT_MS reaches the server')
})
