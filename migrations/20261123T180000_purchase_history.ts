import { type Kysely, sql } from 'kysely'

/**
 * Each customer's purchases, kept next to the customer metrics as sorted arrays, so that the
 * analytics (RFM, lifetime value, lifecycle, churn risk, cohorts) and the segment conditions on
 * purchase counts read one or two short rows per customer instead of aggregating ~10 orders per
 * customer (10M orders at 1M customers) on every request.
 *
 * A purchase is what the customer-metrics migration counts: an order with status paid, fulfilled
 * or partially_refunded that is not archived; its net amount is total - amount_refunded.
 *
 *  - customer_purchases (one row per customer with a purchase): ordered_at = every purchase's
 *    time, ascending (ties by order id), in any currency; gap_median_days / gap_mean_days = the
 *    median (percentile_cont) and mean of the days between consecutive purchases, over all of
 *    them (null with fewer than two).
 *  - customer_currency_purchases (one row per customer and currency): ordered_at likewise, and
 *    cum_net[i] = the net amount of the first i - 1 purchases (cum_net[1] = 0), so cum_net has one
 *    element more than ordered_at.
 *
 * Exact for any as_of and window, without a stale snapshot: width_bucket(t, ordered_at) is a
 * binary search returning how many purchases happened at or before t, so purchases within
 * (start, end] number width_bucket(end) - width_bucket(start), their net sum is
 * cum_net[width_bucket(end) + 1] - cum_net[width_bucket(start) + 1], and the last of them is
 * ordered_at[width_bucket(end)]. The gap statistics cover all purchases: a query may use them only
 * when its window holds all of a customer's purchases, and computes them from the array otherwise.
 *
 * Maintained by crm_refresh_customer_metrics (restated below with the new step), so the rows
 * change in the writing transaction, at commit, like customer_metrics (see the deferred metrics
 * migration). crm_refresh_purchase_history(null) rebuilds every customer set-wise (this
 * migration's backfill and the seed use it).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table customer_purchases (
      customer_id uuid primary key references customers (id) on delete cascade,
      ordered_at timestamptz[] not null,
      gap_median_days float8,
      gap_mean_days float8
    )`.execute(db)
  await sql`
    create table customer_currency_purchases (
      customer_id uuid not null references customers (id) on delete cascade,
      currency char(3) not null,
      ordered_at timestamptz[] not null,
      cum_net numeric[] not null,
      primary key (customer_id, currency)
    )`.execute(db)
  // The analytics leave archived customers out by an anti-join against this (small) index
  // rather than a join with every customer row.
  await sql`create index customers_archived_idx on customers (id) where archived_at is not null`.execute(db)

  await sql`
    create function crm_refresh_purchase_history(ids uuid[]) returns void language plpgsql as $$
    begin
      if ids is null then
        -- Every customer: the array then filters a sequential scan through a hash (a constant
        -- array in the custom plan), while a few ids use the orders (customer_id, …) index.
        truncate customer_purchases, customer_currency_purchases;
        ids := array(select id from customers);
      else
        delete from customer_purchases where customer_id = any(ids);
        delete from customer_currency_purchases where customer_id = any(ids);
      end if;

      insert into customer_purchases (customer_id, ordered_at, gap_median_days, gap_mean_days)
      select g.customer_id, array_agg(g.ordered_at order by g.ordered_at, g.id),
             percentile_cont(0.5) within group (order by g.gap_days) filter (where g.gap_days is not null),
             avg(g.gap_days)
      from (
        select o.customer_id, o.id, o.ordered_at,
               extract(epoch from (o.ordered_at - lag(o.ordered_at) over (partition by o.customer_id order by o.ordered_at, o.id)))::float8 / 86400 as gap_days
        from orders o
        where o.archived_at is null and o.status in ('paid', 'fulfilled', 'partially_refunded')
          and o.customer_id = any(ids)
      ) g
      group by g.customer_id;

      insert into customer_currency_purchases (customer_id, currency, ordered_at, cum_net)
      select r.customer_id, r.currency, array_agg(r.ordered_at order by r.ordered_at, r.id),
             array[0::numeric] || array_agg(r.cum_net order by r.ordered_at, r.id)
      from (
        select o.customer_id, o.currency, o.id, o.ordered_at,
               sum(o.total - o.amount_refunded) over (partition by o.customer_id, o.currency order by o.ordered_at, o.id rows unbounded preceding) as cum_net
        from orders o
        where o.archived_at is null and o.status in ('paid', 'fulfilled', 'partially_refunded')
          and o.customer_id = any(ids)
      ) r
      group by r.customer_id, r.currency;
    end $$`.execute(db)

  await sql`create or replace function crm_refresh_customer_metrics(ids uuid[]) returns void language sql as ${sql.raw(refreshBody(true))}`.execute(db)

  // Backfill: every customer's history, set-wise (one pass over the purchases). Writers of orders
  // wait meanwhile (about 2 minutes for 10M orders): their commit-time refresh would still run the
  // old function, which this transaction replaces only when it commits, and leave those customers'
  // histories stale.
  await sql`lock table orders in share mode`.execute(db)
  await sql`set local work_mem = '256MB'`.execute(db)
  await sql`select crm_refresh_purchase_history(null)`.execute(db)
  await sql`analyze customer_purchases, customer_currency_purchases`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`create or replace function crm_refresh_customer_metrics(ids uuid[]) returns void language sql as ${sql.raw(refreshBody(false))}`.execute(db)
  await sql`drop function if exists crm_refresh_purchase_history(uuid[])`.execute(db)
  await sql`drop index if exists customers_archived_idx`.execute(db)
  await sql`drop table if exists customer_currency_purchases, customer_purchases`.execute(db)
}

/**
 * crm_refresh_customer_metrics as the interactions/feedback migration defined it, with (when
 * `purchases`) the purchase history refreshed for the same customers before the lifecycle update.
 */
