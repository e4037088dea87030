/**
 * Filter compiler at scale: loads N customers (BENCH_CUSTOMERS, default 100000) with orders,
 * items, interactions and feedback into a scratch database, then times count + first page of a
 * few representative filters through the same compiler and repository the API uses.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres BENCH_CUSTOMERS=100000 npx tsx bench/filters.ts
 *
 * Not a test: no assertions, timings are printed (and depend on the machine).
 */
import pg from 'pg'
import { sql } from 'kysely'
import { createDb } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { compileFilter } from '../src/modules/filters/filter.compile.js'
import { parseFilter } from '../src/modules/filters/filter.parse.js'
import { countCustomers, searchCustomers } from '../src/modules/customers/customers.repository.js'

const admin = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const n = Number(process.env.BENCH_CUSTOMERS ?? 100_000)
const name = `crm_bench_filters_${process.pid}`
const url = new URL(admin)
url.pathname = '/' + name

const adminClient = new pg.Client({ connectionString: admin })
await adminClient.connect()
await adminClient.query(`create database "${name}"`)
const db = createDb({ connectionString: url.toString(), max: 2, statementTimeoutMs: 600_000 })
try {
  await migrateToLatest(db)
  const t0 = Date.now()
  // Bulk load with triggers off: no audit rows, and metrics computed once afterwards (the metrics
  // function takes an id array, which suits a request's few customers, not 100k at once).
  await db.connection().execute(async (conn) => {
  await sql`set session_replication_role = replica`.execute(conn)
  await sql`insert into customers (name, tags, attributes, acquisition_source, created_at)
    select 'Customer ' || g, case when g % 10 = 0 then array['vip'] else '{}' end,
           jsonb_build_object('shoe_size', 35 + g % 11), (array['organic','referral','store','email'])[1 + g % 4],
           now() - (g % 700) * interval '1 day'
    from generate_series(1, ${n}) g`.execute(conn)
  await sql`insert into orders (customer_id, status, currency, subtotal, total, amount_paid, ordered_at)
    select c.id, (array['paid','fulfilled','pending','cancelled'])[1 + (k + h) % 4], 'CNY', 100, 100,
           case when (k + h) % 4 < 2 then 100 else 0 end, now() - ((h * 7 + k * 13) % 400) * interval '1 day'
    from (select id, abs(hashtext(id::text)) % 100000 as h from customers) c, generate_series(1, 1 + c.h % 5) k`.execute(conn)
  await sql`insert into order_items (order_id, position, product_name, category, sku, quantity, unit_price, line_total)
    select o.id, 0, 'Thing', (array['tea','cups','books'])[1 + abs(hashtext(o.id::text)) % 3], 'SKU-' || abs(hashtext(o.id::text)) % 50, 1, 100, 100 from orders o`.execute(conn)
  await sql`insert into interactions (customer_id, channel, occurred_at)
    select id, 'email', now() - (abs(hashtext(id::text)) % 500) * interval '1 day' from customers where abs(hashtext(id::text)) % 3 = 0`.execute(conn)
  await sql`insert into feedback (customer_id, kind, status, submitted_at)
    select id, 'complaint', (array['open','resolved'])[1 + abs(hashtext(id::text)) % 2], now() from customers where abs(hashtext(id::text)) % 20 = 0`.execute(conn)
  // Metrics as the triggers would have left them, computed set-wise in one pass.
  await sql`insert into customer_metrics (customer_id, order_count, first_order_at, last_order_at, interaction_count, last_interaction_at, open_complaints)
    select c.id, coalesce(o.n, 0), o.f, o.l, coalesce(i.n, 0), i.l, coalesce(fb.n, 0)
    from customers c
    left join (select customer_id, count(*) n, min(ordered_at) f, max(ordered_at) l from orders
               where archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded') group by 1) o on o.customer_id = c.id
    left join (select customer_id, count(*) n, max(occurred_at) l from interactions where archived_at is null group by 1) i on i.customer_id = c.id
    left join (select customer_id, count(*) n from feedback where kind = 'complaint' and status in ('open', 'in_progress') and archived_at is null group by 1) fb
      on fb.customer_id = c.id
    where o.customer_id is not null or i.customer_id is not null or fb.customer_id is not null`.execute(conn)
  await sql`insert into customer_spend (customer_id, currency, order_count, total_spent)
    select customer_id, currency, count(*), sum(total - amount_refunded) from orders
    where archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded') group by 1, 2`.execute(conn)
  await sql`set session_replication_role = origin`.execute(conn)
  })
  await sql`analyze`.execute(db)
  process.stdout.write(`loaded ${n} customers in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`)

  const filters: Record<string, unknown> = {
    'tag vip': { field: 'tags', op: 'has_any', value: ['vip'] },
    'order_count >= 3': { field: 'order_count', op: 'gte', value: 3 },
    '3+ paid orders in 90 days': { orders: { min_count: 3, status: ['paid'], since: { last_n_days: 90 } } },
    'open complaint': { feedback: { open: true } },
    'no interaction since 2026-01-01': { interactions: { since: '2026-01-01', max_count: 0 } },
    'bought tea': { orders: { category: 'tea' } },
    'vip and recency <= 30 and not shoe 40': {
      and: [{ field: 'tags', op: 'has_any', value: ['vip'] }, { field: 'recency_days', op: 'lte', value: 30 }, { not: { field: 'attributes.shoe_size', op: 'eq', value: 40 } }],
    },
  }
  for (const [label, raw] of Object.entries(filters)) {
    const where = compileFilter(parseFilter(raw, '/filter'))
    let t = Date.now()
    const count = await countCustomers(db, where)
    const countMs = Date.now() - t
    t = Date.now()
    await searchCustomers(db, where, { keys: [{ field: 'created_at', desc: true, type: 'timestamp' }], after: undefined, limit: 50 })
    const pageMs = Date.now() - t
    process.stdout.write(`${label.padEnd(40)} count=${String(count).padStart(8)}  count ${String(countMs).padStart(6)} ms  first page ${String(pageMs).padStart(6)} ms\n`)
  }
} finally {
  await db.destroy()
  await adminClient.query(`drop database if exists "${name}" with (force)`)
  await adminClient.end()
}
