import t from 'tap'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { setup } from '../helpers/app.js'
import { checkingFetch } from '../helpers/conformance.js'

/**
 * The per-request deadline (plugins/deadline.ts, db/scope.ts): past it the request answers 503
 * deadline-exceeded with Retry-After, its database connection is closed (the backend goes away,
 * the transaction rolls back), and a route may have a longer deadline. Over a real socket, since
 * a request body changes when Node reports the request closed.
 */
const DEADLINE_MS = 800
const pids = new Map<string, number>()

async function routes(app: FastifyInstance) {
  app.get('/test/slow-wait', { config: { scope: 'customers:read' } }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 3000))
    return { ok: true }
  })
  app.get('/test/slow-long', { config: { scope: 'customers:read', deadline: 'long' } }, async () => {
    await new Promise((resolve) => setTimeout(resolve, DEADLINE_MS + 300))
    return { ok: true }
  })
  app.post('/test/slow-write', { config: { scope: 'customers:write' } }, async (request) => {
    const { name } = request.body as { name: string }
    await request.db.insertInto('customers').values({ name }).execute()
    const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(request.db)
    pids.set(name, rows[0]!.pid)
    await sql`select pg_sleep(3)`.execute(request.db)
    return { ok: true }
  })
}

const ctx = await setup({ plugins: [routes], app: { deadline: { deadlineMs: DEADLINE_MS, longDeadlineMs: 3 * DEADLINE_MS } } })
await ctx.app.listen({ host: '127.0.0.1', port: 0 })
const base = `http://127.0.0.1:${(ctx.app.server.address() as { port: number }).port}`

/** Checked against the contract, which is compiled here, before any request is timed. */
const checkedFetch = checkingFetch()

async function call(url: string, init: { method?: string; body?: unknown; scope?: string } = {}) {
  const started = Date.now()
  const res = await checkedFetch(base + url, {
    method: init.method ?? 'GET',
    headers: { ...(await ctx.auth(init.scope ?? 'admin')), ...(init.body ? { 'content-type': 'application/json' } : {}) },
    body: init.body ? JSON.stringify(init.body) : undefined,
    signal: AbortSignal.timeout(10_000),
  })
  return { res, ms: Date.now() - started, body: (await res.json()) as { type?: string; status?: number } }
}

t.test('a handler still waiting at the deadline: 503 deadline-exceeded with Retry-After', async (t) => {
  const { res, ms, body } = await call('/test/slow-wait')
  t.equal(res.status, 503)
  t.ok(ms >= DEADLINE_MS - 50 && ms < DEADLINE_MS + 700, `answered after ${ms} ms`)
  t.equal(res.headers.get('retry-after'), '2')
  t.match(res.headers.get('content-type'), /^application\/problem\+json/)
  t.match(body, { status: 503, type: /deadline-exceeded$/ })
})

t.test('a route with the long deadline gets it', async (t) => {
  const { res, ms } = await call('/test/slow-long')
  t.equal(res.status, 200, `answered after ${ms} ms`)
})

t.test('a write past the deadline: 503, its connection closed, nothing committed', async (t) => {
  const name = `Deadline ${Date.now()}`
  const { res, ms, body } = await call('/test/slow-write', { method: 'POST', body: { name } })
  t.equal(res.status, 503, JSON.stringify(body))
  t.ok(ms < DEADLINE_MS + 700, `answered after ${ms} ms, though its statement sleeps 3 s`)
  t.match(body, { type: /deadline-exceeded$/ })
  const pid = pids.get(name)
  t.ok(pid, 'the handler had its connection')
  let gone = false
  for (let i = 0; i < 30 && !gone; i++) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`.execute(ctx.ownerDb)
    gone = rows[0]!.n === 0
    if (!gone) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(gone, 'the backend that ran the request is gone (its socket was closed)')
  const rows = await ctx.ownerDb.selectFrom('customers').select('id').where('name', '=', name).execute()
  t.same(rows, [], 'the insert rolled back')
  const after = await call('/v1/customers?limit=1')
  t.equal(after.res.status, 200, 'the next request gets a working connection')
})
