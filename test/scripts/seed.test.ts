import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../helpers/app.js'
import { SEED_TABLES, SeedGenerator, type Lines } from '../../scripts/seed/generate.js'
import { seedDatabase } from '../../scripts/seed/load.js'

const ctx = await setup()
const admin = await ctx.auth()
const N = 200

// One customer made through the API before the seed: the seed continues after it and leaves it intact.
const before = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Existing', contact_points: [{ kind: 'email', value: 'x@example.com' }] } })
const existingId = before.json().id as string

const result = await seedDatabase({ url: ctx.url, customers: N, seed: 7, asOf: new Date('2026-11-01T00:00:00Z') })

const one = async <T>(query: ReturnType<typeof sql<T>>) => (await query.execute(ctx.db)).rows[0]!

t.test('row counts match what the seed reports, with the skewed averages asked for', async (t) => {
  t.equal(result.rows.customers, N)
  for (const table of SEED_TABLES) {
    const extra = table === 'customers' || table === 'contact_points' ? 1 : 0
    t.equal(await ctx.count(table), result.rows[table] + extra, `${table} count`)
  }
  t.equal(result.totalRows, Object.values(result.rows).reduce((a, b) => a + b, 0))
  t.ok(result.rows.orders > N * 4 && result.rows.orders < N * 25, `about 10 orders per customer (${result.rows.orders / N})`)
  t.ok(result.rows.interactions > N * 8 && result.rows.interactions < N * 45, `about 20 interactions per customer (${result.rows.interactions / N})`)
  t.ok(result.rows.feedback > N * 0.5 && result.rows.feedback < N * 2, `about 1 feedback per customer (${result.rows.feedback / N})`)
  t.ok(result.rows.order_items >= result.rows.orders, 'every order has items')
  const skew = await one(sql<{ zero: number; once: number; heavy: number }>`
    select count(*) filter (where n = 0)::int as zero, count(*) filter (where n = 1)::int as once, count(*) filter (where n >= 30)::int as heavy
    from (select c.id, count(o.id) as n from customers c left join orders o on o.customer_id = c.id where c.id <> ${existingId} group by c.id) x`)
  t.ok(skew.zero > 0 && skew.once > skew.heavy && skew.heavy > 0, `Pareto-like: ${JSON.stringify(skew)}`)
  const scripts = await one(sql<{ han: number; cyrillic: number; arabic: number; latin: number }>`
    select count(*) filter (where name ~ '[一-龥]')::int as han, count(*) filter (where name ~ '[А-я]')::int as cyrillic,
           count(*) filter (where name ~ '[؀-ۿ]')::int as arabic, count(*) filter (where name ~ '^[A-Za-z ]+$')::int as latin
    from customers`)
  t.ok(scripts.han > 0 && scripts.cyrillic > 0 && scripts.arabic > 0 && scripts.latin > 0, `names in several scripts: ${JSON.stringify(scripts)}`)
})

t.test('referential integrity holds although the load bypassed the foreign-key triggers', async (t) => {
  const orphans = await one(sql<Record<string, number>>`
    select
      (select count(*)::int from contact_points x where not exists (select 1 from customers c where c.id = x.customer_id)) as contact_points,
      (select count(*)::int from orders x where not exists (select 1 from customers c where c.id = x.customer_id)) as orders,
      (select count(*)::int from order_items x where not exists (select 1 from orders o where o.id = x.order_id)) as order_items,
      (select count(*)::int from order_payments x where not exists (select 1 from orders o where o.id = x.order_id)) as order_payments,
      (select count(*)::int from interactions x where not exists (select 1 from customers c where c.id = x.customer_id)) as interactions,
      (select count(*)::int from interactions x where x.order_id is not null
         and not exists (select 1 from orders o where o.id = x.order_id and o.customer_id = x.customer_id)) as interaction_orders,
      (select count(*)::int from feedback x where not exists (select 1 from customers c where c.id = x.customer_id)) as feedback,
      (select count(*)::int from feedback x where x.order_id is not null
         and not exists (select 1 from orders o where o.id = x.order_id and o.customer_id = x.customer_id)) as feedback_orders,
      (select count(*)::int from feedback x where x.interaction_id is not null
         and not exists (select 1 from interactions i where i.id = x.interaction_id and i.customer_id = x.customer_id)) as feedback_interactions`)
  t.same(orphans, Object.fromEntries(Object.keys(orphans).map((k) => [k, 0])))
  const primaries = await one(sql<{ without: number; dupes: number }>`
    select (select count(*)::int from customers c where not exists
              (select 1 from contact_points p where p.customer_id = c.id and p.kind = 'email' and p.is_primary)) as without,
           (select count(*)::int - count(distinct value_normalized)::int from contact_points where kind = 'email' and is_primary) as dupes`)
  t.same(primaries, { without: 0, dupes: 0 }, 'every customer has one unique primary email')
})

