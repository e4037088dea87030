import { type Insertable, type Updateable, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { InteractionRow, InteractionsTable } from '../../db/rows.js'
import { whereEqual, whereRange } from '../../db/list-filters.js'
import { externalRefTable, whereArchived } from '../../db/versioned.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'
import type { ArchivedFilter } from '../../lib/schema.js'

/** An interaction row with its follow-up-due flag, as every interaction read returns it. */
export type InteractionRecord = InteractionRow & { follow_up_due: boolean }
export type NewInteraction = Insertable<InteractionsTable>
export type InteractionChanges = Updateable<InteractionsTable>

// Due depends on today, so it is computed when read. Sessions run in UTC, so current_date is the
// UTC date. The filter form matches the partial index interactions_follow_up_due_idx.
const DUE = sql<boolean>`interactions.follow_up_on is not null and not interactions.follow_up_done and interactions.follow_up_on <= current_date`
const computed = [sql<boolean>`coalesce(${DUE}, false)`.as('follow_up_due')]

export async function findInteraction(db: DbExecutor, id: string): Promise<InteractionRecord | undefined> {
  return db.selectFrom('interactions').selectAll('interactions').select(computed).where('interactions.id', '=', id).executeTakeFirst()
}

/** The interaction table's versioned-record operations: lock, archive and restore, upsert by external_ref. */
export const interactions = externalRefTable('interactions', 'interaction')

/** Updates a row locked by interactions.lockForWrite or upsert; the version check already happened there. */
export async function updateInteraction(db: DbExecutor, id: string, changes: InteractionChanges): Promise<void> {
  if (Object.keys(changes).length === 0) return
  await db.updateTable('interactions').set(changes).where('id', '=', id).execute()
}

/** The customer of an order, for the rule that an interaction links only its own customer's orders. */
export async function orderCustomer(db: DbExecutor, orderId: string): Promise<string | undefined> {
  return (await db.selectFrom('orders').select('customer_id').where('id', '=', orderId).executeTakeFirst())?.customer_id
}

/** The customer of each of these orders that exists, by order id: one query for a batch. */
export async function orderCustomers(db: DbExecutor, orderIds: string[]): Promise<Map<string, string>> {
  if (orderIds.length === 0) return new Map()
  const rows = await db.selectFrom('orders').select(['id', 'customer_id']).where('id', 'in', orderIds).execute()
  return new Map(rows.map((r) => [r.id, r.customer_id]))
}

export interface InteractionFilters {
  customer_id?: string
  channel?: string
  direction?: string
  order_id?: string
  occurred_after?: string
  occurred_before?: string
  follow_up_due?: boolean
  archived: ArchivedFilter
}

export async function listInteractions(
  db: DbExecutor, f: InteractionFilters, page: PageRequest,
): Promise<InteractionRecord[]> {
  const query = db
    .selectFrom('interactions')
    .selectAll('interactions')
    .select(computed)
    .$if(f.follow_up_due === true, (qb) => qb.where(DUE))
    .$if(f.follow_up_due === false, (qb) => qb.where(sql<boolean>`not coalesce(${DUE}, false)`))
  const equal = { customer_id: f.customer_id, channel: f.channel, direction: f.direction, order_id: f.order_id }
  const filtered = whereRange(whereEqual(query, 'interactions', equal), 'interactions.occurred_at', f.occurred_after, f.occurred_before)
  return keysetPage(whereArchived(filtered, 'interactions', f.archived), page, 'interactions').execute()
}
