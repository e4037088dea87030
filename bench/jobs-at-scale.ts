/**
 * `npx tsx bench/jobs-at-scale.ts --admin-url URL [--database crm_bench_1000000] [--runs 5] [--history 1000000] [--import-rows 100000] [--upkeep-months 6] [--only a,b]`
 *
 * Every scheduler job, run as the scheduler runs it (app.runJobNow: the job's lease, its audited
 * transaction as `system:<job>`, its statement_timeout), against a seeded database (`npm run
 * seed`, 1M customers for the figures in bench/README.md), each with a backlog of work first:
 *
 * - audit-seal, catch-up: --history audit rows written before the chain existed (one `insert` row
 *   per customer, at its created_at, in transactions of 10,000, into the monthly partitions of
 *   those dates, created first), sealed run after run until a
 *   run seals nothing. Steady state: --runs rounds of 1,000 audited writes (one UPDATE of 1,000
 *   customers), then one seal.
 * - audit-verify-full: the whole chain recomputed, --runs times (at most 3: each reads all of it).
 * - lifecycle-sweep: 10 % of the unpinned customers given a stage the rules would not give them
 *   (time moving them on, with no write), one run that fixes them; then runs with nothing due.
 * - idempotency-purge: 50,000 expired and 50,000 live keys (1 kB bodies); --runs runs.
 * - events-purge: the history's events older than the 30-day retention; runs until one purges nothing.
 * - import-recovery: an import of --import-rows new customers whose process died after its upload was
 *   staged (status merging, staged rows complete): one run merges it; then runs with nothing to do.
 * - backfills: whatever backfill is pending (none in this version: the run finds nothing).
 * - partition-upkeep: the job as if it had been off for --upkeep-months months: the monthly
 *   partitions of audit_events and events from that many months back on (this month's and the
 *   ones ahead too) detached and dropped, their rows moved into the default partitions (where
 *   writes land while their month has no partition); one run that creates them and moves the rows
 *   in, then runs with nothing to do.
 *
 * Per job: each run's wall time (median [min–max] over the runs), what it returned (rows
 * touched), and whether every run stayed within the job's time limit (its timeoutMs). The
 * database is changed (backlogs added, jobs' work done): use a seeded bench database, not one to
 * keep. Webhook delivery is not a scheduler job (a worker loop, see bench/webhooks.ts).
 */
import { parseArgs } from 'node:util'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { sql } from 'kysely'
import pg from 'pg'
import { buildApp, type App } from '../src/app.js'
import { createDb, type Db } from '../src/db/database.js'
import { inAuditedTransaction } from '../src/plugins/audit.js'

const { values } = parseArgs({
  options: {
    'admin-url': { type: 'string', default: process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    database: { type: 'string', default: 'crm_bench_1000000' },
    runs: { type: 'string', default: '5' },
    history: { type: 'string', default: '1000000' },
    'import-rows': { type: 'string', default: '100000' },
    'upkeep-months': { type: 'string', default: '6' },
    only: { type: 'string' },
  },
})
const RUNS = Number(values.runs)
const HISTORY = Number(values.history)
const IMPORT_ROWS = Number(values['import-rows'])
const UPKEEP_MONTHS = Number(values['upkeep-months'])
const url = new URL(values['admin-url']!)
url.pathname = `/${values.database}`
const only = values.only ? new Set(values.only.split(',')) : null
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)

interface Figure { job: string; backlog: string; ms: number[]; touched: string[]; timeoutMs: number; errors: string[] }
const figures: Figure[] = []

