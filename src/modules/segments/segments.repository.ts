import { type RawBuilder, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { SegmentEventRow, SegmentRow } from '../../db/rows.js'
import type { CustomerPredicate } from '../filters/filter.compile.js'
import { versionedTable, whereArchived } from '../../db/versioned.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'
import type { ArchivedFilter } from '../../lib/schema.js'

export async function insertSegment(db: DbExecutor, row: { name: string; description: string | null; kind: string; filter: unknown }): Promise<SegmentRow> {
  return db
    .insertInto('segments')
    .values({ ...row, filter: row.filter === null ? null : JSON.stringify(row.filter) })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** The segment table's versioned-record operations: find, lock, archive and restore. */
export const segments = versionedTable('segments', 'segment')

/** Updates a segment locked by segments.lockForWrite. */
export async function updateSegment(db: DbExecutor, id: string, changes: Record<string, unknown>): Promise<SegmentRow> {
  const set = { ...changes }
  if ('filter' in set) set.filter = JSON.stringify(set.filter)
  return db.updateTable('segments').set(set).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
}

export async function listSegments(db: DbExecutor, f: { kind?: string; archived: ArchivedFilter }, page: PageRequest) {
  const query = db.selectFrom('segments').selectAll().$if(!!f.kind, (qb) => qb.where('kind', '=', f.kind!))
  return keysetPage(whereArchived(query, 'segments', f.archived), page, 'segments').execute()
}

/** The members of a static segment, as a customer predicate for the customers repository. */
export function staticMembers(segmentId: string): CustomerPredicate {
  return (eb) => eb('customers.id', 'in', eb.selectFrom('segment_members').select('segment_members.customer_id').where('segment_members.segment_id', '=', segmentId))
}

export async function existingCustomers(db: DbExecutor, ids: string[]): Promise<Set<string>> {
  const rows = await db.selectFrom('customers').select('id').where('id', 'in', ids).execute()
  return new Set(rows.map((r) => r.id))
}

/** Adds static members and records who entered, in one statement; answers how many were new. */
export async function addMembers(db: DbExecutor, segmentId: string, customerIds: string[]): Promise<number> {
  return changeMembers(db, segmentId, 'entered', sql`
    insert into segment_members (segment_id, customer_id)
    select ${segmentId}::uuid, c from unnest(${customerIds}::uuid[]) as c
    on conflict (segment_id, customer_id) do nothing
    returning customer_id`)
}

/** Removes static members and records who left, in one statement; answers how many were members. */
export async function removeMembers(db: DbExecutor, segmentId: string, customerIds: string[]): Promise<number> {
  return changeMembers(db, segmentId, 'left', sql`
    delete from segment_members where segment_id = ${segmentId}::uuid and customer_id = any(${customerIds}::uuid[])
    returning customer_id`)
}

/** Runs a change of segment_members that returns the customer ids it changed, with their membership events. */
async function changeMembers(db: DbExecutor, segmentId: string, event: 'entered' | 'left', change: RawBuilder<unknown>): Promise<number> {
  const r = await sql<{ n: number }>`
    with changed as (${change}),
    events as (
      insert into segment_membership_events (segment_id, customer_id, event)
      select ${segmentId}::uuid, customer_id, ${event} from changed
      returning 1)
    select count(*)::int as n from events`.execute(db)
  return r.rows[0]!.n
}

/**
 * Brings a dynamic segment's snapshot up to date with its filter and appends the difference to
 * the history, set-wise in one statement: the customers the filter selects now, those that were
 * not in the snapshot (entered) and those in it that it no longer selects (left).
 */
export async function refreshSnapshot(db: DbExecutor, segmentId: string, where: CustomerPredicate) {
  const current = db.selectFrom('customers').select('customers.id').where('customers.archived_at', 'is', null).where(where)
  const r = await sql<{ entered: number; left: number; refreshed_at: string }>`
    with cur as (${current}),
    entered as (
      insert into segment_snapshots (segment_id, customer_id)
      select ${segmentId}::uuid, cur.id from cur
      on conflict (segment_id, customer_id) do nothing
      returning customer_id),
    gone as (
      delete from segment_snapshots s
      where s.segment_id = ${segmentId}::uuid and not exists (select 1 from cur where cur.id = s.customer_id)
      returning customer_id),
    events as (
      insert into segment_membership_events (segment_id, customer_id, event)
      select ${segmentId}::uuid, customer_id, 'entered' from entered
      union all
      select ${segmentId}::uuid, customer_id, 'left' from gone
      returning event)
    select count(*) filter (where event = 'entered')::int as entered,
           count(*) filter (where event = 'left')::int as left,
           now() as refreshed_at
    from events`.execute(db)
  return r.rows[0]!
}

export async function snapshotSize(db: DbExecutor, segmentId: string): Promise<number> {
  const r = await db.selectFrom('segment_snapshots').select((eb) => eb.fn.countAll<number>().as('n')).where('segment_id', '=', segmentId).executeTakeFirstOrThrow()
  return Number(r.n)
}

export async function listEvents(
  db: DbExecutor, segmentId: string, f: { event?: string; customer_id?: string }, page: PageRequest,
): Promise<SegmentEventRow[]> {
  const query = db
    .selectFrom('segment_membership_events')
    .selectAll()
    .where('segment_id', '=', segmentId)
    .$if(!!f.event, (qb) => qb.where('event', '=', f.event!))
    .$if(!!f.customer_id, (qb) => qb.where('customer_id', '=', f.customer_id!))
  return keysetPage(query, page, 'segment_membership_events').execute()
}
