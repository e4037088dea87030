import t from 'tap'
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { setup } from '../helpers/app.js'

/**
 * Prometheus metrics (plugins/metrics.ts and the plugins that add theirs): names, labels, and
 * values that move with what the app does; and the Grafana dashboard in ops/grafana draws only
 * metrics that exist.
 */
const DEADLINE_MS = 1000

const testRoutes = fp(async (app) => {
  app.get('/test/slow', { config: { scope: 'customers:read', reads: 'primary' } }, async (request) => {
    await sql`select pg_sleep(5)`.execute(request.db)
    return { ok: true }
  })
  app.scheduleJob({ name: 'metrics-test-ok', intervalMs: 100, atStart: true, run: async () => 'done' })
  app.scheduleJob({
    name: 'metrics-test-fails', intervalMs: 100, atStart: true,
    run: async () => {
      throw new Error('this job always fails')
    },
  })
})

const ctx = await setup({ plugins: [testRoutes], app: { deadline: { deadlineMs: DEADLINE_MS, longDeadlineMs: 10 * DEADLINE_MS } } })
const scrape = async () => (await ctx.app.inject({ url: '/metrics' })).body

/** The value of one sample, labels in the order prom-client prints them; 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = m[2] ? m[2].split(/,(?=[a-z_]+=")/) : []
    if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) return Number(m[3])
  }
  return 0
}

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('requests: a counter and a duration histogram by route pattern, method and status class', async (t) => {
  const headers = await ctx.auth('customers:read')
  const labels = { method: 'GET', route: '/v1/customers', status_class: '2xx' }
  const before = await scrape()
  for (let i = 0; i < 3; i++) t.equal((await ctx.app.inject({ url: '/v1/customers?limit=1', headers })).statusCode, 200)
  t.equal((await ctx.app.inject({ url: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11' })).statusCode, 401)
  const after = await scrape()
  t.equal(sample(after, 'http_requests_total', labels) - sample(before, 'http_requests_total', labels), 3, 'three more 2xx')
  t.equal(sample(after, 'http_request_duration_seconds_count', labels) - sample(before, 'http_request_duration_seconds_count', labels), 3, 'three more durations')
  t.ok(sample(after, 'http_request_duration_seconds_sum', labels) > sample(before, 'http_request_duration_seconds_sum', labels), 'their time adds up')
  t.equal(sample(after, 'http_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), sample(after, 'http_request_duration_seconds_count', labels))
  t.ok(sample(after, 'http_requests_total', { method: 'GET', route: '/v1/customers/:id', status_class: '4xx' }) >= 1, '4xx, labelled by the pattern')
  t.notOk(after.includes('0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'), 'no raw ids in labels')
  t.equal(sample(after, 'crm_db_reads_routed_total', { target: 'primary', reason: 'no_replica' }) - sample(before, 'crm_db_reads_routed_total', { target: 'primary', reason: 'no_replica' }), 3, 'replica-eligible reads, with no replica configured')
})

t.test('the pool: open, idle and waiting connections', async (t) => {
  await Promise.all(Array.from({ length: 3 }, () => sql`select pg_sleep(0.05)`.execute(ctx.db)))
  const text = await scrape()
  const total = sample(text, 'crm_db_pool_connections', { pool: 'primary', state: 'total' })
  t.ok(total >= 1 && total <= 5, `total ${total} (the test pool holds at most 5)`)
  t.ok(sample(text, 'crm_db_pool_connections', { pool: 'primary', state: 'idle' }) <= total)
  t.match(text, /^crm_db_pool_waiting\{pool="primary"\} 0$/m)
})

t.test('a request past its deadline is counted by route', async (t) => {
  const before = sample(await scrape(), 'crm_http_deadline_exceeded_total', { route: '/test/slow' })
  const res = await ctx.app.inject({ url: '/test/slow', headers: await ctx.auth('customers:read') })
  t.equal(res.statusCode, 503)
  t.equal(sample(await scrape(), 'crm_http_deadline_exceeded_total', { route: '/test/slow' }), before + 1)
  t.ok(sample(await scrape(), 'http_requests_total', { method: 'GET', route: '/test/slow', status_class: '5xx' }) >= 1)
})

t.test('scheduler jobs: runs by outcome, run time, last success', async (t) => {
  await until('both jobs ran', async () => {
    const text = await scrape()
    return sample(text, 'crm_job_runs_total', { job_name: 'metrics-test-ok', outcome: 'success' }) >= 2 &&
      sample(text, 'crm_job_runs_total', { job_name: 'metrics-test-fails', outcome: 'failure' }) >= 1
  })
  const text = await scrape()
  t.equal(sample(text, 'crm_job_runs_total', { job_name: 'metrics-test-ok', outcome: 'failure' }), 0)
  t.equal(sample(text, 'crm_job_runs_total', { job_name: 'metrics-test-fails', outcome: 'success' }), 0)
  const last = sample(text, 'crm_job_last_success_timestamp_seconds', { job_name: 'metrics-test-ok' })
  t.ok(Math.abs(last - Date.now() / 1000) < 60, `last success ${last} is recent`)
  t.equal(sample(text, 'crm_job_last_success_timestamp_seconds', { job_name: 'metrics-test-fails' }), 0, 'never for the failing job')
  t.ok(sample(text, 'crm_job_duration_seconds_count', { job_name: 'metrics-test-ok' }) >= 2)
})

t.test('the Grafana dashboard draws only metrics that exist', async (t) => {
  const dashboard = JSON.parse(readFileSync('ops/grafana/crm-api.json', 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> }
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((target) => target.expr))
  t.ok(exprs.length >= 12, `${exprs.length} queries`)
  const text = await scrape()
  const declared = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!))
  const used = new Set<string>()
  for (const expr of exprs) {
    // Metric names are the identifiers directly followed by a selector or range; functions are
    // followed by "(", labels sit inside braces.
    for (const m of expr.replace(/\{[^}]*\}/g, '{}').matchAll(/\b([a-z_:][a-z0-9_:]*)(?=\{|\[)/g)) used.add(m[1]!)
  }
  t.ok(used.size >= 10, `${used.size} metrics used: ${[...used].join(', ')}`)
  for (const name of used) {
    const base = name.replace(/_(bucket|sum|count)$/, '')
    t.ok(declared.has(name) || declared.has(base), `${name} is in /metrics`)
  }
  for (const panel of dashboard.panels) t.ok(panel.targets.length > 0, `${panel.title} draws something`)
})
