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
  t.match(refused.json(), { status: 429, title: 'Too Many Requests', instance: '/v1/customers' })
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

t.test('failed authentications are limited per IP, before tokens are verified', async (t) => {
  const bad = { authorization: 'Bearer a.b.c' }
  const ip = { remoteAddress: '203.0.113.9' }
  for (let i = 0; i < 3; i++) t.equal((await ctx.app.inject({ url: '/v1/customers', headers: bad, ...ip })).statusCode, 401)
  const refused = await ctx.app.inject({ url: '/v1/customers', headers: bad, ...ip })
  t.equal(refused.statusCode, 429)
  t.ok(Number(refused.headers['retry-after']) >= 1)
  t.match(refused.headers['content-type'], /^application\/problem\+json/)
  const good = await ctx.app.inject({ url: '/v1/customers', headers: { authorization: `Bearer ${await token('customers:read', { sub: 'user:carol' })}` }, ...ip })
  t.equal(good.statusCode, 429, 'the IP waits out its window, valid token or not')
  const elsewhere = await ctx.app.inject({ url: '/v1/customers', headers: bad, remoteAddress: '203.0.113.10' })
  t.equal(elsewhere.statusCode, 401, 'another IP is not affected')
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
  t.match(res.json(), { status: 503, title: 'Service Unavailable' })
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
