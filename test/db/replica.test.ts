import t from 'tap'
import pg from 'pg'
import { buildApp, type App } from '../../src/app.js'
import { createMigrationDb } from '../../src/db/connect.js'
import { createDb } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { formatLsn, parseLsn } from '../../src/db/replica.js'
import { CONSISTENCY_HEADER, readsFrom } from '../../src/plugins/replica.js'
import { TEST_APP_OPTIONS, TEST_AUTH, token } from '../helpers/app.js'
import { conform } from '../helpers/conformance.js'
import { startStreamingPair } from '../helpers/replica.js'

/**
 * Read replicas with a real streaming replica: a primary the test owns, a replica made from it
 * with pg_basebackup -R. Replay is paused (pg_wal_replay_pause) to make the replica visibly
 * stale, so a read the replica served is told from one the primary served by what it returns.
 */
const pair = await startStreamingPair()
t.teardown(() => pair.destroy())

async function superuser<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}
await superuser(pair.primary.url('postgres'), (c) => c.query('create database crm'))
const migrationDb = createMigrationDb(pair.primary.url('crm'))
await migrateToLatest(migrationDb)
await migrationDb.destroy()

const db = createDb({ connectionString: pair.primary.url('crm'), max: 4 })
const replicaDb = createDb({ connectionString: pair.replica.url('crm'), max: 4, applicationName: 'crm-api-replica', connectTimeoutMs: 1000 })
t.teardown(async () => {
  await db.destroy()
  await replicaDb.destroy()
})

const onReplica = (sql: string) => superuser(pair.replica.url('postgres'), (c) => c.query(sql))
const replayLsn = async () => parseLsn((await onReplica('select pg_last_wal_replay_lsn()::text as l')).rows[0].l as string)!
const primaryLsn = async () => parseLsn((await superuser(pair.primary.url('postgres'), (c) => c.query('select pg_current_wal_lsn()::text as l'))).rows[0].l as string)!

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
const caughtUp = async () => {
  const target = await primaryLsn()
  await until('the replica replays the primary', async () => (await replayLsn()) >= target)
}
await caughtUp()

/** A lag bound no test reaches: the replica counts as fresh however slow the machine is. */
const FRESH = 600_000

async function appWith(maxLagMs: number): Promise<App> {
  const app = await conform(buildApp({
    ...TEST_APP_OPTIONS, db, ownsDb: false, auth: TEST_AUTH,
    replica: { db: replicaDb, owned: false, maxLagMs, checkIntervalMs: 500, readYourWritesMs: 10_000 },
  }))
  await app.ready()
  return app
}

const writer = { authorization: `Bearer ${await token('admin', { sub: 'user:writer' })}` }
const reader = { authorization: `Bearer ${await token('admin', { sub: 'user:reader' })}` }
let seq = 0

