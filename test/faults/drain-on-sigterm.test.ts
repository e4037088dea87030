import t from 'tap'
import { sql } from 'kysely'
import { token } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { acceptsConnections, rawConnection } from '../helpers/raw-http.js'
import { startServerProcess } from '../helpers/server-process.js'

/**
 * The server process (src/server.ts) on SIGTERM: /readyz turns 503 at once while the listener is
 * still open and requests are still served, for SHUTDOWN_DRAIN_DELAY_MS; then the listener closes,
 * in-flight requests finish, a request that still arrives on an open connection is answered 503
 * shutting-down (a problem, Connection: close), and the process exits 0. Every answer goes through
 * the contract checks (server.fetch, rawConnection).
 */
const DRAIN_MS = 3000
const database = await createTestDatabase()
t.teardown(() => database.drop())
const server = await startServerProcess(t, database.url, { SHUTDOWN_DRAIN_DELAY_MS: String(DRAIN_MS), SHUTDOWN_GRACE_MS: '5000' })
const { exited } = server
const port = Number(new URL(server.base).port)
const authorization = `Bearer ${await token('customers:read', { sub: 'user:drain' })}`
const get = (url: string, headers: Record<string, string> = {}) => server.fetch(url, { headers, signal: AbortSignal.timeout(5000) })
const request = (url: string) => `GET ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${authorization}\r\n\r\n`

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test('SIGTERM: not ready at once, still serving until the listener closes, then late requests are told, then exit 0', async (t) => {
  t.equal((await get('/readyz')).status, 200, 'ready before')
  const signalled = Date.now()
  server.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 200))

  const ready = await get('/readyz')
  t.equal(ready.status, 503, `/readyz is 503 ${Date.now() - signalled} ms after SIGTERM`)
  t.ok(Number(ready.headers.get('retry-after')) >= 1, 'with Retry-After')
  t.match(await ready.json(), { code: 'shutting-down', detail: /shutting down/ })
  t.equal((await get('/healthz')).status, 200, 'still alive')
  t.equal((await get('/v1/customers?limit=1', { authorization })).status, 200, 'requests are still served while draining')

  await database.ownerDb.connection().execute(async (blocker) => {
    // A request held in flight across the close by a lock: its connection stays open, so a request
    // can still arrive on it after the listener has closed.
    await sql`begin`.execute(blocker)
    await sql`lock table customers in access exclusive mode`.execute(blocker)
    const connection = rawConnection(port)
    connection.send(request('/v1/customers?limit=1'))
    await until('the request waits for the lock', async () =>
      Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`.execute(blocker)).rows[0]!.n) > 0)
    await until('the listener closes after the drain delay', async () => !(await acceptsConnections(port)))
    t.ok(Date.now() - signalled >= DRAIN_MS, 'the listener stayed open for the drain delay')
    connection.send(request('/v1/customers?limit=2'))
    await new Promise((resolve) => setTimeout(resolve, 200))
    await sql`rollback`.execute(blocker)

    const [inFlight, late] = await connection.responses(2)
    t.equal(inFlight?.status, 200, 'the request in flight when the listener closed is served')
    t.equal(late?.status, 503, 'a request arriving on an open connection while closing is refused')
    t.match(late?.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(late?.body ?? '{}'), { type: '/problems/shutting-down', code: 'shutting-down', status: 503, title: 'Shutting down', instance: '/v1/customers' })
    t.equal(late?.headers.connection, 'close', 'Connection: close')
    t.ok(Number(late?.headers['retry-after']) >= 1, 'with Retry-After')
    t.ok(late?.headers['x-request-id'], 'with a request id')
    t.equal(late?.headers['x-content-type-options'], 'nosniff', 'with the security headers')
  })

  const code = await exited
  const took = Date.now() - signalled
  t.equal(code, 0, 'exits 0')
  t.ok(took >= DRAIN_MS, `the listener stayed open for the drain delay (exit after ${took} ms)`)
  await t.rejects(get('/healthz'), 'the listener is closed after')
})
