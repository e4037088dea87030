import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { sql } from 'kysely'
import { from as copyFrom } from 'pg-copy-streams'
import { poolOf, type Db, type DbExecutor } from '../../db/database.js'
import { setQueryTimeout } from '../../db/scope.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'

const JOB_COLUMNS = [
  'id', 'kind', 'format', 'status', 'rows_received', 'rows_imported', 'rows_created', 'rows_updated', 'rows_rejected', 'errors', 'failure',
  'actor', 'request_id', 'version', 'created_at', 'updated_at', 'finished_at',
] as const

export async function insertJob(db: DbExecutor, job: { kind: string; format: string; actor: string; request_id: string }) {
  return db.insertInto('imports').values(job).returning(JOB_COLUMNS).executeTakeFirstOrThrow()
}

export async function findJob(db: DbExecutor, id: string) {
  return db.selectFrom('imports').select(JOB_COLUMNS).where('id', '=', id).executeTakeFirst()
}

export type ImportJobRow = NonNullable<Awaited<ReturnType<typeof findJob>>>

export async function listJobs(db: DbExecutor, page: PageRequest): Promise<ImportJobRow[]> {
  return keysetPage(db.selectFrom('imports').select(JOB_COLUMNS), page, 'imports').execute()
}

export interface JobUpdate {
  status?: string
  rows_received?: number
  rows_imported?: number
  rows_created?: number
  rows_updated?: number
  rows_rejected?: number
  errors?: unknown[]
  failure?: string
  finished?: boolean
}

export async function updateJob(db: DbExecutor, id: string, u: JobUpdate): Promise<void> {
  const { errors, finished, ...rest } = u
  await db
    .updateTable('imports')
    .set({
      ...rest,
      ...(errors ? { errors: JSON.stringify(errors) } : {}),
      ...(finished ? { finished_at: sql<string>`now()` } : {}),
    } as never)
    .where('id', '=', id)
    .execute()
}

/** The staging columns, in the order COPY receives them. */
export const STAGED_CUSTOMER_COLUMNS = [
  'import_id', 'line', 'external_ref', 'name', 'given_name', 'family_name', 'gender', 'birthday', 'occupation', 'marital_status',
  'company', 'job_title', 'preferred_channel', 'acquisition_source', 'tags', 'email', 'email_normalized', 'phone', 'phone_normalized',
  'customer_id',
] as const

/**
 * Streams staged rows (lines of COPY text format, see encodeCopyRow) into the staging table
 * with COPY on a connection of its own, outside any transaction: the upload can last longer
 * than a transaction may stay idle. Statement timeouts do not apply to it.
 */
export async function copyStagedCustomers(db: Db, lines: Readable): Promise<void> {
  const client = await poolOf(db).connect()
  // The COPY lasts as long as the upload: no client-side query timeout either.
  const restoreQueryTimeout = setQueryTimeout(client, 0)
  let broken = false
  try {
    await client.query('set statement_timeout = 0')
    const copy = client.query(copyFrom(`copy import_customer_rows (${STAGED_CUSTOMER_COLUMNS.join(', ')}) from stdin`))
    await pipeline(lines, copy)
  } catch (err) {
    broken = true
    throw err
  } finally {
    if (!broken) await client.query('reset statement_timeout').catch(() => { broken = true })
    restoreQueryTimeout()
    client.release(broken)
  }
}

/** A value in COPY text format: \N for null, with backslash, tab and line breaks escaped. */
function copyValue(v: unknown): string {
  if (v === null || v === undefined) return '\\N'
  if (Array.isArray(v)) {
    // A text[] literal: every element quoted, with quotes and backslashes escaped.
    return copyValue(`{${v.map((e) => `"${String(e).replace(/["\\]/g, (c) => '\\' + c)}"`).join(',')}}`)
  }
  return String(v).replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'))
}

export function encodeCopyRow(values: unknown[]): string {
  return values.map(copyValue).join('\t') + '\n'
}

/**
 * Locks a job for its merge: a merge holds its job's row from start to commit, which is how the
 * recovery job tells a merge in progress (locked) from one whose process died (not locked).
 */
