import { sql } from 'kysely'
import type { DbExecutor } from '../db/database.js'

/** The oldest unfinished backfill among `names`, locked for this transaction (another instance skips it). */
export async function nextPendingBackfill(trx: DbExecutor, names: string[]): Promise<{ name: string; position: string | null } | undefined> {
  if (names.length === 0) return undefined
  const { rows } = await sql<{ name: string; position: string | null }>`
    select name, position from crm_backfills
    where finished_at is null and name = any(${names}::text[])
    order by enqueued_at, name
    limit 1
    for update skip locked`.execute(trx)
  return rows[0]
}

/** Records a batch: its last key (the next batch starts after it), or the backfill's end when `last` is null. */
export async function recordBackfillBatch(trx: DbExecutor, name: string, last: string | null, rows: number): Promise<void> {
  await sql`
    update crm_backfills
    set position = coalesce(${last}, position), rows_done = rows_done + ${rows}, batches = batches + 1,
        finished_at = case when ${last}::text is null then now() end
    where name = ${name}`.execute(trx)
}

/** Enqueues a backfill (what a migration does with SQL); enqueuing one that exists does nothing. */
export async function enqueueBackfill(db: DbExecutor, name: string): Promise<void> {
  await sql`insert into crm_backfills (name) values (${name}) on conflict (name) do nothing`.execute(db)
}
