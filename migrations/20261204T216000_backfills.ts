import { type Kysely, sql } from 'kysely'

/**
 * Data backfills as resumable jobs (src/plugins/backfills.ts): a migration that needs existing
 * rows rewritten enqueues a backfill by name (insert into crm_backfills (name) values (...)) and
 * changes only the schema; the scheduler's backfills job then runs the backfill registered under
 * that name in batches, each its own short transaction, recording after each the last key it
 * did, so a restart continues where it stopped and no start waits for it. Not audited (like the
 * job leases): the batches' own writes are, as system:backfills.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table crm_backfills (
      name text primary key,
      position text,
      rows_done bigint not null default 0,
      batches bigint not null default 0,
      enqueued_at timestamptz(3) not null default now(),
      finished_at timestamptz(3)
    )`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists crm_backfills`.execute(db)
}
