import { type Kysely, sql } from 'kysely'

/**
 * The change feed's frontier, scoped to this database.
 *
 * The feed returns only events of transactions below a frontier under which every transaction
 * that could have written events has ended (migration events). The snapshot's xmin is such a
 * frontier, but xids are the cluster's: a writing transaction in another database of the same
 * server (another tenant, a test's database, a DROP DATABASE) holds xmin back and stalls the feed
 * although it can never write here. crm_events_frontier() is the smallest xid the snapshot still
 * sees running, skipping those that pg_stat_activity shows belong to another database, or the
 * snapshot's xmax when there is none. An xid it cannot place (its session just ended, a prepared
 * transaction) counts as this database's, so the frontier errs only towards waiting, never
 * towards skipping: every txid below it has ended in this snapshot, or belongs elsewhere.
 *
 * STABLE, so within one statement it is evaluated once, against the statement's own snapshot
 * (pg_current_snapshot() is the active snapshot), the one that reads the events.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function crm_events_frontier() returns xid8 language sql stable as $$
      select coalesce(
        (select min(x) from pg_snapshot_xip(pg_current_snapshot()) x
         where not exists (
           select 1 from pg_stat_activity a
           where a.backend_xid = xid(x)
             and a.datid <> (select d.oid from pg_database d where d.datname = current_database()))),
        pg_snapshot_xmax(pg_current_snapshot()))
    $$`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function if exists crm_events_frontier()`.execute(db)
}
