import { Readable, Transform } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import { CsvError, parse as parseCsv } from 'csv-parse'
import type { FastifyBaseLogger } from 'fastify'
import { sql } from 'kysely'
import type { Db, DbExecutor } from '../../db/database.js'
import { withStatementTimeout } from '../../db/scope.js'
import { inAuditedTransaction, switchAuditContext, type AuditContext } from '../../plugins/audit.js'
import { HttpProblem, badRequest, type FieldError } from '../../lib/problem.js'
import { uuidv7 } from '../../lib/uuid.js'
import { compileStrictValidator, toFieldErrors, unstorableValues } from '../../lib/validation.js'
import { normalizeEmail, normalizePhone } from '../customers/index.js'
import * as repo from './imports.repository.js'
import { CUSTOMER_IMPORT_COLUMNS, CustomerImportRow, MAX_LISTED_ERRORS, type CustomerImportRowT } from './imports.schemas.js'

export type ImportFormat = 'csv' | 'ndjson'

/** How often (in rows) the job's received count is written while an upload streams in. */
const PROGRESS_EVERY = 50_000
/** Staged rows are sent to COPY in chunks of about this many characters (not one write per row). */
const COPY_CHUNK_CHARS = 64 * 1024
/** The merge may take minutes for millions of rows; the API's 10 s statement limit is for requests. */
export const MERGE_STATEMENT_TIMEOUT_MS = 30 * 60_000

const validateRow = compileStrictValidator(CustomerImportRow)

interface RowError {
  line: number
  pointer: string
  message: string
}

/** What the upload phase found: rows read, and the rows refused before staging. */
interface Received {
  rows: number
  invalid: number
  errors: RowError[]
}

/** A parsed record with the upload line it started on. */
interface Record_ {
  line: number
  value: unknown
  /** Set when the line could not even be parsed. */
  error?: string
}

// Parsing ----------------------------------------------------------------------------------

/**
 * Data flows into the parsers before the staging COPY starts iterating them. A stream that fails
 * in between keeps its error and the iterator throws it; this listener only stops it from being
 * reported as unhandled meanwhile.
 */
function heldForIterator(stream: Readable): void {
  stream.on('error', () => {})
}

/** Cuts the upload off with a 413 once it passes maxBytes (a streamed body has no bodyLimit). */
function limitBytes(maxBytes: number): Transform {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length
      if (seen > maxBytes) done(new HttpProblem({ status: 413, title: 'Content Too Large', detail: `An import is at most ${maxBytes} bytes.` }))
      else done(null, chunk)
    },
  })
}

const IMPORT_COLUMNS = new Set<string>(CUSTOMER_IMPORT_COLUMNS)

function checkHeader(header: string[]): string[] {
  const errors: FieldError[] = header
    .map((h, i) => ({ h, i }))
    .filter(({ h }) => !IMPORT_COLUMNS.has(h))
    // The header is not echoed: a file without one has a row of personal data in its place.
    .map(({ i }) => ({ pointer: `/header/${i}`, message: `is not a column of a customer import (${CUSTOMER_IMPORT_COLUMNS.join(', ')})` }))
  if (!header.includes('name')) errors.push({ pointer: '/header', message: 'must have a name column' })
  if (new Set(header).size !== header.length) errors.push({ pointer: '/header', message: 'names a column twice' })
  if (errors.length) throw badRequest('The CSV header is not valid; nothing was imported.', errors)
  return header
}

/**
 * The rule each of csv-parse's errors reports. Its own messages quote the cell they stopped at,
 * and the problem is also kept in the job and its audit trail: a value must not be in either.
 */
const CSV_RULES: Record<string, string> = {
  INVALID_OPENING_QUOTE: 'a quote inside an unquoted field (quote the whole field and double the quotes inside it)',
  CSV_INVALID_CLOSING_QUOTE: 'a closing quote followed by something other than a delimiter or the end of the line',
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'a closing quote followed by something other than a delimiter or the end of the line',
  CSV_QUOTE_NOT_CLOSED: 'a quoted field that is never closed',
  CSV_RECORD_INCONSISTENT_COLUMNS: 'a row with another number of fields than the header',
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'a row with another number of fields than the header',
  CSV_MAX_RECORD_SIZE: 'a row larger than 64 KiB',
}

