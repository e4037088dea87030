import { sql } from 'kysely'
import type { DbExecutor } from '../db/database.js'

/**
 * Claims a job's lease for this instance: true when the job never ran, or its last run (by any
 * instance) finished and started at least intervalMs ago, or started more than timeoutMs ago and
 * never finished (its instance died or hung). Concurrent claims serialize on the row: one wins.
 */
export async function claimLease(db: DbExecutor, name: string, instance: string, intervalMs: number, timeoutMs: number): Promise<boolean> {
  const { rows } = await sql<{ name: string }>`
    insert into crm_job_leases as l (name, run_by, started_at) values (${name}, ${instance}, clock_timestamp())
    on conflict (name) do update set run_by = excluded.run_by, started_at = clock_timestamp(), finished_at = null, runs = l.runs + 1
    where (l.finished_at is not null and l.started_at <= clock_timestamp() - make_interval(secs => ${intervalMs / 1000}::float8))
       or l.started_at <= clock_timestamp() - make_interval(secs => ${timeoutMs / 1000}::float8)
    returning l.name`.execute(db)
  return rows.length > 0
}

/** Records the end of this instance's run (a later claim by another instance is left alone). */
export async function releaseLease(db: DbExecutor, name: string, instance: string, error: string | null): Promise<void> {
  await sql`update crm_job_leases set finished_at = clock_timestamp(), last_error = ${error}
    where name = ${name} and run_by = ${instance} and finished_at is null`.execute(db)
}
