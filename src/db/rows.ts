import type { Insertable, Selectable, Updateable } from 'kysely'
import type { ContactPoints, Customers, DB, Feedback, Interactions, OrderItems, OrderPayments, Orders, SegmentMembershipEvents, Segments, AuditEvents } from './schema.js'

/**
 * The database's types as the code uses them. The table interfaces are generated from the
 * migrated database into ./schema.ts (`npm run db:schema`); this file only names them.
 */
export type Database = DB

export type OrdersTable = Orders
export type OrderItemsTable = OrderItems
export type OrderPaymentsTable = OrderPayments
export type InteractionsTable = Interactions

export type CustomerRow = Selectable<Customers>
export type NewCustomerRow = Insertable<Customers>
export type CustomerUpdate = Updateable<Customers>
export type ContactPointRow = Selectable<ContactPoints>
export type AuditEventRow = Selectable<AuditEvents>
export type OrderRow = Selectable<Orders>
export type OrderItemRow = Selectable<OrderItems>
export type OrderPaymentRow = Selectable<OrderPayments>
export type InteractionRow = Selectable<Interactions>
export type FeedbackRow = Selectable<Feedback>
export type SegmentRow = Selectable<Segments>
export type SegmentEventRow = Selectable<SegmentMembershipEvents>