/** A CSV parse error as a 400 that names the line, the column and the rule broken, never the value. */
function csvProblem(err: CsvError): HttpProblem {
  const { lines, column } = err as CsvError & { lines?: number; column?: string | number }
  const where = [
    typeof lines === 'number' ? `line ${lines}` : undefined,
    typeof column === 'number' ? `column ${column + 1}` : typeof column === 'string' && IMPORT_COLUMNS.has(column) ? `column ${column}` : undefined,
  ].filter(Boolean).join(', ')
  const rule = CSV_RULES[err.code] ?? 'text that is not well-formed CSV'
  return new HttpProblem({
    status: 400,
    title: 'Bad Request',
    code: 'malformed-csv',
    detail: `The upload could not be read as CSV${where ? ` at ${where}` : ''}: ${rule}. Nothing was imported.`,
  })
}
/**
 * CSV: a header line naming columns, empty cells are absent values, tags are `|`-separated.
 * The parser is wired at once (not when iteration starts) so an early upload error is kept for
 * the iterator instead of going unhandled.
 */
function csvRecords(input: Readable): AsyncIterable<Record_> {
  const parser = input.pipe(parseCsv({ bom: true, columns: checkHeader, skip_empty_lines: true, info: true, max_record_size: 64 * 1024 }))
  input.on('error', (err) => parser.destroy(err))
  heldForIterator(parser)
  return (async function* () {
    for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      const value: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(record)) {
        if (v === '') continue
        value[k] = k === 'tags' ? v.split('|').map((t) => t.trim()).filter(Boolean) : v
      }
      yield { line: info.lines, value }
    }
  })()
}

/** NDJSON: one JSON object per line; blank lines are skipped. */
async function* ndjsonRecords(input: Readable): AsyncGenerator<Record_> {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  let line = 0
  const parse = (text: string): Record_ | undefined => {
    line++
    if (text.trim() === '') return undefined
    try {
      return { line, value: JSON.parse(text) as unknown }
    } catch {
      return { line, value: undefined, error: 'is not valid JSON' }
    }
  }
  for await (const chunk of input) {
    pending += decoder.write(chunk as Buffer)
    let nl: number
    while ((nl = pending.indexOf('\n')) >= 0) {
      const r = parse(pending.slice(0, nl).replace(/\r$/, ''))
      pending = pending.slice(nl + 1)
      if (r) yield r
    }
  }
  const last = parse(pending + decoder.end())
  if (last) yield last
}

// Validation and staging -------------------------------------------------------------------

/** The staged values of a valid row, or its errors. */
function stage(importId: string, r: Record_): { values?: unknown[]; errors?: RowError[] } {
  if (r.error) return { errors: [{ line: r.line, pointer: '', message: r.error }] }
  const unstorableFound = unstorableValues(r.value)
  if (unstorableFound.length) return { errors: unstorableFound.map((e) => ({ line: r.line, ...e })) }
  if (!validateRow(r.value)) {
    return { errors: toFieldErrors(validateRow.errors ?? []).map((e) => ({ line: r.line, ...e })) }
  }
  const row = r.value as CustomerImportRowT
  const email = row.email?.trim() || null
  const phone = row.phone?.trim() || null
  const emailNormalized = email ? normalizeEmail(email) : null
  const phoneNormalized = phone ? normalizePhone(phone) : null
  const errors: RowError[] = []
  if (email && !emailNormalized) errors.push({ line: r.line, pointer: '/email', message: 'must be an email address' })
  if (phone && !phoneNormalized) errors.push({ line: r.line, pointer: '/phone', message: 'must be a phone number: digits, optionally a leading +, 5 to 20 digits' })
  if (errors.length) return { errors }
  const tags = row.tags ? [...new Set(row.tags.map((t) => t.trim().toLowerCase()).filter(Boolean))] : null
  return {
    values: [
      importId, r.line, row.external_ref ?? null, row.name, row.given_name ?? null, row.family_name ?? null, row.gender ?? null,
      row.birthday ?? null, row.occupation ?? null, row.marital_status ?? null, row.company ?? null, row.job_title ?? null,
      row.preferred_channel ?? null, row.acquisition_source ?? null, tags, email, emailNormalized, phone, phoneNormalized,
      uuidv7(),
    ],
  }
}

