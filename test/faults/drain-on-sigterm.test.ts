import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { AUDIENCE, ISSUER, TEST_PUBLIC_JWK, token } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'

/**
 * The server process (src/server.ts) on SIGTERM: /readyz turns 503 at once while the listener is
 * still open and requests are still served, for SHUTDOWN_DRAIN_DELAY_MS; then the listener closes
 * and the process exits 0.
 */
const DRAIN_MS = 2000
const database = await createTestDatabase()
const dir = mkdtempSync(path.join(tmpdir(), 'crm-drain-'))
const jwks = path.join(dir, 'jwks.json')
writeFileSync(jwks, JSON.stringify({ keys: [TEST_PUBLIC_JWK] }))

const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
  env: {
    ...process.env,
    NODE_ENV: 'production', DATABASE_URL: database.url, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', DATA_DIR: dir,
    AUTH_JWKS_FILE: jwks, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, AUTH_ALGORITHMS: 'ES256',
    SHUTDOWN_DRAIN_DELAY_MS: String(DRAIN_MS), SHUTDOWN_GRACE_MS: '5000',
    AUDIT_SEAL_INTERVAL_MS: '0', LIFECYCLE_SWEEP_MS: '0', IDEMPOTENCY_PURGE_INTERVAL_MS: '0',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
})
const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
const output: string[] = []
child.stderr.on('data', (d: Buffer) => output.push(d.toString()))
t.teardown(async () => {
  if (child.exitCode === null) child.kill('SIGKILL')
  await exited
  await database.drop()
  rmSync(dir, { recursive: true, force: true })
})

const base = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`the server did not start:\n${output.join('')}`)), 60_000)
  createInterface({ input: child.stdout }).on('line', (line) => {
    output.push(line + '\n')
    const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
    if (listening) {
      clearTimeout(timer)
      resolve(listening[1]!)
    }
  })
  void exited.then((code) => reject(new Error(`the server exited (${code}):\n${output.join('')}`)))
})
const authorization = `Bearer ${await token('customers:read', { sub: 'user:drain' })}`
const get = (url: string, headers: Record<string, string> = {}) => fetch(base + url, { headers, signal: AbortSignal.timeout(5000) })

t.test('SIGTERM: not ready at once, still serving until the listener closes, then exit 0', async (t) => {
  t.equal((await get('/readyz')).status, 200, 'ready before')
  const signalled = Date.now()
  child.kill('SIGTERM')
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
