/**
 * `npx tsx bench/partition-conversion.ts [--audit-rows 100000] [--admin-url URL]`
 *
 * What migration 20261205T020000_partition_audit_and_events costs on a database with history. A
 * scratch database of its own (bench/lib/scratch-db.ts) is migrated to the migration before it, given N
 * customers written in one statement (N audit rows, N customer.created events) plus audit rows
 * spread over the three months before this one, the chain sealed, then migrated through the partitioning migration.
 * Reports the time the conversion took (writers wait for all of it: it holds the write gate)
 * and checks what it must keep: row counts, event positions, the chain. The database is dropped.
 * test/db/partition-migration.test.ts runs the same on a small database.
 */
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import type { Db } from '../src/db/database.js'
import { createMigrationDb } from '../src/db/connect.js'
import { migrateTo } from '../src/db/migrate.js'
import { scratchDatabase } from './lib/scratch-db.js'

export const BEFORE_PARTITIONING = '20261204T216000_backfills'
/** Later migrations write rows of their own (the access-control roles are audited), so the conversion is measured alone. */
export const PARTITIONING = '20261205T020000_partition_audit_and_events'

export interface ConversionFigures {
  auditRows: number
  eventRows: number
  convertMs: number
  /** Counts and an md5 of every event's (txid, seq, id) and every audit row's id, before and after. */
  before: { audit: number; events: number; positions: string; ids: string }
  after: { audit: number; events: number; positions: string; ids: string }
  /** crm_audit_verify() before, and crm_audit_checkpoint(true) after. */
  intactBefore: boolean
  intactAfter: boolean
  /** Partitions of each table, with their rows. */
  partitions: Array<{ table: string; partition: string; rows: number }>
}

async function fingerprint(db: Db) {
  const { rows } = await sql<{ audit: number; events: number; positions: string; ids: string }>`
    select (select count(*)::int from audit_events) as audit, (select count(*)::int from events) as events,
           (select md5(string_agg(txid::text || ':' || seq || ':' || id, ',' order by txid, seq)) from events) as positions,
           (select md5(string_agg(id::text, ',' order by id)) from audit_events) as ids`.execute(db)
  return rows[0]!
}

/** Seeds the database at `url` (empty) with history at the level before partitioning, then converts it. */
export async function convertSeeded(url: string, auditRows: number): Promise<ConversionFigures> {
  const db = createMigrationDb(url)
  try {
    await migrateTo(db, BEFORE_PARTITIONING)
    const recent = Math.ceil(auditRows * 0.7)
    await sql`insert into customers (name) select 'Customer ' || g from generate_series(1, ${recent}::int) g`.execute(db)
    // Older history: audit rows of the three months before this one (their events derive too).
    await sql`
      insert into audit_events (occurred_at, actor, action, entity, entity_id, after)
      select date_trunc('month', now()) - make_interval(days => 1 + (g % 85)), 'user:history', 'insert', 'customers', crm_uuid_v7(),
             jsonb_build_object('name', 'History ' || g, 'version', 1)
      from generate_series(1, ${auditRows - recent}::int) g`.execute(db)
    await sql`select crm_audit_seal(${auditRows}::int * 2)`.execute(db)
    // A tail left unsealed: the sealer picks it up after the conversion.
    await sql`insert into customers (name) values ('Unsealed 1'), ('Unsealed 2')`.execute(db)
    const before = await fingerprint(db)
    const intactBefore = (await sql<{ intact: boolean }>`select intact from crm_audit_verify()`.execute(db)).rows[0]!.intact

    const t0 = performance.now()
    await migrateTo(db, PARTITIONING)
    const convertMs = performance.now() - t0

    const after = await fingerprint(db)
    await sql`select crm_audit_seal()`.execute(db)
    const intactAfter = (await sql<{ intact: boolean }>`select intact from crm_audit_checkpoint(true)`.execute(db)).rows[0]!.intact
    const { rows: parts } = await sql<{ table: string; partition: string }>`
      select p.relname as table, c.relname as partition from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      where p.relname in ('audit_events', 'events') order by 1, 2`.execute(db)
    const partitions = []
    for (const p of parts) partitions.push({ ...p, rows: (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(p.partition)}`.execute(db)).rows[0]!.n })
    return { auditRows: before.audit, eventRows: before.events, convertMs, before, after, intactBefore, intactAfter, partitions }
  } finally {
    await db.destroy()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      'audit-rows': { type: 'string', default: '100000' },
      'admin-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    },
  })
  const scratch = scratchDatabase('partitions', values['admin-url'])
  await scratch.create()
  try {
    const f = await convertSeeded(scratch.url, Number(values['audit-rows']))
    process.stdout.write(
      `converted ${f.auditRows} audit rows and ${f.eventRows} events in ${(f.convertMs / 1000).toFixed(1)} s\n` +
        `  kept: counts ${f.before.audit === f.after.audit && f.before.events === f.after.events}, event positions ${f.before.positions === f.after.positions}, ` +
        `audit ids ${f.before.ids === f.after.ids}; chain intact before ${f.intactBefore}, after (full verify) ${f.intactAfter}\n` +
        `  partitions: ${f.partitions.filter((p) => p.rows > 0).map((p) => `${p.partition} ${p.rows}`).join(', ')}\n`,
    )
  } finally {
    await scratch.drop()
  }
}