/** Runs the job `times` times (or until `until` says stop), timing each run of app.runJobNow. */
async function timeJob(app: App, job: string, backlog: string, times: number, touched: (result: unknown) => string, until?: (result: unknown) => boolean) {
  const fig: Figure = { job, backlog, ms: [], touched: [], timeoutMs: 0, errors: [] }
  for (let i = 0; i < times; i++) {
    const t0 = performance.now()
    const run = await app.runJobNow(job)
    const ms = performance.now() - t0
    if (!run.ran) throw new Error(`${job}: the lease was held; nothing ran`)
    fig.timeoutMs = run.timeoutMs
    fig.ms.push(ms)
    if (run.error) fig.errors.push(run.error)
    else fig.touched.push(touched(run.result))
    log(`${job} run ${i + 1}: ${(ms / 1000).toFixed(2)} s, ${run.error ?? touched(run.result)}`)
    if (run.error || until?.(run.result)) break
  }
  figures.push(fig)
  return fig
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }
const secs = (ms: number) => (ms >= 10_000 ? (ms / 1000).toFixed(0) : ms >= 1000 ? (ms / 1000).toFixed(1) : (ms / 1000).toFixed(3))

async function owner<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url.toString(), application_name: 'bench-jobs-setup' })
  await c.connect()
  try { return await fn(c) } finally { await c.end() }
}

/** The history: one audit row per customer as if each had been created through the API, in transactions of 10,000. */
async function writeHistory() {
  await owner(async (c) => {
    await c.query(`create temp table hist as select id, row_number() over (order by created_at, id) as n from customers`)
    const n = Math.min(HISTORY, Number((await c.query('select count(*) as n from hist')).rows[0].n))
    // The months of the history get their partitions, as partition-upkeep would have made them
    // month after month: without them the whole history would land in the default partitions.
    const parts = await c.query(`select crm_partition_create(p, m) from (select distinct date_trunc('month', created_at at time zone 'UTC') as m from customers) d,
      unnest(array['audit_events', 'events']) p order by m, p`)
    log(`history: ${parts.rows.filter((r) => r.crm_partition_create).length} monthly partitions created for it`)
    const t0 = performance.now()
    for (let from = 1; from <= n; from += 10_000) {
      await c.query(
        `insert into audit_events (occurred_at, actor, request_id, route, action, entity, entity_id, before, after)
         select c.created_at, 'bench:history', null, 'POST /v1/customers', 'insert', 'customers', c.id, null,
                crm_audit_snapshot(to_jsonb(c), crm_audit_column_kinds('customers'))
         from hist h join customers c on c.id = h.id where h.n between $1 and $2`,
        [from, Math.min(n, from + 9_999)],
      )
    }
    log(`history: ${n} audit rows (and their events) in ${((performance.now() - t0) / 1000).toFixed(0)} s`)
  })
}

/** 1,000 customers updated in one audited transaction: 1,000 audit rows to seal. */
async function thousandWrites(db: Db, round: number) {
  await inAuditedTransaction(db, { actor: 'bench:writer', requestId: `bench-writes-${round}`, route: 'PATCH /v1/customers/{id}' }, (trx) =>
    sql`update customers set occupation = ${`bench ${round}`} where id in (select id from customers tablesample system (0.5) limit 1000)`.execute(trx))
}

async function lifecycleBacklog(): Promise<number> {
  return owner(async (c) => {
    // Replica role: no trigger (audit, touch) sees the setup; the sweep's corrections are audited.
    await c.query('set session_replication_role = replica')
    const r = await c.query(`update customers set lifecycle_stage = case when lifecycle_stage = 'churned' then 'loyal' else 'churned' end
      where not lifecycle_stage_manual and id in (select id from customers tablesample system (10))`)
    await c.query('analyze customers')
    return r.rowCount ?? 0
  })
}

async function idempotencyBacklog() {
  await owner((c) => c.query(`
    insert into idempotency_keys (actor, route, key, fingerprint, status, headers, body, created_at, expires_at)
    select 'bench:client', 'POST /v1/customers', 'key-' || txid_current() || '-' || i, md5(i::text), 201, '{"location":"/v1/customers/x"}',
           repeat('x', 1000), now() - interval '2 days', case when i <= 50000 then now() - interval '1 day' + i * interval '1 ms' else now() + interval '1 day' end
    from generate_series(1, 100000) i`))
}