export async function lockJob(trx: DbExecutor, id: string): Promise<void> {
  await sql`select 1 from imports where id = ${id} for update`.execute(trx)
}

/**
 * Jobs no process is working on: still receiving long after the last upload could have ended,
 * or merging without the lock every running merge holds (taken here, for the caller's
 * transaction). Oldest first.
 */
export async function orphanedJobs(trx: DbExecutor, opts: { receivingBefore: Date; mergingBefore: Date; limit: number }) {
  return trx
    .selectFrom('imports')
    .select(JOB_COLUMNS)
    .where((eb) => eb.or([
      eb.and([eb('status', '=', 'receiving'), eb('updated_at', '<', opts.receivingBefore.toISOString())]),
      eb.and([eb('status', '=', 'merging'), eb('updated_at', '<', opts.mergingBefore.toISOString())]),
    ]))
    .orderBy('created_at')
    .limit(opts.limit)
    .forUpdate()
    .skipLocked()
    .execute()
}

export async function countStaged(db: DbExecutor, importId: string): Promise<number> {
  const row = await db.selectFrom('import_customer_rows').select((eb) => eb.fn.countAll<number>().as('n')).where('import_id', '=', importId).executeTakeFirstOrThrow()
  return Number(row.n)
}

export async function deleteStaged(db: DbExecutor, importId: string): Promise<void> {
  await db.deleteFrom('import_customer_rows').where('import_id', '=', importId).execute()
}

export interface MergeCounts {
  created: number
  updated: number
  rejectedCount: number
  /** The first 1,000 rows the merge refused, by line. */
  rejected: Array<{ line: number; message: string }>
}

/**
 * The customer a staged row lands on: the one with its external_ref (or, for a duplicate merged
 * into another, the customer it was merged into), else the id staged for it.
 */
const TARGET = sql`coalesce((select coalesce(c.merged_into_id, c.id) from customers c where c.external_ref = s.external_ref), s.customer_id)`

/**
 * Merges a job's staged customers set-wise, in the caller's (audited) transaction: rows that
 * would break a rule of the data are marked rejected first, so the merge itself cannot fail
 * half-way; then one UPDATE for the customers matched by external_ref (cells left empty keep the
 * current value), one INSERT for the new ones (with the ids staged for them), and a few
 * statements for their primary email and phone. Staged rows are written once, by COPY.
 */
