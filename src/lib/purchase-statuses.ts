/**
 * The order statuses that count as a purchase (an order in one of them, not archived): customer
 * metrics and lifecycle, purchase history, analytics and the filter language all read this list.
 * SQL reads the same list from crm_purchase_statuses() (migration purchase_statuses);
 * test/db/purchase-statuses.test.ts holds the two, and the partial index that names the
 * statuses literally, equal.
 */
export const PURCHASE_STATUSES = ['paid', 'fulfilled', 'partially_refunded'] as const

export type PurchaseStatus = (typeof PURCHASE_STATUSES)[number]