/**
 * The partitions of this month, the months ahead and the `months - 1` before dropped, their rows
 * moved into the default partitions first (owner, replica role: no trigger sees the move).
 */
async function upkeepBacklog(months: number): Promise<{ dropped: number; audit: number; events: number }> {
  return owner(async (c) => {
    await c.query('set session_replication_role = replica')
    const { rows } = await c.query<{ parent: string; part: string }>(`
      select p.relname as parent, c.relname as part
      from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      where p.relname in ('audit_events', 'events') and p.relnamespace = 'public'::regnamespace and c.relname ~ '_y[0-9]{4}m[0-9]{2}$'
        and make_date(substring(c.relname from '_y([0-9]{4})m')::int, substring(c.relname from 'm([0-9]{2})$')::int, 1)
            >= date_trunc('month', now() at time zone 'UTC') - make_interval(months => $1)
      order by 1, 2`, [months - 1])
    for (const r of rows) {
      await c.query('begin')
      await c.query(`alter table ${r.parent} detach partition ${r.part}`)
      await c.query(`insert into ${r.parent}_default select * from ${r.part}`)
      await c.query(`drop table ${r.part}`)
      await c.query('commit')
    }
    await c.query('analyze audit_events_default, events_default')
    const n = (await c.query(`select (select count(*) from audit_events_default) as audit, (select count(*) from events_default) as events`)).rows[0]
    return { dropped: rows.length, audit: Number(n.audit), events: Number(n.events) }
  })
}

