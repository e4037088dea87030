import t, { type Test } from 'tap'
import { rmSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { sql } from 'kysely'
import { buildApp } from '../../src/app.js'
import { createMigrationDb } from '../../src/db/connect.js'
import { createDb, poolOf } from '../../src/db/database.js'
import { startEmbeddedPostgres } from '../../src/db/embedded.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { TEST_APP_OPTIONS, TEST_AUTH, token } from '../helpers/app.js'
import { clusterPids, freePort, signalAll } from '../helpers/cluster.js'
import { checkingFetch, conform } from '../helpers/conformance.js'

/**
 * Every wait is bounded: with PostgreSQL frozen (SIGSTOP on the postmaster and every backend:
 * it accepts TCP but never answers, and statement_timeout never fires), reads, writes and
 * /readyz answer 503 problem+json with Retry-After within their deadline; after SIGCONT the pool
 * recovers by itself and no connection is left behind. On a PostgreSQL of its own, since it
 * freezes it.
 */
const DEADLINE_MS = 1500
const READINESS_MS = 500
const SLACK_MS = 1000
const POOL_MAX = 4
/** CRM_FREEZE_MS=60000 measures the longest answer under a one-minute freeze. */
const FREEZE_MS = Number(process.env.CRM_FREEZE_MS ?? 6000)

const port = await freePort()
const dir = path.resolve(`.data/freeze-pg-${process.pid}`)
rmSync(dir, { recursive: true, force: true })
const server = await startEmbeddedPostgres({ dir, port, database: 'crm' })
t.teardown(async () => {
  await server.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
})

const migrationDb = createMigrationDb(server.url)
await migrateToLatest(migrationDb)
await migrationDb.destroy()

// A connect timeout longer than the deadline: the deadline bounds the wait for a new connection too.
const db = createDb({ connectionString: server.url, max: POOL_MAX, connectTimeoutMs: 3 * DEADLINE_MS })
const pool = poolOf(db)
const app = await conform(buildApp({
  ...TEST_APP_OPTIONS, db, ownsDb: true, auth: TEST_AUTH,
  deadline: { deadlineMs: DEADLINE_MS, longDeadlineMs: 2 * DEADLINE_MS },
  readinessTimeoutMs: READINESS_MS,
}))
await app.listen({ host: '127.0.0.1', port: 0 })
t.teardown(() => app.close())
const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
const authorization = `Bearer ${await token('admin', { sub: 'user:freeze', expiresIn: '10m' })}`

interface Answer { status: number; ms: number; retryAfter: string | null; contentType: string | null; body: { type?: string } }

/** Checked against the contract, which is compiled here, before any request is timed. */
const checkedFetch = checkingFetch()

async function call(method: 'GET' | 'POST', url: string, body?: unknown): Promise<Answer> {
  const started = Date.now()
  const res = await checkedFetch(base + url, {
    method,
    headers: { authorization, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  return { status: res.status, ms: Date.now() - started, retryAfter: res.headers.get('retry-after'), contentType: res.headers.get('content-type'), body: JSON.parse(text || '{}') as { type?: string } }
}

async function backends(): Promise<number> {
  const c = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 3000 })
  await c.connect()
  try {
    const { rows } = await c.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where application_name = 'crm-api'`)
    return rows[0]!.n
  } finally {
    await c.end()
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const kinds = new Map<string, number>()

/**
 * 503 with Retry-After within the bound. Which 503: the request deadline's (deadline-exceeded),
 * or the pool's connect timeout (DB_CONNECT_TIMEOUT_MS, database-unavailable) when that is shorter and the request was
 * waiting for a new connection.
 */
function deadlineAnswer(t: Test, answer: Answer, bound: number, what: string) {
  t.equal(answer.status, 503, `${what}: 503`)
  t.ok(answer.ms <= bound + SLACK_MS, `${what}: answered in ${answer.ms} ms (deadline ${bound} ms)`)
  t.ok(Number(answer.retryAfter) >= 1, `${what}: Retry-After ${answer.retryAfter}`)
  t.match(answer.contentType, /^application\/problem\+json/, `${what}: a problem`)
  t.match(answer.body.type, /(deadline-exceeded|database-unavailable)$/, `${what}: ${answer.body.type}`)
  const kind = String(answer.body.type).split('/').pop()!
  kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
}

t.test('a frozen database: every request answers 503 within its deadline, and the pool recovers after', async (t) => {
  t.equal((await call('POST', '/v1/customers', { name: 'Before the freeze', external_ref: 'freeze-before' })).status, 201)
  t.equal((await call('GET', '/v1/customers?limit=1')).status, 200)
  t.equal((await call('GET', '/readyz')).status, 200)
  // Every pool connection open, so the freeze catches requests holding one as well as requests
  // opening one.
  await Promise.all(Array.from({ length: POOL_MAX }, () => sql`select pg_sleep(0.1)`.execute(db)))
  t.equal(pool.totalCount, POOL_MAX, 'the pool is full before the freeze')

  const pids = clusterPids(dir)
  let frozen = true
  const thaw = () => {
    if (frozen) signalAll(pids, 'SIGCONT')
    frozen = false
  }
  t.teardown(thaw)
  signalAll(pids, 'SIGSTOP')
  const frozenAt = Date.now()

  // More requests than the pool has connections: some wait for one, some for the server.
  const reads = Array.from({ length: POOL_MAX + 2 }, () => call('GET', '/v1/customers?limit=5'))
  const writes = [0, 1].map((i) => call('POST', '/v1/customers', { name: `During the freeze ${i}`, external_ref: `freeze-during-${i}` }))
  const ready = call('GET', '/readyz')
  for (const [i, answer] of (await Promise.all(reads)).entries()) deadlineAnswer(t, answer, DEADLINE_MS, `GET #${i}`)
  for (const [i, answer] of (await Promise.all(writes)).entries()) deadlineAnswer(t, answer, DEADLINE_MS, `POST #${i}`)
  deadlineAnswer(t, await ready, READINESS_MS, '/readyz')

  // Still frozen: the closed connections left the pool, so later requests are bounded the same
  // way, for as long as the freeze lasts.
  const later: Answer[] = []
  while (Date.now() - frozenAt < FREEZE_MS - DEADLINE_MS - SLACK_MS) {
    later.push(...(await Promise.all([
      call('GET', '/v1/customers?limit=5'),
      call('POST', '/v1/customers', { name: 'During the freeze, later', external_ref: `freeze-during-later-${later.length}` }),
      call('GET', '/readyz'),
    ])))
  }
  t.ok(later.length >= 3, `${later.length} more requests while frozen`)
  for (const [i, answer] of later.entries()) deadlineAnswer(t, answer, i % 3 === 2 ? READINESS_MS : DEADLINE_MS, `later request #${i}, still frozen`)
  t.ok(pool.totalCount <= POOL_MAX, `the pool holds ${pool.totalCount} of ${POOL_MAX}`)
  t.ok((kinds.get('deadline-exceeded') ?? 0) >= POOL_MAX, `the requests holding connections were cut off by the deadline (${JSON.stringify(Object.fromEntries(kinds))})`)
  const longest = Math.max(...[...(await Promise.all(reads)), ...(await Promise.all(writes)), ...later].map((a) => a.ms))
  t.comment(`frozen ${FREEZE_MS} ms: ${later.length + reads.length + writes.length + 1} requests, longest answer ${longest} ms (deadline ${DEADLINE_MS} ms)`)

  await sleep(Math.max(0, FREEZE_MS - (Date.now() - frozenAt)))
  thaw()

  const thawedAt = Date.now()
  let recovered: Answer | undefined
  while (Date.now() - thawedAt < 5000) {
    const answer = await call('GET', '/v1/customers?limit=5')
    if (answer.status === 200) {
      recovered = answer
      break
    }
    await sleep(100)
  }
  t.ok(recovered, `a GET answers 200 ${Date.now() - thawedAt} ms after SIGCONT`)
  t.equal((await call('POST', '/v1/customers', { name: 'After the freeze', external_ref: 'freeze-after' })).status, 201, 'writes work again')
  t.equal((await call('GET', '/readyz')).status, 200, '/readyz is 200 again')

  const cut = await db.selectFrom('customers').select('external_ref').where('external_ref', 'like', 'freeze-during-%').execute()
  t.same(cut, [], 'the writes cut off by the deadline left nothing behind')

  // No connection leaked: nothing is checked out, and the server sees no more connections of the
  // app than the pool holds (the closed ones are gone once the server has run again).
  let settled = false
  for (let i = 0; i < 50 && !settled; i++) {
    settled = pool.waitingCount === 0 && pool.idleCount === pool.totalCount && (await backends()) <= pool.totalCount
    if (!settled) await sleep(100)
  }
  t.ok(settled, `no connection leaked: pool total ${pool.totalCount}, idle ${pool.idleCount}, waiting ${pool.waitingCount}, server-side ${await backends()}`)
})