export async function mergeStagedCustomers(trx: DbExecutor, importId: string): Promise<MergeCounts> {
  const valid = sql`s.import_id = ${importId} and s.rejected is null`
  const rejections = [
    // An archived customer is not updated behind the client's back (API.md: external-ref-archived): restore it, then import again.
    sql`update import_customer_rows s set rejected = 'external_ref names the archived customer ' || c.id || ': restore it first'
        from customers c
        where ${valid} and s.external_ref is not null and c.id = ${TARGET} and c.archived_at is not null`,
    // The same external_ref twice in one upload: the first line wins.
    sql`update import_customer_rows s set rejected = 'external_ref repeats line ' || f.first_line
        from (select external_ref, min(line) as first_line from import_customer_rows
              where import_id = ${importId} and external_ref is not null group by external_ref having count(*) > 1) f
        where s.import_id = ${importId} and s.external_ref = f.external_ref and s.line > f.first_line`,
    // Two external_refs of one customer (a merged duplicate's and its survivor's): the first line wins.
    sql`update import_customer_rows s set rejected = 'external_ref names the same customer as line ' || f.first_line
        from (select ${TARGET} as customer_id, min(line) as first_line from import_customer_rows s
              where ${valid} and s.external_ref is not null group by 1 having count(*) > 1) f
        where ${valid} and s.external_ref is not null and ${TARGET} = f.customer_id and s.line > f.first_line`,
    // A primary email belongs to one customer: another customer's, or an earlier line's, is refused.
    sql`update import_customer_rows s set rejected = 'the email is the primary email of another customer'
        where ${valid} and s.email_normalized is not null
          and exists (select 1 from contact_points cp where cp.kind = 'email' and cp.is_primary
                      and cp.value_normalized = s.email_normalized and cp.customer_id <> ${TARGET})`,
    sql`update import_customer_rows s set rejected = 'the email repeats line ' || f.first_line
        from (select email_normalized, min(line) as first_line from import_customer_rows
              where import_id = ${importId} and rejected is null and email_normalized is not null group by email_normalized having count(*) > 1) f
        where ${valid} and s.email_normalized = f.email_normalized and s.line > f.first_line`,
  ]
  for (const step of rejections) await step.execute(trx)

  const updated = await sql`
    update customers c set
      name = s.name, given_name = coalesce(s.given_name, c.given_name), family_name = coalesce(s.family_name, c.family_name),
      gender = coalesce(s.gender, c.gender), birthday = coalesce(s.birthday, c.birthday), occupation = coalesce(s.occupation, c.occupation),
      marital_status = coalesce(s.marital_status, c.marital_status), company = coalesce(s.company, c.company),
      job_title = coalesce(s.job_title, c.job_title), preferred_channel = coalesce(s.preferred_channel, c.preferred_channel),
      acquisition_source = coalesce(s.acquisition_source, c.acquisition_source), tags = coalesce(s.tags, c.tags)
    from import_customer_rows s join customers r on r.external_ref = s.external_ref
    where ${valid} and c.id = coalesce(r.merged_into_id, r.id)`.execute(trx)
  const created = await sql`
    insert into customers (id, external_ref, name, given_name, family_name, gender, birthday, occupation, marital_status, company,
                           job_title, preferred_channel, acquisition_source, tags)
    select s.customer_id, s.external_ref, s.name, s.given_name, s.family_name, s.gender, s.birthday, s.occupation, s.marital_status, s.company,
           s.job_title, s.preferred_channel, s.acquisition_source, coalesce(s.tags, '{}')
    from import_customer_rows s
    where ${valid} and (s.external_ref is null or not exists (select 1 from customers c where c.external_ref = s.external_ref))
    order by s.line`.execute(trx)

  for (const kind of ['email', 'phone'] as const) {
    const value = sql.ref(`s.${kind}`)
    const normalized = sql.ref(`s.${kind}_normalized`)
    const rows = sql`select ${TARGET} as customer_id, ${value} as value, ${normalized} as normalized
                     from import_customer_rows s where ${valid} and ${normalized} is not null`
    await sql`update contact_points cp set is_primary = false from (${rows}) r
              where cp.customer_id = r.customer_id and cp.kind = ${kind} and cp.is_primary and cp.value_normalized <> r.normalized`.execute(trx)
    await sql`update contact_points cp set is_primary = true from (${rows}) r
              where cp.customer_id = r.customer_id and cp.kind = ${kind} and not cp.is_primary and cp.value_normalized = r.normalized`.execute(trx)
    await sql`insert into contact_points (customer_id, kind, value, value_normalized, is_primary)
              select r.customer_id, ${kind}, r.value, r.normalized, true from (${rows}) r
              where not exists (select 1 from contact_points cp
                                where cp.customer_id = r.customer_id and cp.kind = ${kind} and cp.value_normalized = r.normalized)`.execute(trx)
  }

  const { rows } = await sql<{ rejected_count: number; rejected: Array<{ line: number; message: string }> | null }>`
    select count(*)::int as rejected_count,
           (select jsonb_agg(jsonb_build_object('line', line, 'message', rejected) order by line)
            from (select line, rejected from import_customer_rows
                  where import_id = ${importId} and rejected is not null order by line limit 1000) r) as rejected
    from import_customer_rows where import_id = ${importId} and rejected is not null`.execute(trx)
  const r = rows[0]!
  return {
    created: Number(created.numAffectedRows ?? 0n),
    updated: Number(updated.numAffectedRows ?? 0n),
    rejectedCount: r.rejected_count,
    rejected: r.rejected ?? [],
  }
}

/** Merges can outlast the API's per-statement limit; inside the merge transaction only. */
export async function allowLongStatements(trx: DbExecutor, timeoutMs: number): Promise<void> {
  await sql`select set_config('statement_timeout', ${String(timeoutMs)}, true)`.execute(trx)
}