/** An upload of IMPORT_ROWS new customers staged, its merge cut off (the copy of its staged rows under a job left merging, as a killed process leaves it). */
async function orphanedImport(app: App, token: string): Promise<string> {
  const lines = ['name,external_ref,email']
  for (let i = 0; i < IMPORT_ROWS; i++) lines.push(`Imported Person ${i},bench-import-${i},imported.${i}@example.org`)
  const blocker = new pg.Client({ connectionString: url.toString() })
  await blocker.connect()
  try {
    await blocker.query('begin')
    await blocker.query('lock table customers in exclusive mode')
    const res = await app.inject({ method: 'POST', url: '/v1/imports', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' }, payload: lines.join('\n') + '\n' })
    if (res.statusCode !== 202) throw new Error(`import upload answered ${res.statusCode}: ${res.body}`)
    const first = (res.json() as { id: string }).id
    const blockerPid = (await blocker.query('select pg_backend_pid() as p')).rows[0].p
    return await owner(async (c) => {
      await c.query('set session_replication_role = replica')
      const job = await c.query(`insert into imports (kind, format, status, rows_received, rows_rejected, errors, actor, request_id, created_at, updated_at)
        select kind, format, 'merging', rows_received, rows_rejected, errors, actor, request_id, now() - interval '1 hour', now() - interval '1 hour'
        from imports where id = $1 and status = 'merging' returning id`, [first])
      const id = job.rows[0]?.id as string | undefined
      if (!id) throw new Error('the upload did not reach its merge')
      await c.query(`insert into import_customer_rows select $2, line, external_ref, name, given_name, family_name, gender, birthday, occupation, marital_status,
        company, job_title, preferred_channel, acquisition_source, tags, email, email_normalized, phone, phone_normalized, customer_id, rejected
        from import_customer_rows where import_id = $1`, [first, id])
      // The first merge is ended as a dying process ends it: its connection is terminated once
      // its transaction holds the job (an xid; the blocker's lock keeps it from committing before).
      // It then fails its own job and drops its own rows; the copy stays merging.
      for (let i = 0; ; i++) {
        const r = await c.query(`select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and application_name = 'crm-api' and backend_xid is not null and pid <> $1`, [blockerPid])
        if (r.rowCount) break
        if (i > 6000) throw new Error('the first merge never started')
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await blocker.query('rollback')
      for (let i = 0; i < 200; i++) {
        const s = (await c.query('select status from imports where id = $1', [first])).rows[0].status
        if (s !== 'merging') break
        await new Promise((r) => setTimeout(r, 100))
      }
      return id
    })
  } finally {
    await blocker.end().catch(() => {})
  }
}

const want = (job: string) => !only || only.has(job)

const db = createDb({ connectionString: url.toString(), max: 4, statementTimeoutMs: 0 })
const { publicKey, privateKey } = await generateKeyPair('ES256')
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }
const token = await new SignJWT({ scope: 'imports:write imports:read customers:write customers:read' }).setProtectedHeader({ alg: 'ES256', kid: 'bench' })
  .setSubject('bench:importer').setIssuer('bench').setAudience('crm-api').setIssuedAt().setExpirationTime('6h').sign(privateKey)
// Every schedule off (intervals 0): the jobs run only when runJobNow asks.
const app = await buildApp({
  db, ownsDb: false, requestTimeoutMs: 600_000, bodyLimit: 64 * 1024 * 1024,
  rateLimit: { max: 1_000_000_000, windowMs: 60_000 },
  pressure: { maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, retryAfterSeconds: 10 },
  idempotency: { ttlSeconds: 86_400, purgeIntervalMs: 0 },
  events: { retentionDays: 30 },
  auth: { issuer: 'bench', audience: 'crm-api', algorithms: ['ES256'], clockToleranceSeconds: 5, jwks: { keys: [jwk] } },
})
await app.ready()
try {
  const size = (await sql<{ customers: string; audit: string }>`select (select count(*) from customers) as customers, (select count(*) from audit_events) as audit`.execute(db)).rows[0]!
  log(`database ${values.database}: ${size.customers} customers, ${size.audit} audit rows`)

  if (want('audit-seal')) {
    if (HISTORY > 0) await writeHistory()
    const unsealed = Number((await sql<{ n: string }>`select unsealed_count as n from crm_audit_verify()`.execute(db)).rows[0]!.n)
    await timeJob(app, 'audit-seal', `catch-up: ${unsealed} unsealed rows`, 10_000, (r) => `${r} sealed`, (r) => r === 0)
    const steady: Figure = { job: 'audit-seal', backlog: '1,000 unsealed rows (one audited UPDATE of 1,000 customers)', ms: [], touched: [], timeoutMs: 0, errors: [] }
    for (let i = 0; i < RUNS; i++) {
      await thousandWrites(db, i)
      const f = await timeJob(app, 'audit-seal', '', 1, (r) => `${r} sealed`)
      figures.pop()
      steady.ms.push(...f.ms); steady.touched.push(...f.touched); steady.errors.push(...f.errors); steady.timeoutMs = f.timeoutMs
    }
    figures.push(steady)
  }
  if (want('audit-verify-full')) {
    const chain = (await sql<{ n: string }>`select coalesce(max(seq), 0) as n from audit_chain`.execute(db)).rows[0]!.n
    await timeJob(app, 'audit-verify-full', `a chain of ${chain} rows`, Math.min(RUNS, 3), (r) => {
      const v = r as { intact: boolean; head_seq: number }
      return `${v.head_seq} verified, ${v.intact ? 'intact' : 'BROKEN'}`
    })
  }
  if (want('lifecycle-sweep')) {
    const due = await lifecycleBacklog()
    await timeJob(app, 'lifecycle-sweep', `${due} customers due (10 %)`, 1, (r) => `${r} changed`)
    await timeJob(app, 'lifecycle-sweep', 'none due', Math.max(1, RUNS - 2), (r) => `${r} changed`)
  }
  if (want('idempotency-purge')) {
    await idempotencyBacklog()
    await timeJob(app, 'idempotency-purge', '50,000 expired + 50,000 live keys', RUNS, (r) => `${r} purged`)
  }
  if (want('events-purge')) {
    const old = (await sql<{ n: string; all: string }>`select count(*) filter (where occurred_at < now() - interval '30 days') as n, count(*) as all from events`.execute(db)).rows[0]!
    await timeJob(app, 'events-purge', `${old.n} of ${old.all} events past the 30-day retention`, 20, (r) => `${(r as { purged: number }).purged} purged`, (r) => (r as { purged: number }).purged === 0)
  }
  if (want('import-recovery')) {
    const id = await orphanedImport(app, token)
    log(`import-recovery: orphaned import ${id} with ${(await sql<{ n: string }>`select count(*) as n from import_customer_rows where import_id = ${id}`.execute(db)).rows[0]!.n} staged rows`)
    await timeJob(app, 'import-recovery', `an import of ${IMPORT_ROWS} new customers, staged, merge cut off`, 1, (r) => {
      const o = r as { resumed: string[]; failed: string[] }
      return `${o.resumed.length} resumed, ${o.failed.length} failed`
    })
    const merged = (await sql<{ n: string }>`select count(*) as n from customers where external_ref like 'bench-import-%'`.execute(db)).rows[0]!.n
    log(`import-recovery: ${merged} customers from the import`)
    figures.at(-1)!.touched = figures.at(-1)!.touched.map((t) => `${t} (${merged} customers created)`)
    await timeJob(app, 'import-recovery', 'nothing to recover', Math.max(1, RUNS - 2), (r) => {
      const o = r as { resumed: string[]; failed: string[] }
      return `${o.resumed.length} resumed, ${o.failed.length} failed`
    })
  }
  if (want('backfills')) {
    await timeJob(app, 'backfills', 'none pending (no backfill in this version)', RUNS, (r) => (r === null ? 'nothing to do' : JSON.stringify(r)))
  }
  if (want('partition-upkeep')) {
    const b = await upkeepBacklog(UPKEEP_MONTHS)
    log(`partition-upkeep: ${b.dropped} partitions dropped, ${b.audit} audit rows and ${b.events} events in the default partitions`)
    await timeJob(app, 'partition-upkeep', `off for ${UPKEEP_MONTHS} months: ${b.dropped} partitions dropped, ${b.audit} audit rows and ${b.events} events in the default partitions`, 1, (r) => `${(r as { created: number }).created} created`)
    // The default partitions are the owner's alone (crm_app has no privilege on any partition).
    const left = await owner(async (c) => (await c.query('select (select count(*) from audit_events_default) + (select count(*) from events_default) as n')).rows[0].n as string)
    figures.at(-1)!.touched = figures.at(-1)!.touched.map((t) => `${t}, ${left} rows left in the default partitions`)
    await timeJob(app, 'partition-upkeep', 'nothing to do', Math.max(1, RUNS - 2), (r) => `${(r as { created: number }).created} created`)
  }
} finally {
  await app.close()
  await db.destroy()
}

process.stdout.write('| job | backlog | runs | wall time per run, s: median [min–max] | rows touched | within its limit |\n|---|---|---|---|---|---|\n')
for (const f of figures) {
  const touched = [...new Set(f.touched)]
  const shown = touched.length > 3 ? `${f.touched[0]} … ${f.touched.at(-1)}` : touched.join('; ')
  const within = f.errors.length === 0 && f.ms.every((ms) => ms < f.timeoutMs)
  process.stdout.write(`| ${f.job} | ${f.backlog} | ${f.ms.length} | ${secs(median(f.ms))} [${secs(Math.min(...f.ms))}–${secs(Math.max(...f.ms))}]${f.ms.length > 1 ? `, total ${secs(f.ms.reduce((a, b) => a + b, 0))}` : ''} | ${shown}${f.errors.length ? `; errors: ${f.errors.join('; ')}` : ''} | ${within ? 'yes' : 'NO'} (${f.timeoutMs / 60_000} min) |\n`)
}