t.test('the ledger is consistent: items sum to the subtotal, payments and refunds to the order amounts', async (t) => {
  const bad = await one(sql<{ subtotal: number; paid: number; refunded: number }>`
    select
      count(*) filter (where o.subtotal <> coalesce(i.gross, 0))::int as subtotal,
      count(*) filter (where o.amount_paid <> coalesce(p.paid, 0))::int as paid,
      count(*) filter (where o.amount_refunded <> coalesce(p.refunded, 0))::int as refunded
    from orders o
    left join (select order_id, sum(quantity * unit_price) as gross from order_items group by order_id) i on i.order_id = o.id
    left join (select order_id, sum(amount) filter (where kind = 'payment') as paid, sum(amount) filter (where kind = 'refund') as refunded
               from order_payments group by order_id) p on p.order_id = o.id`)
  t.same(bad, { subtotal: 0, paid: 0, refunded: 0 })
  const seq = await one(sql<{ next: string; max: string }>`
    select (select case when is_called then last_value + 1 else last_value end from order_number_seq)::text as next,
           (select max(substring(order_number from 5)::bigint) from orders)::text as max`)
  t.ok(BigInt(seq.next) > BigInt(seq.max), 'order_number_seq continues after the seeded order numbers')
})

t.test('metrics, spend and lifecycle equal a recomputation by the triggers\' own function', async (t) => {
  const snapshot = async () => ({
    metrics: (await sql`select customer_id, order_count, first_order_at, last_order_at, interaction_count, last_interaction_at,
                               open_complaints, latest_csat, latest_nps from customer_metrics order by customer_id`.execute(ctx.db)).rows,
    spend: (await sql`select * from customer_spend order by customer_id, currency`.execute(ctx.db)).rows,
    stages: (await sql`select id, lifecycle_stage from customers order by id`.execute(ctx.db)).rows,
  })
  const seeded = await snapshot()
  t.equal(seeded.metrics.length, N + 1, 'every customer has a metrics row')
  t.ok(seeded.spend.length > 0)
  t.ok(new Set(seeded.stages.map((s) => (s as { lifecycle_stage: string }).lifecycle_stage)).size >= 4, 'customers spread over lifecycle stages')
  await sql`select crm_refresh_customer_metrics(array(select id from customers))`.execute(ctx.db)
  const recomputed = await snapshot()
  t.same(seeded.metrics, recomputed.metrics)
  t.same(seeded.spend, recomputed.spend)
  t.same(seeded.stages, recomputed.stages)
})

t.test('seeded rows have no audit rows; the row made through the API keeps its own', async (t) => {
  const r = await one(sql<{ seeded: number; existing: number }>`
    select count(*) filter (where entity_id <> ${existingId} and entity = 'customers')::int as seeded,
           count(*) filter (where entity_id = ${existingId})::int as existing from audit_events`)
  t.same(r, { seeded: 0, existing: 1 })
})

t.test('the API reads seeded customers, their metrics and their timeline', async (t) => {
  const heavy = await one(sql<{ customer_id: string; order_count: number; interaction_count: number }>`
    select customer_id, order_count, interaction_count from customer_metrics order by order_count desc, customer_id limit 1`)
  const res = await ctx.app.inject({ method: 'GET', url: `/v1/customers/${heavy.customer_id}?include=metrics,contact_points`, headers: admin })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().metrics.order_count, heavy.order_count)
  t.equal(res.json().metrics.interaction_count, heavy.interaction_count)
  t.match(res.json().primary_email, /@/)
  const timeline = await ctx.app.inject({ method: 'GET', url: `/v1/customers/${heavy.customer_id}/timeline?limit=20`, headers: admin })
  t.equal(timeline.statusCode, 200, timeline.body)
  t.equal(timeline.json().data.length, 20)
  t.type(timeline.json().next_cursor, 'string')
})

t.test('the same seed generates the same data; another seed other data', async (t) => {
  const gen = (seed: number) => {
    const g = new SeedGenerator({ seed, startIndex: 0, total: 20, firstOrderNumber: 1, asOfMs: Date.parse('2026-11-01T00:00:00Z') })
    const lines = Object.fromEntries(SEED_TABLES.map((x) => [x, []])) as unknown as Lines
    for (let i = 0; i < 20; i++) g.customer(i, lines)
    return lines
  }
  t.same(gen(3), gen(3))
  t.not(gen(3).customers.join('\n'), gen(4).customers.join('\n'))
})
