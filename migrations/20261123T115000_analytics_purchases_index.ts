import { type Kysely, sql } from 'kysely'

/**
 * Analytics read purchases (status paid, fulfilled or partially_refunded, not archived) by time
 * and aggregate them per customer. This partial index holds exactly those orders, ordered by
 * ordered_at and covering the columns the analytics use, so a window of purchases is a range of
 * one narrow index (index-only once the table is vacuumed) instead of a scan of every order.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create index orders_purchases_ordered_idx on orders (ordered_at)
    include (customer_id, currency, total, amount_refunded)
    where archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists orders_purchases_ordered_idx`.execute(db)
}
