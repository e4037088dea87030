/**
 * `npx tsx bench/migrations-under-load.ts [--customers 100000] [--from 20261204] [--writers 4] [--admin-url URL]`
 *
 * How long a release's migrations block writers. A database of its own (crm_bench_migrations) is
 * migrated, seeded with N customers (scripts/seed), then migrated down to before the first
 * migration whose name starts at `--from` (default: this wave's, 20261204); writers then insert and
 * update customers and interactions in a loop while those migrations run again. Reports how long
 * the migrations took, each writer transaction's latency (median, p99, max: the max is the longest
 * a writer waited) and the longest lock wait seen in pg_stat_activity. The database is dropped.
 * test/db/migrations-under-load.test.ts runs the same measure on a small database.
 */
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import pg from 'pg'
import { createMigrationDb } from '../src/db/connect.js'
import { createMigrator, migrateDown, migrateToLatest } from '../src/db/migrate.js'
import { shareWriteGate } from '../src/db/write-gate.js'

export interface MigrationLoadFigures {
  /** The migrations applied under load, in order. */
  applied: string[]
  migrateMs: number
  writerTransactions: number
  writerErrors: string[]
  writerP50Ms: number
  writerP99Ms: number
  /** The longest any one writer transaction took while the migrations ran. */
  writerMaxMs: number
  /** The longest wait for a lock seen by sampling pg_stat_activity every 10 ms (0: none seen). */
  longestLockWaitMs: number
  /** Which statement that longest wait was blocked behind (the blocking backend's query). */
  longestLockBlocker: string | null
}

/** Migrates the database at `url` (fully migrated, with data) down to before `from`, then back up under write load. */
export async function migrateUnderLoad(url: string, opts: { from: string; writers: number }): Promise<MigrationLoadFigures> {
  const owner = createMigrationDb(url)
  try {
    for (;;) {
      const applied = (await createMigrator(owner).getMigrations()).filter((m) => m.executedAt !== undefined).map((m) => m.name).sort()
      if (!applied.length || applied.at(-1)! < opts.from) break
      await migrateDown(owner)
    }

    const picker = new pg.Client({ connectionString: url })
    await picker.connect()
    const ids = (await picker.query<{ id: string }>('select id from customers order by random() limit 200')).rows.map((r) => r.id)
    await picker.end()
    const gateSql = shareWriteGate.compile(owner).sql
    let running = true
    const latencies: number[] = []
    const errors: string[] = []
    const writer = async (k: number) => {
      const c = new pg.Client({ connectionString: url, application_name: 'crm-migration-load-writer' })
      await c.connect()
      try {
        for (let i = 0; running; i++) {
          const t0 = performance.now()
          try {
            await c.query('begin')
            // What every write transaction of the API starts with (src/plugins/audit.ts).
            await c.query(`select ${gateSql}, set_config('crm.actor', 'bench:migration-writer', true)`)
            const { rows } = await c.query<{ id: string }>('insert into customers (name) values ($1) returning id', [`Load ${k}-${i}`])
            await c.query(`insert into interactions (customer_id, channel, subject) values ($1, 'phone', 'load')`, [rows[0]!.id])
            if (ids.length) await c.query('update customers set name = name where id = $1', [ids[(k * 7919 + i) % ids.length]])
            await c.query(`update customers set job_title = 'writer ' || $2 where id = $1`, [rows[0]!.id, String(i)])
            await c.query('commit')
            latencies.push(performance.now() - t0)
          } catch (err) {
            await c.query('rollback').catch(() => {})
            errors.push((err as Error).message)
          }
        }
      } finally {
        await c.end()
      }
    }

    let longestLockWaitMs = 0
    let longestLockBlocker: string | null = null
    const sampler = async () => {
      const c = new pg.Client({ connectionString: url, application_name: 'crm-migration-load-sampler' })
      await c.connect()
      try {
        while (running) {
          const { rows } = await c.query<{ ms: number; blocker: string | null }>(`
            select extract(epoch from clock_timestamp() - a.query_start) * 1000 as ms,
                   (select b.query from pg_stat_activity b where b.pid = any (pg_blocking_pids(a.pid)) limit 1) as blocker
            from pg_stat_activity a
            where a.datname = current_database() and a.wait_event_type = 'Lock' and a.application_name = 'crm-migration-load-writer'
            order by 1 desc limit 1`)
          const row = rows[0]
          if (row && Number(row.ms) > longestLockWaitMs) [longestLockWaitMs, longestLockBlocker] = [Number(row.ms), row.blocker]
          await new Promise((r) => setTimeout(r, 10))
        }
      } finally {
        await c.end()
      }
    }

    const load = [...Array.from({ length: opts.writers }, (_, k) => writer(k)), sampler()]
    // Writers warm up before the migrations start, and keep writing a moment after.
    await new Promise((r) => setTimeout(r, 300))
    const t0 = performance.now()
    const migrated = await migrateToLatest(owner).then((r) => ({ applied: (r.results ?? []).map((x) => x.migrationName) }), (error: unknown) => ({ error }))
    const migrateMs = performance.now() - t0
    await new Promise((r) => setTimeout(r, 300))
    running = false
    await Promise.all(load)
    if ('error' in migrated) throw migrated.error
    const sorted = [...latencies].sort((a, b) => a - b)
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0
    return {
      applied: migrated.applied, migrateMs, writerTransactions: latencies.length, writerErrors: [...new Set(errors)],
      writerP50Ms: q(0.5), writerP99Ms: q(0.99), writerMaxMs: sorted.at(-1) ?? 0, longestLockWaitMs, longestLockBlocker,
    }
  } finally {
    await owner.destroy()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      customers: { type: 'string', default: '100000' },
      from: { type: 'string', default: '20261204' },
      writers: { type: 'string', default: '4' },
      'admin-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    },
  })
  const { seedDatabase } = await import('../scripts/seed/load.js')
  const name = 'crm_bench_migrations'
  const admin = new pg.Client({ connectionString: values['admin-url'] })
  await admin.connect()
  await admin.query(`drop database if exists ${name} with (force)`)
  await admin.query(`create database ${name}`)
  const url = Object.assign(new URL(values['admin-url']!), { pathname: `/${name}` }).toString()
  try {
    const owner = createMigrationDb(url)
    await migrateToLatest(owner)
    await owner.destroy()
    const t0 = performance.now()
    await seedDatabase({ url, customers: Number(values.customers), seed: 1 })
    process.stderr.write(`seeded ${values.customers} customers in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`)
    const f = await migrateUnderLoad(url, { from: values.from!, writers: Number(values.writers) })
    process.stdout.write(
      `${f.applied.length} migrations (${f.applied[0]} … ${f.applied.at(-1)}) at ${values.customers} customers under ${values.writers} writers:\n` +
        `  migrate ${(f.migrateMs / 1000).toFixed(1)} s; ${f.writerTransactions} writer transactions, ${f.writerErrors.length} distinct errors\n` +
        `  writer latency p50 ${f.writerP50Ms.toFixed(1)} ms, p99 ${f.writerP99Ms.toFixed(1)} ms, max ${f.writerMaxMs.toFixed(0)} ms\n` +
        `  longest lock wait ${f.longestLockWaitMs.toFixed(0)} ms${f.longestLockBlocker ? ` behind: ${f.longestLockBlocker.replace(/\s+/g, ' ').slice(0, 160)}` : ''}\n`,
    )
    for (const e of f.writerErrors) process.stdout.write(`  writer error: ${e}\n`)
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`)
    await admin.end()
  }
}
