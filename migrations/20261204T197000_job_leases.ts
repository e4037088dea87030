import { type Kysely, sql } from 'kysely'

/**
 * Leases of the background jobs (src/plugins/scheduler.ts): one row per job name. An instance
 * runs a job only after claiming its lease with one INSERT ... ON CONFLICT DO UPDATE ... WHERE
 * that succeeds when the last run finished at least an interval ago, or started longer ago than
 * the job's time limit (its instance died). So with many instances on one database each job runs
 * once per interval, never twice at a time. Not audited: the jobs' own writes are, with the
 * job's name as the actor.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table crm_job_leases (
      name text primary key,
      run_by text not null,
      started_at timestamptz not null,
      finished_at timestamptz,
      last_error text,
      runs bigint not null default 1
    )`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists crm_job_leases`.execute(db)
}
