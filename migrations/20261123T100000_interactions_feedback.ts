import { type Kysely, sql } from 'kysely'

/**
 * Interactions (calls, emails, meetings, chats, visits, events, social) and feedback (surveys,
 * complaints with their resolution workflow, suggestions, reviews, praise), and customer metrics
 * extended to them: interaction count and last interaction, open complaints, latest CSAT and NPS.
 *
 * Metrics stay exact the same way as for orders: statement-level triggers recompute, from the raw
 * rows and in the same transaction, the metrics of exactly the customers a statement touched.
 * Open complaints are complaints in status open or in_progress; the latest CSAT/NPS is the score of
 * the most recently submitted survey of that type. Archived rows count for nothing.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table interactions (
      id uuid primary key default crm_uuid_v7(),
      external_ref text unique,
      customer_id uuid not null references customers (id),
      channel text not null check (channel in ('phone', 'email', 'sms', 'chat', 'meeting', 'visit', 'event', 'social', 'other')),
      direction text not null default 'inbound' check (direction in ('inbound', 'outbound', 'internal')),
      subject text,
      notes text,
      occurred_at timestamptz not null default now(),
      duration_seconds integer check (duration_seconds between 0 and 604800),
      outcome text check (outcome in ('completed', 'no_answer', 'voicemail', 'left_message', 'follow_up', 'resolved', 'escalated', 'not_interested', 'other')),
      agent text,
      follow_up_on date,
      follow_up_done boolean not null default false,
      order_id uuid references orders (id),
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      archived_at timestamptz
    )`.execute(db)
  await sql`create index interactions_customer_occurred_idx on interactions (customer_id, occurred_at, id)`.execute(db)
  await sql`create index interactions_occurred_idx on interactions (occurred_at, id)`.execute(db)
  await sql`create index interactions_channel_occurred_idx on interactions (channel, occurred_at, id)`.execute(db)
  await sql`create index interactions_order_idx on interactions (order_id) where order_id is not null`.execute(db)
  // Follow-ups still to do: a small, hot set.
  await sql`
    create index interactions_follow_up_due_idx on interactions (follow_up_on, id)
    where follow_up_on is not null and not follow_up_done and archived_at is null`.execute(db)

  await sql`
    create table feedback (
      id uuid primary key default crm_uuid_v7(),
      external_ref text unique,
      customer_id uuid not null references customers (id),
      kind text not null check (kind in ('survey', 'complaint', 'suggestion', 'review', 'praise')),
      survey_type text check (survey_type in ('csat', 'nps')),
      score integer,
      subject text,
      body text,
      channel text check (channel in ('phone', 'email', 'sms', 'chat', 'meeting', 'visit', 'event', 'social', 'web', 'app', 'store', 'other')),
      order_id uuid references orders (id),
      interaction_id uuid references interactions (id),
      status text check (status in ('open', 'in_progress', 'resolved', 'closed')),
      priority text check (priority in ('low', 'normal', 'high', 'urgent')),
      assignee text,
      sla_due_at timestamptz,
      resolution_note text,
      resolved_at timestamptz,
      submitted_at timestamptz not null default now(),
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      archived_at timestamptz,
      check ((kind = 'survey') = (survey_type is not null)),
      check (kind <> 'survey' or score is not null),
      check (survey_type <> 'csat' or score between 1 and 5),
      check (survey_type <> 'nps' or score between 0 and 10),
      check (kind <> 'review' or score is null or score between 1 and 5),
      check (kind in ('survey', 'review') or score is null),
      check ((kind = 'complaint') = (status is not null)),
      check (kind = 'complaint' or (priority is null and sla_due_at is null and resolved_at is null and resolution_note is null))
    )`.execute(db)
  await sql`create index feedback_customer_submitted_idx on feedback (customer_id, submitted_at, id)`.execute(db)
  await sql`create index feedback_submitted_idx on feedback (submitted_at, id)`.execute(db)
  await sql`create index feedback_kind_submitted_idx on feedback (kind, submitted_at, id)`.execute(db)
  await sql`create index feedback_order_idx on feedback (order_id) where order_id is not null`.execute(db)
  await sql`create index feedback_interaction_idx on feedback (interaction_id) where interaction_id is not null`.execute(db)
  // Complaints still open, by SLA: the queue a service desk works from.
  await sql`
    create index feedback_open_complaints_idx on feedback (sla_due_at, id)
    where kind = 'complaint' and status in ('open', 'in_progress') and archived_at is null`.execute(db)

  for (const table of ['interactions', 'feedback']) {
    await sql`create trigger touch before update on ${sql.table(table)} for each row execute function crm_touch()`.execute(db)
    await sql`select crm_audit_attach(${table}::regclass)`.execute(db)
  }

  await sql`
    create or replace function crm_refresh_customer_metrics(ids uuid[]) returns void language sql as $$
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

      update customers c
      set lifecycle_stage = crm_lifecycle_stage(m.order_count, m.last_order_at, now())
      from customer_metrics m
      where m.customer_id = c.id and c.id = any(ids) and not c.lifecycle_stage_manual
        and c.lifecycle_stage is distinct from crm_lifecycle_stage(m.order_count, m.last_order_at, now());
    $$`.execute(db)

  for (const table of ['interactions', 'feedback']) {
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
  await sql`drop table if exists feedback, interactions`.execute(db)
  // The metrics function as the customer_metrics migration left it: orders only.
  await sql`
    create or replace function crm_refresh_customer_metrics(ids uuid[]) returns void language sql as $$
      insert into customer_metrics as m (customer_id, order_count, first_order_at, last_order_at, interaction_count,
                                         last_interaction_at, open_complaints, latest_csat, latest_nps, refreshed_at)
      select c.id, o.n, o.first_at, o.last_at, 0, null, 0, null, null, now()
      from customers c
      cross join lateral (
        select count(*)::int as n, min(ordered_at) as first_at, max(ordered_at) as last_at
        from orders where customer_id = c.id and archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')
      ) o
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
}
