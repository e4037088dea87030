import { sql } from 'kysely'
import type { DbExecutor } from '../db/database.js'

/**
 * Creates the monthly partitions of audit_events and events for this month and the next
 * `monthsAhead`, and for the months whose rows their default partitions caught (moving those rows
 * in); answers how many partitions it created. Waits at most `lockTimeoutMs` for a lock: moving
 * rows out of a default partition locks it against the writes routed there.
 */
export async function maintainPartitions(db: DbExecutor, monthsAhead: number, lockTimeoutMs = 5000): Promise<number> {
  await sql`select set_config('lock_timeout', ${String(lockTimeoutMs)}, true)`.execute(db)
  const { rows } = await sql<{ created: number }>`select crm_partitions_maintain(${monthsAhead}::int) as created`.execute(db)
  return rows[0]?.created ?? 0
}

export interface PartitionInfo {
  table: 'audit_events' | 'events'
  partition: string
  rows: number
}

/** The partitions of audit_events and events with their row counts (exact: for tests and operators, not for a hot path). */
export async function listPartitions(db: DbExecutor): Promise<PartitionInfo[]> {
  const { rows } = await sql<{ table: 'audit_events' | 'events'; partition: string }>`
    select p.relname as table, c.relname as partition
    from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
    where p.relname in ('audit_events', 'events') and p.relnamespace = 'public'::regnamespace
    order by 1, 2`.execute(db)
  const result: PartitionInfo[] = []
  for (const r of rows) {
    const { rows: n } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(r.partition)}`.execute(db)
    result.push({ ...r, rows: n[0]!.n })
  }
  return result
}
