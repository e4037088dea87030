import { type Kysely, sql } from 'kysely'

/**
 * Customer metrics and the derived lifecycle stage, kept exact by statement-level triggers:
 * any write to orders (and, from the interactions/feedback migration on, interactions and feedback) recomputes, from the raw rows and in the same
 * transaction, the metrics of exactly the customers it touched. Recomputing (rather than
 * adding deltas) cannot drift, and a customer has few enough rows for it to be cheap.
 *
 * Counted as purchases: orders with status paid, fulfilled or partially_refunded that are not
 * archived. Spend is kept per currency (no exchange rates are invented): total minus refunds.
 *
 * Lifecycle rules (unless set by hand, see customers.lifecycle_stage_manual):
 *   no purchase → lead; last purchase over 180 days ago → churned; over 90 days → at_risk;
 *   5 or more purchases → loyal; 2–4 → repeat; 1 → first_purchase.
 * The recency rules depend on the clock, so crm_refresh_lifecycle() re-evaluates every customer
 * and runs on a schedule (see src/server.ts).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table customers add column lifecycle_stage_manual boolean not null default false`.execute(db)

  await sql`
    create table customer_metrics (
      customer_id uuid primary key references customers (id) on delete cascade,
      order_count integer not null default 0,
      first_order_at timestamptz,
      last_order_at timestamptz,
      interaction_count integer not null default 0,
      last_interaction_at timestamptz,
      open_complaints integer not null default 0,
      latest_csat integer,
      latest_nps integer,
      refreshed_at timestamptz not null default now()
    )`.execute(db)
  await sql`create index customer_metrics_last_order_idx on customer_metrics (last_order_at)`.execute(db)

  await sql`
    create table customer_spend (
      customer_id uuid not null references customers (id) on delete cascade,
      currency char(3) not null,
      order_count integer not null,
      total_spent numeric(16, 2) not null,
      primary key (customer_id, currency)
    )`.execute(db)

  await sql`
    create function crm_lifecycle_stage(order_count integer, last_order_at timestamptz, as_of timestamptz)
    returns text language sql immutable parallel safe as $$
      select case
        when coalesce(order_count, 0) = 0 then 'lead'
        when last_order_at < as_of - interval '180 days' then 'churned'
        when last_order_at < as_of - interval '90 days' then 'at_risk'
        when order_count >= 5 then 'loyal'
        when order_count >= 2 then 'repeat'
        else 'first_purchase'
      end
    $$`.execute(db)

  await sql`
    create function crm_refresh_customer_metrics(ids uuid[]) returns void language sql as $$
      insert into customer_metrics as m (customer_id, order_count, first_order_at, last_order_at, interaction_count,
                                         last_interaction_at, open_complaints, latest_csat, latest_nps, refreshed_at)
      select c.id, o.n, o.first_at, o.last_at, i.n, i.last_at, f.open_complaints, f.csat, f.nps, now()
      from customers c
      cross join lateral (
        select count(*)::int as n, min(ordered_at) as first_at, max(ordered_at) as last_at
        from orders where customer_id = c.id and archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')
      ) o
      cross join lateral (select 0 as n, null::timestamptz as last_at) i
      cross join lateral (select 0 as open_complaints, null::int as csat, null::int as nps) f
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

      update customers c
      set lifecycle_stage = crm_lifecycle_stage(m.order_count, m.last_order_at, now())
      from customer_metrics m
      where m.customer_id = c.id and c.id = any(ids) and not c.lifecycle_stage_manual
        and c.lifecycle_stage is distinct from crm_lifecycle_stage(m.order_count, m.last_order_at, now());
    $$`.execute(db)

  // Time moves customers from repeat to at_risk to churned with no write at all: this sweep,
  // run on a schedule, applies the rules to everyone. Returns how many stages changed.
  await sql`
    create function crm_refresh_lifecycle() returns integer language sql as $$
      with changed as (
        update customers c
        set lifecycle_stage = s.stage
        from (
          select c2.id, crm_lifecycle_stage(coalesce(m.order_count, 0), m.last_order_at, now()) as stage
          from customers c2 left join customer_metrics m on m.customer_id = c2.id
          where not c2.lifecycle_stage_manual
        ) s
        where s.id = c.id and c.lifecycle_stage is distinct from s.stage
        returning 1
      )
      select count(*)::int from changed
    $$`.execute(db)

  await sql`
    create function crm_metrics_capture() returns trigger language plpgsql as $$
    begin
      if tg_op = 'INSERT' then
        perform crm_refresh_customer_metrics(array(select distinct customer_id from crm_new_rows));
      elsif tg_op = 'UPDATE' then
        perform crm_refresh_customer_metrics(array(select customer_id from crm_new_rows union select customer_id from crm_old_rows));
      else
        perform crm_refresh_customer_metrics(array(select distinct customer_id from crm_old_rows));
      end if;
      return null;
    end $$`.execute(db)

  for (const table of ['orders']) {
    await sql.raw(`
      create trigger metrics_insert after insert on ${table} referencing new table as crm_new_rows
        for each statement execute function crm_metrics_capture();
      create trigger metrics_update after update on ${table} referencing old table as crm_old_rows new table as crm_new_rows
        for each statement execute function crm_metrics_capture();
      create trigger metrics_delete after delete on ${table} referencing old table as crm_old_rows
        for each statement execute function crm_metrics_capture();
    `).execute(db)
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['orders']) {
    await sql.raw(`drop trigger if exists metrics_insert on ${table}; drop trigger if exists metrics_update on ${table}; drop trigger if exists metrics_delete on ${table};`).execute(db)
  }
  await sql`drop function if exists crm_metrics_capture(), crm_refresh_lifecycle(), crm_refresh_customer_metrics(uuid[]), crm_lifecycle_stage(integer, timestamptz, timestamptz)`.execute(db)
  await sql`drop table if exists customer_spend, customer_metrics`.execute(db)
  await sql`alter table customers drop column if exists lifecycle_stage_manual`.execute(db)
}
