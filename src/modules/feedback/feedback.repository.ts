import { type InsertObject, type UpdateObject, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { Database, FeedbackRow } from '../../db/rows.js'
import { whereEqual, whereRange } from '../../db/list-filters.js'
import { externalRefTable, whereArchived } from '../../db/versioned.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'
import type { ArchivedFilter } from '../../lib/schema.js'

/** A feedback row with its SLA state, as every feedback read returns it. */
export type FeedbackRecord = FeedbackRow & { sla_breached: boolean | null }
/** Column values or SQL expressions (the database clock sets resolved_at and derives sla_due_at). */
export type NewFeedback = InsertObject<Database, 'feedback'>
export type FeedbackChanges = UpdateObject<Database, 'feedback'>

// Breached depends on the clock, so it is computed when read rather than stored. An open complaint
// is breached once its due time has passed; a resolved one stays breached if it was resolved late.
const OPEN_BREACHED = sql<boolean>`feedback.status in ('open', 'in_progress') and feedback.sla_due_at < now()`
const RESOLVED_LATE = sql<boolean>`feedback.status in ('resolved', 'closed') and feedback.resolved_at > feedback.sla_due_at`
const BREACHED = sql<boolean>`feedback.kind = 'complaint' and ((${OPEN_BREACHED}) or (${RESOLVED_LATE}))`
const SLA_BREACHED = sql<boolean | null>`case when feedback.kind = 'complaint' then coalesce(${BREACHED}, false) end`

// Links -----------------------------------------------------------------------------------------------

/** The customer an order belongs to, or undefined for an unknown order. */
export async function orderCustomer(db: DbExecutor, orderId: string): Promise<string | undefined> {
  return (await db.selectFrom('orders').select('customer_id').where('id', '=', orderId).executeTakeFirst())?.customer_id
}

/** The customer an interaction belongs to, or undefined for an unknown interaction. */
export async function interactionCustomer(db: DbExecutor, interactionId: string): Promise<string | undefined> {
  return (await db.selectFrom('interactions').select('customer_id').where('id', '=', interactionId).executeTakeFirst())?.customer_id
}

// Feedback ----------------------------------------------------------------------------------------------

export async function findFeedback(db: DbExecutor, id: string): Promise<FeedbackRecord | undefined> {
  return db.selectFrom('feedback').selectAll('feedback').select(SLA_BREACHED.as('sla_breached')).where('feedback.id', '=', id).executeTakeFirst()
}

/** The feedback table's versioned-record operations: lock, archive and restore, upsert by external_ref. */
export const feedback = externalRefTable('feedback', 'feedback')

export async function updateFeedback(db: DbExecutor, id: string, changes: FeedbackChanges): Promise<void> {
  if (Object.keys(changes).length === 0) return
  await db.updateTable('feedback').set(changes).where('id', '=', id).execute()
}

export interface FeedbackFilters {
  customer_id?: string
  kind?: string
  survey_type?: string
  status?: string
  priority?: string
  assignee?: string
  submitted_after?: string
  submitted_before?: string
  sla_breached?: boolean
  archived: ArchivedFilter
}

export async function listFeedback(db: DbExecutor, f: FeedbackFilters, page: PageRequest): Promise<FeedbackRecord[]> {
  const query = db
    .selectFrom('feedback')
    .selectAll('feedback')
    .select(SLA_BREACHED.as('sla_breached'))
    .$if(f.sla_breached === true, (qb) => qb.where(BREACHED))
    .$if(f.sla_breached === false, (qb) => qb.where('feedback.kind', '=', 'complaint').where(sql<boolean>`not coalesce(${BREACHED}, false)`))
  const equal = { customer_id: f.customer_id, kind: f.kind, survey_type: f.survey_type, status: f.status, priority: f.priority, assignee: f.assignee }
  const filtered = whereRange(whereEqual(query, 'feedback', equal), 'feedback.submitted_at', f.submitted_after, f.submitted_before)
  return keysetPage(whereArchived(filtered, 'feedback', f.archived), page, 'feedback').execute()
}
