import { type Insertable, type Updateable, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { OrderItemRow, OrderItemsTable, OrderPaymentRow, OrderPaymentsTable, OrderRow, OrdersTable } from '../../db/rows.js'
import { parameterChunks } from '../../lib/batch.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'
import type { ArchivedFilter } from '../../lib/schema.js'
import { whereEqual, whereRange } from '../../db/list-filters.js'
import { externalRefTable, whereArchived } from '../../db/versioned.js'

/** An order row with what it owes and its overdue flag, as every order read returns it. */
export type OrderRecord = OrderRow & { amount_outstanding: string; overdue: boolean }
export type NewOrder = Insertable<OrdersTable>
export type OrderChanges = Updateable<OrdersTable>
export type NewOrderItem = Omit<Insertable<OrderItemsTable>, 'order_id'>
export type NewOrderPayment = Omit<Insertable<OrderPaymentsTable>, 'order_id'>

// Written exactly as the partial receivable indexes of the migration write their predicate,
// so the planner can use them: a pending order owes total - paid + refunded, a settled one nothing.
const OWES = sql<boolean>`orders.status = 'pending' and orders.total > orders.amount_paid - orders.amount_refunded`
// Money keeps its currency's scale (crm_money): a zero is written at the scale of the order's total (JPY 0, CNY 0.00).
const OUTSTANDING = sql<string>`case when orders.status = 'pending' then orders.total - orders.amount_paid + orders.amount_refunded else round(0, scale(orders.total)) end`
// Overdue depends on today, so it is computed when read rather than stored.
const OVERDUE = sql<boolean>`coalesce(orders.due_date < current_date, false) and ${OWES}`
const computed = [OUTSTANDING.as('amount_outstanding'), OVERDUE.as('overdue')]

// Orders ----------------------------------------------------------------------------------------

export async function findOrder(db: DbExecutor, id: string): Promise<OrderRecord | undefined> {
  return db.selectFrom('orders').selectAll('orders').select(computed).where('orders.id', '=', id).executeTakeFirst()
}

/** The order table's versioned-record operations: lock, archive and restore, upsert by external_ref. */
export const orders = externalRefTable('orders', 'order')

/** The order numbers among `numbers` that an order has already. */
export async function takenOrderNumbers(db: DbExecutor, numbers: string[]): Promise<Set<string>> {
  if (numbers.length === 0) return new Set()
  const rows = await db.selectFrom('orders').select('order_number').where('order_number', 'in', numbers).execute()
  return new Set(rows.map((r) => r.order_number))
}

/** The lines of many orders, a few statements for all of them. */
export async function insertItemsOfOrders(db: DbExecutor, rows: Insertable<OrderItemsTable>[]): Promise<void> {
  for (const chunk of parameterChunks(rows)) await db.insertInto('order_items').values(chunk).execute()
}

/** The payments of many orders, a few statements for all of them. */
export async function insertPaymentsOfOrders(db: DbExecutor, rows: Insertable<OrderPaymentsTable>[]): Promise<void> {
  for (const chunk of parameterChunks(rows)) await db.insertInto('order_payments').values(chunk).execute()
}

/**
 * Updates the order row. `touch` bumps its version (the ETag) even when no column of the row
 * changes, because its items are part of it: crm_touch sees a new updated_at and does the rest.
 */
export async function updateOrder(db: DbExecutor, id: string, changes: OrderChanges, touch: boolean): Promise<void> {
  if (Object.keys(changes).length === 0 && !touch) return
  const set = touch ? { ...changes, updated_at: sql<string>`clock_timestamp()` } : changes
  await db.updateTable('orders').set(set as OrderChanges).where('id', '=', id).execute()
}

export interface OrderFilters {
  customer_id?: string
  status?: string
  channel?: string
  ordered_after?: string
  ordered_before?: string
  overdue?: boolean
  archived: ArchivedFilter
}

export async function listOrders(db: DbExecutor, f: OrderFilters, page: PageRequest): Promise<OrderRecord[]> {
  const query = db
    .selectFrom('orders')
    .selectAll('orders')
    .select(computed)
    .$if(f.overdue === true, (qb) => qb.where(OVERDUE))
    .$if(f.overdue === false, (qb) => qb.where(sql<boolean>`not (${OVERDUE})`))
  const filtered = whereRange(whereEqual(query, 'orders', { customer_id: f.customer_id, status: f.status, channel: f.channel }), 'orders.ordered_at', f.ordered_after, f.ordered_before)
  return keysetPage(whereArchived(filtered, 'orders', f.archived), page, 'orders').execute()
}

// Items and payments ------------------------------------------------------------------------------

export async function listItems(db: DbExecutor, orderIds: string[]): Promise<OrderItemRow[]> {
  if (orderIds.length === 0) return []
  return db.selectFrom('order_items').selectAll().where('order_id', 'in', orderIds).orderBy('order_id').orderBy('position').execute()
}

/** Replaces the order's lines as a whole (the audit trail keeps the removed ones). */
export async function replaceItems(db: DbExecutor, orderId: string, items: NewOrderItem[]): Promise<void> {
  await db.deleteFrom('order_items').where('order_id', '=', orderId).execute()
  await insertItems(db, orderId, items)
}

export async function insertItems(db: DbExecutor, orderId: string, items: NewOrderItem[]): Promise<void> {
  if (items.length === 0) return
  await db.insertInto('order_items').values(items.map((i) => ({ ...i, order_id: orderId }))).execute()
}

export async function listPayments(db: DbExecutor, orderIds: string[]): Promise<OrderPaymentRow[]> {
  if (orderIds.length === 0) return []
  return db
    .selectFrom('order_payments')
    .selectAll()
    .where('order_id', 'in', orderIds)
    .orderBy('order_id')
    .orderBy('paid_at')
    .orderBy('id')
    .execute()
}

export async function insertPayments(db: DbExecutor, orderId: string, payments: NewOrderPayment[]): Promise<OrderPaymentRow[]> {
  if (payments.length === 0) return []
  return db.insertInto('order_payments').values(payments.map((p) => ({ ...p, order_id: orderId }))).returningAll().execute()
}

// Receivables -------------------------------------------------------------------------------------

export interface ReceivableRow {
  currency: string
  outstanding: string
  overdue_outstanding: string
  open_orders: number
  overdue_orders: number
  oldest_due_date: string
}

/** Open credit orders of a customer summed per currency in SQL numeric (exact; sums keep the currency's decimals). */
export async function receivables(db: DbExecutor, customerId: string): Promise<{ as_of: string; rows: ReceivableRow[] }> {
  const rows = await db
    .selectFrom('orders')
    .select([
      'orders.currency',
      sql<string>`sum(${OUTSTANDING})`.as('outstanding'),
      sql<string>`coalesce(sum(${OUTSTANDING}) filter (where orders.due_date < current_date), round(0, max(scale(orders.total))))`.as('overdue_outstanding'),
      sql<number>`count(*)`.as('open_orders'),
      sql<number>`count(*) filter (where orders.due_date < current_date)`.as('overdue_orders'),
      sql<string>`min(orders.due_date)`.as('oldest_due_date'),
    ])
    .where('orders.customer_id', '=', customerId)
    .where('orders.due_date', 'is not', null)
    .where(OWES)
    .where('orders.archived_at', 'is', null)
    .groupBy('orders.currency')
    .orderBy('orders.currency')
    .execute()
  const { as_of } = await sql<{ as_of: string }>`select current_date as as_of`.execute(db).then((r) => r.rows[0]!)
  return { as_of, rows }
}