/** Reads, validates and COPYs the upload into staging; the refused rows are counted and listed. */
async function receive(db: Db, jobId: string, format: ImportFormat, body: Readable, maxBytes: number, progress: (rows: number) => Promise<void>): Promise<Received> {
  const received: Received = { rows: 0, invalid: 0, errors: [] }
  const limited = limitBytes(maxBytes)
  body.on('error', (err) => limited.destroy(err))
  heldForIterator(limited)
  body.pipe(limited)
  const records = format === 'csv' ? csvRecords(limited) : ndjsonRecords(limited)
  // Rows go to COPY in chunks of about COPY_CHUNK_CHARS: a write (and a CopyData message) per row
  // costs more than encoding the row.
  async function* copyChunks(): AsyncGenerator<string> {
    let chunk = ''
    for await (const r of records) {
      received.rows++
      const { values, errors } = stage(jobId, r)
      if (values) {
        chunk += repo.encodeCopyRow(values)
        if (chunk.length >= COPY_CHUNK_CHARS) {
          yield chunk
          chunk = ''
        }
      } else {
        received.invalid++
        for (const e of errors ?? []) if (received.errors.length < MAX_LISTED_ERRORS) received.errors.push(e)
      }
      if (received.rows % PROGRESS_EVERY === 0) await progress(received.rows)
    }
    if (chunk) yield chunk
  }
  await repo.copyStagedCustomers(db, Readable.from(copyChunks()))
  return received
}

// Jobs -------------------------------------------------------------------------------------

export interface StartedImport {
  job: repo.ImportJobRow
  /** The merge, running in the background; resolves when the job has its final status. */
  merged: Promise<void>
}

/**
 * An import in two phases. Upload: the rows stream through validation into the staging table
 * (COPY), so memory stays flat whatever the size; rows that fail validation are refused and
 * listed. Merge: one audited transaction merges every valid row set-wise, or none, and records
 * the outcome on the job. The request answers between the two, so clients poll the job.
 */
export async function startCustomerImport(
  db: Db,
  opts: { format: ImportFormat; body: Readable; context: AuditContext; maxBytes: number; log: FastifyBaseLogger },
): Promise<StartedImport> {
  const { context } = opts
  const created = await inAuditedTransaction(db, context, (trx) =>
    repo.insertJob(trx, { kind: 'customers', format: opts.format, actor: context.actor, request_id: context.requestId }),
  )
  const id = created.id
  let received: Received
  try {
    received = await receive(db, id, opts.format, opts.body, opts.maxBytes, (rows) =>
      inAuditedTransaction(db, context, (trx) => repo.updateJob(trx, id, { rows_received: rows })),
    )
  } catch (err) {
    // Anything but a parse error or a problem (the database) is not the client's to read.
    const problem = err instanceof HttpProblem ? err : err instanceof CsvError ? csvProblem(err) : undefined
    await inAuditedTransaction(db, context, async (trx) => {
      await repo.deleteStaged(trx, id)
      await repo.updateJob(trx, id, { status: 'failed', failure: problem?.detail ?? 'The upload failed; nothing was imported.', finished: true })
    }).catch((e: unknown) => opts.log.error({ err: e, import_id: id }, 'could not record the failed import'))
    throw problem ?? err
  }
  const job = await inAuditedTransaction(db, context, async (trx) => {
    await repo.updateJob(trx, id, { status: 'merging', rows_received: received.rows, rows_rejected: received.invalid, errors: received.errors })
    return (await repo.findJob(trx, id))!
  })
  // The merge outlives the request (and its deadline), with statements of up to MERGE_STATEMENT_TIMEOUT_MS.
  const merged = withStatementTimeout(MERGE_STATEMENT_TIMEOUT_MS, () => merge(db, id, context, received, opts.log))
  return { job, merged }
}

/** The merge of a job's staged rows and its outcome, in the caller's transaction, holding the job's row. */
async function mergeJob(trx: DbExecutor, id: string, received: Received): Promise<void> {
  await repo.lockJob(trx, id)
  await repo.allowLongStatements(trx, MERGE_STATEMENT_TIMEOUT_MS)
  const counts = await repo.mergeStagedCustomers(trx, id)
  const errors = [...received.errors, ...counts.rejected.map((r) => ({ line: r.line, pointer: '', message: r.message }))]
    .sort((a, b) => a.line - b.line)
    .slice(0, MAX_LISTED_ERRORS)
  await repo.updateJob(trx, id, {
    status: 'succeeded', rows_imported: counts.created + counts.updated, rows_created: counts.created, rows_updated: counts.updated,
    rows_rejected: received.invalid + counts.rejectedCount, errors, finished: true,
  })
  await repo.deleteStaged(trx, id)
}

