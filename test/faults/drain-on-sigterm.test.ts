import t from 'tap'
import { token } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { startServerProcess } from '../helpers/server-process.js'

/**
 * The server process (src/server.ts) on SIGTERM: /readyz turns 503 at once while the listener is
 * still open and requests are still served, for SHUTDOWN_DRAIN_DELAY_MS; then the listener closes
 * and the process exits 0.
 */
const DRAIN_MS = 2000
const database = await createTestDatabase()
t.teardown(() => database.drop())
const server = await startServerProcess(t, database.url, { SHUTDOWN_DRAIN_DELAY_MS: String(DRAIN_MS), SHUTDOWN_GRACE_MS: '5000' })
const { base, exited } = server
const authorization = `Bearer ${await token('customers:read', { sub: 'user:drain' })}`
const get = (url: string, headers: Record<string, string> = {}) => fetch(base + url, { headers, signal: AbortSignal.timeout(5000) })

t.test('SIGTERM: not ready at once, still serving until the listener closes, then exit 0', async (t) => {
  t.equal((await get('/readyz')).status, 200, 'ready before')
  const signalled = Date.now()
  server.kill('SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 200))

  const ready = await get('/readyz')
  t.equal(ready.status, 503, `/readyz is 503 ${Date.now() - signalled} ms after SIGTERM`)
  t.ok(Number(ready.headers.get('retry-after')) >= 1, 'with Retry-After')
  t.match(await ready.json(), { detail: /shutting down/ })
  t.equal((await get('/healthz')).status, 200, 'still alive')
  t.equal((await get('/v1/customers?limit=1', { authorization })).status, 200, 'requests are still served while draining')

  const code = await exited
  const took = Date.now() - signalled
  t.equal(code, 0, 'exits 0')
  t.ok(took >= DRAIN_MS, `the listener stayed open for the drain delay (exit after ${took} ms)`)
  await t.rejects(get('/healthz'), 'the listener is closed after')
})
