import { Readable } from 'node:stream'
import type { DbExecutor } from '../../db/database.js'
import type { SegmentRow } from '../../db/rows.js'
import { compileFilter, type CustomerPredicate } from '../filters/filter.compile.js'
import { parseFilter, type FilterAst } from '../filters/filter.parse.js'
import type { SortKey } from '../../lib/pagination.js'
import { problem, notFound } from '../../lib/problem.js'
import * as customers from '../customers/index.js'
import * as repo from './segments.repository.js'
import type { SegmentCreateBody, SegmentDto, SegmentPatchBody } from './segments.schemas.js'
import type { CustomerDto } from '../customers/customers.schemas.js'

export function toSegmentDto(row: SegmentRow): SegmentDto {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    kind: row.kind as SegmentDto['kind'],
    filter: (row.filter ?? null) as SegmentDto['filter'],
    version: row.version,
    created_at: row.created_at,
    updated_at: row.updated_at,
    archived_at: row.archived_at,
  }
}


/** `filter` arrives already checked by the route (filterFromBody); here only the kind rules. */
export async function createSegment(db: DbExecutor, body: SegmentCreateBody, ast: FilterAst | undefined): Promise<SegmentRow> {
  if (body.kind === 'dynamic' && !ast) throw problem('segment-kind-mismatch', 'A dynamic segment needs a filter.', [{ pointer: '/filter', message: 'is required for a dynamic segment' }])
  if (body.kind === 'static' && ast) throw problem('segment-kind-mismatch', 'A static segment has members, not a filter.', [{ pointer: '/filter', message: 'is only for dynamic segments' }])
  return repo.insertSegment(db, { name: body.name, description: body.description ?? null, kind: body.kind, filter: body.filter ?? null })
}

export async function patchSegment(db: DbExecutor, id: string, body: SegmentPatchBody, expectedVersion: number | undefined): Promise<SegmentRow> {
  const current = await repo.segments.lockForWrite(db, id, expectedVersion)
  if ('filter' in body && current.kind !== 'dynamic') throw problem('segment-kind-mismatch', 'A static segment has members, not a filter.', [{ pointer: '/filter', message: 'is only for dynamic segments' }])
  if ('filter' in body && body.filter === null) throw problem('segment-kind-mismatch', 'A dynamic segment needs a filter.', [{ pointer: '/filter', message: 'cannot be cleared' }])
  return repo.updateSegment(db, id, body as Record<string, unknown>)
}

/** Restores an archived segment; 409 (segment-name-taken) when a live segment has taken its name meanwhile. */
export async function restoreSegment(db: DbExecutor, id: string, expectedVersion: number | undefined): Promise<void> {
  await repo.segments.restore(db, id, expectedVersion)
}

export async function getSegment(db: DbExecutor, id: string, lock = false): Promise<SegmentRow> {
  const row = lock ? await repo.segments.lock(db, id) : await repo.segments.find(db, id)
  if (!row) throw notFound('segment')
  return row
}

/**
 * The customers a segment holds now: its filter, or its member list. `check` sees the parsed
 * filter first (a reader without the financial grant may not count by purchase figures).
 */
export function membersOf(segment: SegmentRow, check?: (ast: FilterAst) => void): CustomerPredicate {
  if (segment.kind !== 'dynamic') return repo.staticMembers(segment.id)
  const ast = parseFilter(segment.filter, '/filter')
  check?.(ast)
  return compileFilter(ast)
}

export async function changeStaticMembers(db: DbExecutor, id: string, ids: string[], op: 'add' | 'remove') {
  const segment = await getSegment(db, id, true)
  if (segment.kind !== 'static') throw problem('segment-kind-mismatch', 'Members of a dynamic segment follow its filter; only static segments take members by id.')
  if (segment.archived_at) throw problem('record-archived', 'The segment is archived.')
  if (op === 'remove') {
    const removed = await repo.removeMembers(db, id, ids)
    return { removed, unchanged: ids.length - removed }
  }
  const known = await repo.existingCustomers(db, ids)
  const unknown = ids.flatMap((c, i) => (known.has(c) ? [] : [{ pointer: `/customer_ids/${i}`, message: 'is not a customer' }]))
  if (unknown.length > 0) throw problem('unknown-customer', 'Some ids are not customers; nothing was added.', unknown.slice(0, 50))
  const added = await repo.addMembers(db, id, ids)
  return { added, unchanged: ids.length - added }
}

export async function refresh(db: DbExecutor, id: string) {
  const segment = await getSegment(db, id, true)
  if (segment.kind !== 'dynamic') throw problem('segment-kind-mismatch', 'Only dynamic segments are refreshed; a static segment\'s history is written as members are added and removed.')
  const { entered, left, refreshed_at } = await repo.refreshSnapshot(db, id, membersOf(segment))
  return { entered, left, refreshed_at, member_count: await repo.snapshotSize(db, id) }
}

// Export ------------------------------------------------------------------------------------

export const EXPORT_BATCH = 500
const CSV_COLUMNS = [
  'id', 'external_ref', 'name', 'given_name', 'family_name', 'gender', 'lifecycle_stage', 'acquisition_source', 'preferred_channel',
  'company', 'job_title', 'tags', 'loyalty_points', 'primary_email', 'primary_phone', 'created_at', 'updated_at',
] as const

/** One CSV cell (RFC 4180); a leading = + - @ is neutralised so spreadsheets never run it as a formula. */
function csvCell(value: unknown): string {
  let s = value === null || value === undefined ? '' : Array.isArray(value) ? value.join(';') : String(value)
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/**
 * The members as CSV or NDJSON, read in keyset batches of EXPORT_BATCH (created_at, id), so memory
 * stays flat whatever the segment's size and no statement or transaction stays open between
 * batches. A customer created or changed during a long export may or may not appear. `present`
 * shows each customer in the caller's view (request.maskPii).
 */
export function exportStream(db: DbExecutor, where: CustomerPredicate, format: 'csv' | 'ndjson', present: (customer: CustomerDto) => CustomerDto): Readable {
  const keys: SortKey[] = [{ field: 'created_at', desc: false, type: 'timestamp' }]
  async function* lines() {
    if (format === 'csv') yield CSV_COLUMNS.join(',') + '\r\n'
    let after: unknown[] | undefined
    for (;;) {
      const rows = await customers.searchCustomers(db, where, { keys, after, limit: EXPORT_BATCH })
      const batch = rows.slice(0, EXPORT_BATCH)
      let chunk = ''
      for (const row of batch) {
        const dto = present(customers.toCustomerDto(row))
        chunk += format === 'csv' ? CSV_COLUMNS.map((c) => csvCell(dto[c])).join(',') + '\r\n' : JSON.stringify(dto) + '\n'
      }
      if (chunk) yield chunk
      if (rows.length <= EXPORT_BATCH) return
      const last = batch[batch.length - 1]!
      after = [last.created_at, last.id]
    }
  }
  return Readable.from(lines(), { objectMode: false })
}