async function create(app: App, name: string) {
  const res = await app.inject({ method: 'POST', url: '/v1/customers', headers: writer, payload: { name, external_ref: `replica-${++seq}` } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return { id: (res.json() as { id: string }).id, token: res.headers[CONSISTENCY_HEADER] as string }
}
const names = async (app: App, headers: Record<string, string>) => {
  const res = await app.inject({ url: '/v1/customers?limit=100', headers })
  if (res.statusCode !== 200) throw new Error(res.body)
  return (res.json() as { data: Array<{ name: string }> }).data.map((c) => c.name)
}
const routed = async (app: App) => {
  const text = (await app.inject({ url: '/metrics' })).body
  const counts: Record<string, number> = {}
  for (const m of text.matchAll(/^crm_db_reads_routed_total\{target="(\w+)",reason="(\w+)"\} (\d+)/gm)) counts[`${m[1]}/${m[2]}`] = Number(m[3])
  return counts
}

t.test('the routing rule: collections and views of read routes go to the replica; point reads and writes do not', async (t) => {
  t.equal(readsFrom({ url: '/v1/customers', method: 'GET', config: { scope: 'customers:read' } }), 'replica')
  t.equal(readsFrom({ url: '/v1/customers/search', method: 'POST', config: { scope: 'customers:read' } }), 'replica')
  t.equal(readsFrom({ url: '/v1/segments/:id/export', method: 'GET', config: { scope: 'segments:read' } }), 'replica')
  t.equal(readsFrom({ url: '/v1/customers/:id', method: 'GET', config: { scope: 'customers:read' } }), 'primary')
  t.equal(readsFrom({ url: '/v1/customers', method: 'POST', config: { scope: 'customers:write' } }), 'primary')
  t.equal(readsFrom({ url: '/healthz', method: 'GET', config: { scope: 'public' } }), 'primary')
  t.equal(readsFrom({ url: '/v1/customers', method: 'GET', config: { scope: 'customers:read', reads: 'primary' } }), 'primary')
  t.equal(formatLsn(parseLsn('16/B374D848')!), '16/B374D848')
  t.equal(parseLsn('nonsense'), null)
})

t.test('a fresh replica serves the heavy reads; a write answers with its commit position', async (t) => {
  const app = await appWith(FRESH)
  t.teardown(() => app.close())
  const first = await create(app, 'Ada before the pause')
  t.ok(parseLsn(first.token), `X-Consistency-Token ${first.token} is an LSN`)
  await caughtUp()
  await until('the router sees the replica', async () => app.replica!.status.reachable && app.replica!.status.lagMs === 0)
  await app.replica!.check()
  t.ok((await names(app, reader)).includes('Ada before the pause'))
  t.ok((await routed(app))['replica/replica']! >= 1, 'counted as served by the replica')
  const seen = await onReplica(`select count(*)::int as n from pg_stat_activity where application_name = 'crm-api-replica' and datname = 'crm'`)
  t.ok(seen.rows[0].n >= 1, 'the API holds connections to the replica')
})

t.test('replay paused: reads without a token are served stale by the replica; with the token, or by the writer, they see the write', async (t) => {
  const app = await appWith(FRESH)
  t.teardown(() => app.close())
  await caughtUp()
  await onReplica('select pg_wal_replay_pause()')
  t.teardown(() => onReplica('select pg_wal_replay_resume()'))
  const hidden = await create(app, 'Bea during the pause')
  await until('the router measures', async () => (await app.replica!.check()).reachable)

  await app.replica!.check()
  t.notOk((await names(app, reader)).includes('Bea during the pause'), 'GET /v1/customers without a token: the paused replica answered')
  await app.replica!.check()
  const search = await app.inject({ method: 'POST', url: '/v1/customers/search', headers: reader, payload: { filter: { field: 'name', op: 'eq', value: 'Bea during the pause' } } })
  t.equal(search.statusCode, 200, search.body)
  t.same((search.json() as { data: unknown[] }).data, [], 'POST search (a read with a body) is served by the replica too')
  const keyed = await app.inject({ method: 'POST', url: '/v1/customers/search', headers: { ...reader, 'idempotency-key': 'replica-search-1' }, payload: { filter: { field: 'name', op: 'eq', value: 'Bea during the pause' } } })
  t.equal((keyed.json() as { data: unknown[] }).data.length, 1, 'with an Idempotency-Key the search runs in the request transaction, on the primary')
  const point = await app.inject({ url: `/v1/customers/${hidden.id}`, headers: reader })
  t.equal(point.statusCode, 200, 'a point read by id goes to the primary')

  t.ok((await names(app, { ...reader, [CONSISTENCY_HEADER]: hidden.token })).includes('Bea during the pause'), 'with the token: the primary answered')
  t.ok((await names(app, writer)).includes('Bea during the pause'), 'the writer, without the token, reads its own write (this instance remembers it)')
  t.ok((await names(app, { ...reader, [CONSISTENCY_HEADER]: 'not-an-lsn' })).includes('Bea during the pause'), 'an unreadable token is served by the primary')
  t.ok((await routed(app))['primary/not_replayed']! >= 2, 'counted as not yet replayed')

  await onReplica('select pg_wal_replay_resume()')
  await until('the replica replays the write', async () => (await replayLsn()) >= parseLsn(hidden.token)!)
  const before = (await routed(app))['replica/replica'] ?? 0
  await app.replica!.check()
  t.ok((await names(app, { ...reader, [CONSISTENCY_HEADER]: hidden.token })).includes('Bea during the pause'), 'once replayed, the token is satisfied')
  t.equal((await routed(app))['replica/replica'], before + 1, '... by the replica')
})

t.test('lag past REPLICA_MAX_LAG_MS: reads go to the primary and stay correct, and return once it catches up', async (t) => {
  const maxLagMs = 300
  const app = await appWith(maxLagMs)
  t.teardown(() => app.close())
  await caughtUp()
  await onReplica('select pg_wal_replay_pause()')
  t.teardown(() => onReplica('select pg_wal_replay_resume()'))
  await create(app, 'Cy during the lag')
  await until('the router measures lag past the bound', async () => ((await app.replica!.check()).lagMs ?? 0) > maxLagMs)
  t.ok((await names(app, reader)).includes('Cy during the lag'), 'a read without a token sees the write: the primary served it')
  t.ok((await routed(app))['primary/replica_lagging']! >= 1, 'counted as lagging')
  const metrics = (await app.inject({ url: '/metrics' })).body
  const lag = Number(/^crm_db_replica_lag_seconds (\S+)/m.exec(metrics)?.[1])
  t.ok(lag > maxLagMs / 1000, `crm_db_replica_lag_seconds ${lag}`)
  t.ok(Number(/^crm_db_replica_lag_bytes (\S+)/m.exec(metrics)?.[1]) > 0, 'lag in bytes')

  await onReplica('select pg_wal_replay_resume()')
  await until('the replica catches up', async () => (await app.replica!.check()).lagMs === 0)
  const before = (await routed(app))['replica/replica'] ?? 0
  await app.replica!.check()
  t.ok((await names(app, reader)).includes('Cy during the lag'))
  t.equal((await routed(app))['replica/replica'], before + 1, 'the replica serves again')
})

t.test('replica down: reads go to the primary at once (the failed read runs again there), and come back when it does', async (t) => {
  const app = await appWith(FRESH)
  t.teardown(() => app.close())
  await create(app, 'Dee before the crash')
  await caughtUp()
  await until('the router sees the replica', async () => (await app.replica!.check()).lagMs === 0)
  await app.replica!.check()
  t.ok((await names(app, reader)).includes('Dee before the crash'), 'served by the replica (its pool now holds connections)')
  await pair.replica.stop('immediate')
  t.teardown(() => pair.replica.start())
  await create(app, 'Eve after the crash')

  // The router has not polled yet: the read goes to the replica, fails, and runs on the primary.
  const first = await names(app, reader)
  t.ok(first.includes('Eve after the crash'), 'the first read after the crash is answered by the primary')
  await until('the router marks the replica down', async () => !(await app.replica!.check()).reachable)
  for (let i = 0; i < 3; i++) t.ok((await names(app, reader)).includes('Eve after the crash'), `read ${i} while down: the primary`)
  const counts = await routed(app)
  t.ok((counts['primary/replica_down'] ?? 0) + (counts['primary/replica_failed'] ?? 0) >= 3, JSON.stringify(counts))
  t.match((await app.inject({ url: '/metrics' })).body, /^crm_db_replica_up 0$/m)

  await pair.replica.start()
  await until('the replica is back', async () => (await app.replica!.check()).reachable)
  await caughtUp()
  await until('and caught up', async () => (await app.replica!.check()).lagMs === 0)
  const before = (await routed(app))['replica/replica'] ?? 0
  await app.replica!.check()
  t.ok((await names(app, reader)).includes('Eve after the crash'))
  t.equal((await routed(app))['replica/replica'], before + 1, 'the replica serves again')
})

t.test('segment counts and analytics run on the replica (read-only: no write hides in them)', async (t) => {
  const app = await appWith(FRESH)
  t.teardown(() => app.close())
  const segment = await app.inject({ method: 'POST', url: '/v1/segments', headers: writer, payload: { name: 'Everyone', kind: 'dynamic', filter: { field: 'tags', op: 'has_any', value: ['vip'] } } })
  t.equal(segment.statusCode, 201, segment.body)
  const id = (segment.json() as { id: string }).id
  await caughtUp()
  await until('the router sees the replica', async () => (await app.replica!.check()).lagMs === 0)
  const before = (await routed(app))['replica/replica'] ?? 0
  for (const url of [`/v1/segments/${id}/count`, `/v1/segments/${id}/members`, `/v1/segments/${id}/export?format=ndjson`, '/v1/analytics/lifecycle', '/v1/analytics/rfm', '/v1/audit-events?limit=5']) {
    await app.replica!.check()
    const res = await app.inject({ url, headers: reader })
    t.equal(res.statusCode, 200, `${url}: ${res.statusCode} ${res.statusCode === 200 ? '' : res.body}`)
  }
  t.equal((await routed(app))['replica/replica'], before + 6, 'all six served by the replica')
})
