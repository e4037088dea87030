import { type Kysely, sql } from 'kysely'

/**
 * What counts as a purchase, written once for SQL: crm_purchase_statuses() (IMMUTABLE, so the
 * planner folds it to a constant array). The metrics refresh and the purchase history read it;
 * TypeScript reads the same list from src/lib/purchase-statuses.ts (PURCHASE_STATUSES), and
 * test/db/purchase-statuses.test.ts holds the two, and the predicate of the partial index
 * orders_purchases_ordered_idx (an index predicate must name its statuses literally), equal.
 * The two functions are redefined with the same bodies, the status list replaced by the call.
 */
const PURCHASE_STATUSES = ['paid', 'fulfilled', 'partially_refunded']
const LITERAL_LIST = `status in (${PURCHASE_STATUSES.map((s) => `'${s}'`).join(', ')})`
const FUNCTION_CALL = 'status = any(crm_purchase_statuses())'

/** The two functions' bodies (as the purchase_history migration left them), with `purchase` as their purchase test. */
const redefinitions = (purchase: string) => [
  `
    create or replace function crm_refresh_customer_metrics(ids uuid[])
     RETURNS void
     LANGUAGE sql
    AS $function$
          insert into customer_metrics as m (customer_id, order_count, first_order_at, last_order_at, interaction_count,
                                             last_interaction_at, open_complaints, latest_csat, latest_nps, refreshed_at)
          select c.id, o.n, o.first_at, o.last_at, i.n, i.last_at, f.open_complaints, f.csat, f.nps, now()
          from customers c
          cross join lateral (
            select count(*)::int as n, min(ordered_at) as first_at, max(ordered_at) as last_at
            from orders where customer_id = c.id and archived_at is null and ${purchase}
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
          where customer_id = any(ids) and archived_at is null and ${purchase}
          group by customer_id, currency;
    
          select crm_refresh_purchase_history(ids);
    
          update customers c
          set lifecycle_stage = crm_lifecycle_stage(m.order_count, m.last_order_at, now())
          from customer_metrics m
          where m.customer_id = c.id and c.id = any(ids) and not c.lifecycle_stage_manual
            and c.lifecycle_stage is distinct from crm_lifecycle_stage(m.order_count, m.last_order_at, now());
        $function$`,
  `
    create or replace function crm_refresh_purchase_history(ids uuid[])
     RETURNS void
     LANGUAGE plpgsql
    AS $function$
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
            where o.archived_at is null and o.${purchase}
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
            where o.archived_at is null and o.${purchase}
              and o.customer_id = any(ids)
          ) r
          group by r.customer_id, r.currency;
        end $function$`,
]

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function crm_purchase_statuses() returns text[] language sql immutable parallel safe as $$
      select ${sql.lit(`{${PURCHASE_STATUSES.join(',')}}`)}::text[]
    $$`.execute(db)
  await sql`comment on function crm_purchase_statuses() is 'Order statuses that count as a purchase (with archived_at is null): metrics, purchase history, lifecycle, analytics, filters'`.execute(db)
  for (const definition of redefinitions(FUNCTION_CALL)) await sql.raw(definition).execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const definition of redefinitions(LITERAL_LIST)) await sql.raw(definition).execute(db)
  await sql`drop function crm_purchase_statuses()`.execute(db)
}
