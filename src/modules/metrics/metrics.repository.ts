import { sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'

/**
 * Customer metrics and the lifecycle stage derived from them. The tables are kept by triggers
 * and a refresh at commit (docs/database.md, "what happens when you write X"); this module only
 * reads them, runs that refresh early, and sweeps the stages that time alone moves.
 */

/** The metrics and per-currency spend of some customers. */
export async function findMetrics(db: DbExecutor, customerIds: string[]) {
  if (customerIds.length === 0) return { metrics: [], spend: [] }
  const [metrics, spend] = await Promise.all([
    db.selectFrom('customer_metrics').selectAll().where('customer_id', 'in', customerIds).execute(),
    db
      .selectFrom('customer_spend')
      .select(['customer_id', 'currency', 'order_count', 'total_spent', // A sum keeps its currency's scale (crm_money), so the average is rounded to the currency's minor unit.
      sql<string>`round(total_spent / nullif(order_count, 0), scale(total_spent))::text`.as('average_order_value')])
      .where('customer_id', 'in', customerIds)
      .orderBy('customer_id')
      .orderBy('currency')
      .execute(),
  ])
  return { metrics, spend }
}

export type MetricsRows = Awaited<ReturnType<typeof findMetrics>>

/**
 * Metrics and the derived stage of customers touched in this transaction are refreshed at commit
 * (see the metrics_deferred migration); this runs that refresh now, for a handler that answers
 * with them.
 */
export async function flushPendingMetrics(db: DbExecutor): Promise<void> {
  await sql`select crm_flush_customer_metrics()`.execute(db)
}

/** Recomputes one customer's metrics and, unless pinned by hand, its lifecycle stage. */
export async function refreshMetrics(db: DbExecutor, customerId: string): Promise<void> {
  await sql`select crm_refresh_customer_metrics(array[${customerId}]::uuid[])`.execute(db)
}

/**
 * Applies the lifecycle rules to every customer whose stage is not pinned by hand: time alone
 * moves customers to at_risk and churned, with no write to trigger it. Returns how many changed.
 */
export async function refreshAllLifecycleStages(db: DbExecutor): Promise<number> {
  const { rows } = await sql<{ changed: number }>`select crm_refresh_lifecycle() as changed`.execute(db)
  return rows[0]?.changed ?? 0
}