async function merge(db: Db, id: string, context: AuditContext, received: Received, log: FastifyBaseLogger): Promise<void> {
  try {
    await inAuditedTransaction(db, context, (trx) => mergeJob(trx, id, received))
  } catch (err) {
    log.error({ err, import_id: id }, 'import merge failed')
    await inAuditedTransaction(db, context, async (trx) => {
      await repo.deleteStaged(trx, id)
      await repo.updateJob(trx, id, { status: 'failed', failure: 'The merge failed and was rolled back: nothing was imported. Retry the upload.', finished: true })
    }).catch((e: unknown) => log.error({ err: e, import_id: id }, 'could not record the failed import'))
  }
}

// Recovery -----------------------------------------------------------------------------------

/** The upload of a job that is still receiving this long after its last progress has died with its process. */
export const RECEIVING_STALE_MS = 10 * 60_000
/** A merging job not locked by a merge this long after it started merging has lost its process. */
export const MERGING_STALE_MS = 60_000

export interface RecoveryOutcome {
  resumed: string[]
  failed: string[]
}

/**
 * Finishes what a process that died (a crash, a kill, a lost connection) left of its imports:
 * an upload that was being received cannot be resumed (the client's stream is gone), so its job
 * fails and its staged rows go; a job whose upload was complete and whose merge had not
 * committed is merged now from its staged rows, audited as the request that uploaded it. The
 * staging table is unlogged: after a database crash its rows are gone, and such a job fails.
 * Runs in the scheduler's transaction (the import-recovery job), one merge per run.
 */
export async function recoverImports(
  trx: DbExecutor,
  opts: { receivingStaleMs?: number; mergingStaleMs?: number; now?: Date } = {},
): Promise<RecoveryOutcome> {
  const now = opts.now ?? new Date()
  const orphans = await repo.orphanedJobs(trx, {
    receivingBefore: new Date(now.getTime() - (opts.receivingStaleMs ?? RECEIVING_STALE_MS)),
    mergingBefore: new Date(now.getTime() - (opts.mergingStaleMs ?? MERGING_STALE_MS)),
    limit: 100,
  })
  const outcome: RecoveryOutcome = { resumed: [], failed: [] }
  const resumable: typeof orphans = []
  for (const job of orphans) {
    const staged = await repo.countStaged(trx, job.id)
    if (job.status === 'merging' && staged === job.rows_received - job.rows_rejected) {
      resumable.push(job)
      continue
    }
    await repo.deleteStaged(trx, job.id)
    await repo.updateJob(trx, job.id, {
      status: 'failed',
      failure: job.status === 'receiving'
        ? 'The service stopped while the upload was being received: nothing was imported. Upload it again.'
        : 'The service stopped during the merge and its staged rows were lost: nothing was imported. Upload it again.',
      finished: true,
    })
    outcome.failed.push(job.id)
  }
  // One merge per run, last: from here on the audit rows name the request that uploaded it.
  const job = resumable[0]
  if (job) {
    await switchAuditContext(trx, { actor: job.actor, requestId: job.request_id ?? job.id, route: 'job import-recovery' })
    // A merge that fails again fails its job, as a first merge would; the other jobs' outcomes stand.
    await sql`savepoint import_merge`.execute(trx)
    try {
      await mergeJob(trx, job.id, { rows: job.rows_received, invalid: job.rows_rejected, errors: job.errors as RowError[] })
      await sql`release savepoint import_merge`.execute(trx)
      outcome.resumed.push(job.id)
    } catch {
      await sql`rollback to savepoint import_merge`.execute(trx)
      await repo.deleteStaged(trx, job.id)
      await repo.updateJob(trx, job.id, { status: 'failed', failure: 'The merge failed and was rolled back: nothing was imported. Retry the upload.', finished: true })
      outcome.failed.push(job.id)
    }
  }
  return outcome
}
