import t from 'tap'
import { rmSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { buildApp } from '../../src/app.js'
import { createMigrationDb } from '../../src/db/connect.js'
import { createDb } from '../../src/db/database.js'
import { startEmbeddedPostgres, type EmbeddedServer } from '../../src/db/embedded.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { TEST_APP_OPTIONS, TEST_AUTH, token } from '../helpers/app.js'
import { clusterPids, freePort, signalAll } from '../helpers/cluster.js'
import { conform } from '../helpers/conformance.js'

/**
 * Concurrent writers keep creating customers while the database is made to fail under them:
 * backends terminated, the postmaster and its children frozen past the statement timeout, a
 * lock held past the statement timeout, and PostgreSQL stopped and started again. On its own
 * embedded PostgreSQL, since it restarts it. Each logical write has its own external_ref, so a
 * retry after a 503 is an upsert, never a duplicate. Bounded: about 20 s of faults.
 */
const STATEMENT_TIMEOUT_MS = 1000
const FAULT_PHASE_MS = 20_000
const WRITERS = 6
const RETRY_BUDGET_MS = 15_000

const port = await freePort()
const dir = path.resolve(`.data/fault-pg-${process.pid}`)
rmSync(dir, { recursive: true, force: true })
let server: EmbeddedServer = await startEmbeddedPostgres({ dir, port, database: 'crm' })
const url = server.url
t.teardown(async () => {
  await server.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
})

const migrationDb = createMigrationDb(url)
await migrateToLatest(migrationDb)
await migrationDb.destroy()

const db = createDb({ connectionString: url, max: 8, statementTimeoutMs: STATEMENT_TIMEOUT_MS, connectTimeoutMs: 1000 })
const app = await conform(buildApp({ ...TEST_APP_OPTIONS, db, ownsDb: true, auth: TEST_AUTH, auditSealIntervalMs: 250 }))
await app.ready()
t.teardown(() => app.close())
const headers = { authorization: `Bearer ${await token('admin', { sub: 'user:fault-writer', expiresIn: '10m' })}` }

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  c.on('error', () => {})
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end().catch(() => {})
  }
}

const stats = { tried: 0, acknowledged: 0, unavailable: 0, other: new Map<number, number>(), readyz503: 0 }
const faults = { terminate: 0, freeze: 0, lock: 0, restart: 0 }
const acknowledged = new Map<string, string>() // external_ref -> id
const unacknowledged: string[] = []
let stopping = false

async function writeOnce(ref: string, name: string): Promise<boolean> {
  const deadline = Date.now() + RETRY_BUDGET_MS
  while (Date.now() < deadline) {
    stats.tried++
    const res = await app.inject({ method: 'POST', url: '/v1/customers', headers, payload: { name, external_ref: ref, tags: ['fault-test'] } })
    if (res.statusCode === 200 || res.statusCode === 201) {
      stats.acknowledged++
      acknowledged.set(ref, (res.json() as { id: string }).id)
      return true
    }
    if (res.statusCode === 503) {
      stats.unavailable++
      if (res.headers['retry-after'] === undefined) stats.other.set(-503, (stats.other.get(-503) ?? 0) + 1)
      await sleep(50 + Math.random() * 100)
      continue
    }
    stats.other.set(res.statusCode, (stats.other.get(res.statusCode) ?? 0) + 1)
    t.comment(`unexpected ${res.statusCode}: ${res.body}`)
    return false
  }
  return false
}

async function writer(w: number) {
  for (let i = 0; !stopping; i++) {
    const ref = `fault-${w}-${i}`
    if (!(await writeOnce(ref, `Fault writer ${w} #${i}`))) unacknowledged.push(ref)
  }
}

