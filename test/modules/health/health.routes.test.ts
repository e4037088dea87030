import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()

t.test('healthz and readyz answer ok on a migrated database', async (t) => {
  const live = await ctx.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(live.statusCode, 200)
  t.same(live.json(), { status: 'ok' })
  const ready = await ctx.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.ok(ready.headers['x-request-id'])
})

t.test('unknown route is a 404 problem, known path with another method a 405', async (t) => {
  const nf = await ctx.app.inject({ method: 'GET', url: '/nope' })
  t.equal(nf.statusCode, 404)
  t.match(nf.headers['content-type'], /application\/problem\+json/)
  t.match(nf.json(), { status: 404, title: 'Not Found', instance: '/nope' })
  const na = await ctx.app.inject({ method: 'DELETE', url: '/healthz' })
  t.equal(na.statusCode, 405)
  t.equal(na.headers.allow, 'GET')
})

t.test('metrics are Prometheus text with request durations by route pattern, not raw URL', async (t) => {
  await ctx.app.inject({ method: 'GET', url: '/healthz' })
  await ctx.app.inject({ method: 'GET', url: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11' })
  const res = await ctx.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  t.match(res.body, /http_request_duration_seconds_count\{method="GET",route="\/healthz",status_class="2xx"\} \d+/)
  t.match(res.body, /route="\/v1\/customers\/:id",status_class="4xx"/)
  t.notOk(res.body.includes('0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'), 'no raw ids in labels')
  t.match(res.body, /process_cpu_user_seconds_total/)
})

t.test('while draining (shutdown has begun) /readyz is 503, and everything else is still served', async (t) => {
  ctx.app.draining = true
  t.teardown(() => {
    ctx.app.draining = false
  })
  const ready = await ctx.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.ok(Number(ready.headers['retry-after']) >= 1)
  t.match(ready.json(), { status: 503, detail: /shutting down/ })
  t.equal((await ctx.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'alive')
  t.equal((await ctx.app.inject({ method: 'GET', url: '/v1/customers?limit=1', headers: await ctx.auth() })).statusCode, 200, 'requests are served')
})
