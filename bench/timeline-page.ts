/**
 * Cost of one timeline page for a customer with a long history (N events in each of orders,
 * interactions and feedback, plus profile changes): EXPLAIN ANALYZE of the first and second page
 * as the repository builds them. A page should read a few dozen buffers whatever N is.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/timeline-page.ts [N]
 *
 * Creates and drops its own database (crm_bench_timeline_<pid>).
 */
import pg from 'pg'
import { sql, Kysely, PostgresDialect } from 'kysely'
import { createDb, createPool } from '../src/db/database.js'
import { scopedPool } from '../src/db/scope.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { TIMELINE_KEYS, timelinePage } from '../src/modules/timeline/timeline.repository.js'
import { TIMELINE_TYPES } from '../src/modules/timeline/timeline.schemas.js'

const N = Number(process.argv[2] ?? 30000)
const adminUrl = process.env.DATABASE_URL
if (!adminUrl) throw new Error('set DATABASE_URL')
const name = `crm_bench_timeline_${process.pid}`
const url = Object.assign(new URL(adminUrl), { pathname: '/' + name }).toString()
const admin = new pg.Client({ connectionString: adminUrl })
await admin.connect()
await admin.query(`create database "${name}"`)
// As the owner (role: null): it migrates and truncates or disables triggers, which the API's role may not.
const db = createDb({ connectionString: url, max: 1, statementTimeoutMs: 0, role: null })
try {
  await migrateToLatest(db)
  const c = (await db.insertInto('customers').values({ name: 'Long history' } as never).returning('id').executeTakeFirstOrThrow()).id
  // Bulk history without the per-statement metrics and audit work: the bench measures reads.
  for (const table of ['orders', 'interactions', 'feedback']) await sql`alter table ${sql.table(table)} disable trigger user`.execute(db)
  await sql`insert into orders (customer_id, currency, ordered_at) select ${c}, 'CNY', now() - make_interval(mins => g) from generate_series(1, ${N}) g`.execute(db)
  await sql`insert into interactions (customer_id, channel, occurred_at) select ${c}, 'phone', now() - make_interval(mins => g) from generate_series(1, ${N}) g`.execute(db)
  await sql`insert into feedback (customer_id, kind, submitted_at) select ${c}, 'praise', now() - make_interval(mins => g) from generate_series(1, ${N}) g`.execute(db)
  for (let i = 0; i < 50; i++) await sql`update customers set occupation = ${'job ' + i} where id = ${c}`.execute(db)
  await sql`analyze`.execute(db)

  const queries: Array<{ sql: string; parameters: readonly unknown[] }> = []
  const logged = new Kysely<never>({
    dialect: new PostgresDialect({ pool: scopedPool(createPool({ connectionString: url, max: 1 })) }),
    log: (e) => { if (e.level === 'query') queries.push(e.query) },
  })
  const first = (await timelinePage(logged as never, c, [...TIMELINE_TYPES], { keys: TIMELINE_KEYS, after: undefined, limit: 50 }))!
  const last = first[49]!
  await timelinePage(logged as never, c, [...TIMELINE_TYPES], { keys: TIMELINE_KEYS, after: [last.occurred_at, last.id], limit: 50 })
  await logged.destroy()
  for (const [i, q] of queries.entries()) {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    const rows = (await client.query(`explain (analyze, buffers) ${q.sql}`, [...q.parameters])).rows.map((r: Record<string, string>) => r['QUERY PLAN']!)
    await client.end()
    console.log(`N=${N} page ${i + 1}: ${rows.find((l) => l.startsWith('Execution Time'))}; ${rows.find((l) => l.includes('Buffers'))?.trim()}`)
  }
} finally {
  await db.destroy()
  await admin.query(`drop database if exists "${name}" with (force)`)
  await admin.end()
}