const injectors: Array<[keyof typeof faults, () => Promise<void>]> = [
  ['terminate', async () => {
    await admin((c) => c.query(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'crm-api' and pid <> pg_backend_pid()`))
  }],
  ['lock', async () => {
    // Holds the table past the statement timeout: writers waiting on it are cancelled (57014).
    await admin(async (c) => {
      await c.query('begin')
      await c.query('lock table customers in exclusive mode')
      await c.query(`select pg_sleep(${(STATEMENT_TIMEOUT_MS * 1.8) / 1000})`)
      await c.query('commit')
    })
  }],
  ['freeze', async () => {
    const pids = clusterPids(dir)
    signalAll(pids, 'SIGSTOP')
    try {
      await sleep(STATEMENT_TIMEOUT_MS * 1.8)
    } finally {
      signalAll(pids, 'SIGCONT')
    }
  }],
  ['restart', async () => {
    await server.stop()
    for (let i = 0; i < 3; i++) {
      const ready = await app.inject({ url: '/readyz' })
      if (ready.statusCode === 503) stats.readyz503++
      else t.comment(`/readyz answered ${ready.statusCode} while the database was down`)
      await sleep(100)
    }
    server = await startEmbeddedPostgres({ dir, port, database: 'crm' })
  }],
]

async function injectFaults() {
  const end = Date.now() + FAULT_PHASE_MS
  for (let n = 0; Date.now() < end; n++) {
    await sleep(600)
    const [kind, inject] = injectors[n % injectors.length]!
    await inject()
    faults[kind]++
  }
}

t.test('every acknowledged write survives terminations, freezes, lock waits and restarts exactly once', async (t) => {
  const writers = Array.from({ length: WRITERS }, (_, w) => writer(w))
  await injectFaults()
  await sleep(1000) // a last quiet second: writers catch up
  stopping = true
  await Promise.all(writers)

  t.same(Object.fromEntries(stats.other), {}, 'no answer but 2xx and 503 (with Retry-After)')
  t.ok(faults.terminate > 0 && faults.freeze > 0 && faults.lock > 0 && faults.restart > 0, 'every kind of fault was injected')
  t.ok(stats.unavailable > 0, 'the faults were felt (some 503s)')
  t.equal(stats.readyz503, faults.restart * 3, '/readyz is 503 while the database is down')
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200, 'and ready again after')

  const refs = [...acknowledged.keys()]
  const rows = await admin((c) => c.query<{ external_ref: string; id: string; n: number; inserts: number }>(`
    select c.external_ref, min(c.id::text) as id, count(*)::int as n,
           (select count(*)::int from audit_events a where a.entity = 'customers' and a.entity_id = min(c.id::text)::uuid and a.action = 'insert') as inserts
    from customers c where c.external_ref = any($1) group by c.external_ref`, [refs]))
  const found = new Map(rows.rows.map((r) => [r.external_ref, r]))
  let lost = 0
  let wrong = 0
  for (const [ref, id] of acknowledged) {
    const row = found.get(ref)
    if (!row) lost++
    else if (row.n !== 1 || row.id !== id || row.inserts !== 1) wrong++
  }
  t.equal(lost, 0, 'no acknowledged write is lost')
  t.equal(wrong, 0, 'each exists exactly once, with its id, and one insert audit row')

  const verify = await app.inject({ url: '/v1/audit-events/verify', headers })
  t.equal(verify.statusCode, 200, verify.body)
  t.match(verify.json(), { intact: true, unsealed_count: 0, first_broken: null }, 'the audit chain verifies')
  const sealed = await admin((c) => c.query<{ n: number }>('select count(*)::int as n from audit_events'))
  t.equal(verify.json().sealed_count, sealed.rows[0]!.n, 'every audit event is sealed')

  const injected = Object.values(faults).reduce((a, b) => a + b, 0)
  const summary = `fault test: requests tried ${stats.tried}, faults injected ${injected} ` +
    `(terminate ${faults.terminate}, freeze ${faults.freeze}, lock ${faults.lock}, restart ${faults.restart}), ` +
    `503 answers ${stats.unavailable}, writes acknowledged ${stats.acknowledged}, unacknowledged ${unacknowledged.length}, lost ${lost}`
  t.comment(summary)
})

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
