import t from 'tap'
import { sql } from 'kysely'
import { createTestDatabase } from '../helpers/db.js'
import { PURCHASE_STATUSES } from '../../src/lib/purchase-statuses.js'
import { ORDER_STATUSES } from '../../src/modules/orders/orders.schemas.js'

/**
 * One list of purchase statuses: the TypeScript constant, the SQL function the metrics and
 * purchase history read, and the partial index whose predicate has to name them literally.
 */
const database = await createTestDatabase()
t.teardown(() => database.drop())
const { ownerDb: db } = database

t.test('PURCHASE_STATUSES equals crm_purchase_statuses()', async (t) => {
  const { rows } = await sql<{ statuses: string[] }>`select crm_purchase_statuses() as statuses`.execute(db)
  t.same(rows[0]!.statuses, [...PURCHASE_STATUSES])
  t.ok(PURCHASE_STATUSES.every((s) => (ORDER_STATUSES as readonly string[]).includes(s)), 'every purchase status is an order status')
})

t.test('the partial index over purchases names exactly those statuses', async (t) => {
  const { rows } = await sql<{ predicate: string }>`
    select pg_get_expr(i.indpred, i.indrelid) as predicate from pg_index i where i.indexrelid = 'orders_purchases_ordered_idx'::regclass`.execute(db)
  const named = [...rows[0]!.predicate.matchAll(/'([a-z_]+)'::text/g)].map((m) => m[1])
  t.same(named, [...PURCHASE_STATUSES], rows[0]!.predicate)
})

t.test('no other function in the schema writes the statuses out', async (t) => {
  // Comments may name a status (the change feed's crm_event_types explains refunds); code may not.
  const { rows } = await sql<{ name: string }>`
    select p.proname as name from pg_proc p
    where p.pronamespace = 'public'::regnamespace and p.proname <> 'crm_purchase_statuses'
      and regexp_replace(p.prosrc, '--[^\n]*', '', 'g') like '%partially_refunded%'`.execute(db)
  t.same(rows, [])
})

t.test('a query through crm_purchase_statuses() still uses the partial index', async (t) => {
  await db.transaction().execute(async (trx) => {
    await sql`set local enable_seqscan = off`.execute(trx)
    const { rows } = await sql<{ 'QUERY PLAN': string }>`
      explain (costs off) select ordered_at, total from orders
      where archived_at is null and status = any(crm_purchase_statuses()) and ordered_at < now()`.execute(trx)
    t.match(rows.map((r) => r['QUERY PLAN']).join('\n'), /orders_purchases_ordered_idx/)
  })
})