function refreshBody(purchases: boolean): string {
  return `$$
      insert into customer_metrics as m (customer_id, order_count, first_order_at, last_order_at, interaction_count,
                                         last_interaction_at, open_complaints, latest_csat, latest_nps, refreshed_at)
      select c.id, o.n, o.first_at, o.last_at, i.n, i.last_at, f.open_complaints, f.csat, f.nps, now()
      from customers c
      cross join lateral (
        select count(*)::int as n, min(ordered_at) as first_at, max(ordered_at) as last_at
        from orders where customer_id = c.id and archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')
      ) o
      cross join lateral (
        select count(*)::int as n, max(occurred_at) as last_at
        from interactions where customer_id = c.id and archived_at is null
      ) i
      cross join lateral (
        select
          (select count(*)::int from feedback
            where customer_id = c.id and archived_at is null and kind = 'complaint' and status in ('open', 'in_progress')) as open_complaints,
          (select score from feedback
            where customer_id = c.id and archived_at is null and survey_type = 'csat'
            order by submitted_at desc, id desc limit 1) as csat,
          (select score from feedback
            where customer_id = c.id and archived_at is null and survey_type = 'nps'
            order by submitted_at desc, id desc limit 1) as nps
      ) f
      where c.id = any(ids)
      on conflict (customer_id) do update set
        order_count = excluded.order_count, first_order_at = excluded.first_order_at, last_order_at = excluded.last_order_at,
        interaction_count = excluded.interaction_count, last_interaction_at = excluded.last_interaction_at,
        open_complaints = excluded.open_complaints, latest_csat = excluded.latest_csat, latest_nps = excluded.latest_nps,
        refreshed_at = excluded.refreshed_at;

      delete from customer_spend where customer_id = any(ids);
      insert into customer_spend (customer_id, currency, order_count, total_spent)
      select customer_id, currency, count(*)::int, sum(total - amount_refunded)
      from orders
      where customer_id = any(ids) and archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')
      group by customer_id, currency;
${purchases ? '\n      select crm_refresh_purchase_history(ids);\n' : ''}
      update customers c
      set lifecycle_stage = crm_lifecycle_stage(m.order_count, m.last_order_at, now())
      from customer_metrics m
      where m.customer_id = c.id and c.id = any(ids) and not c.lifecycle_stage_manual
        and c.lifecycle_stage is distinct from crm_lifecycle_stage(m.order_count, m.last_order_at, now());
    $$`
}
