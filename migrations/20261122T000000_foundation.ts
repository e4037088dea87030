import { type Kysely, sql } from 'kysely'

/**
 * Foundation: time-ordered ids, the audit trail captured by the database itself,
 * customers and their contact points.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create extension if not exists pg_trgm`.execute(db)

  // UUID v7 (RFC 9562): 48-bit unix milliseconds, then random bits. PostgreSQL 18 has uuidv7();
  // 15 does not, so the same layout is built from gen_random_uuid() (v4) by overlaying the time
  // and flipping the version nibble from 4 to 7.
  await sql`
    create function crm_uuid_v7() returns uuid language sql volatile parallel safe as $$
      select encode(
        set_bit(set_bit(
          overlay(uuid_send(gen_random_uuid())
                  placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                  from 1 for 6),
          52, 1), 53, 1), 'hex')::uuid
    $$`.execute(db)

  // The request context that the API sets with set_config(..., true) for each transaction.
  await sql`
    create function crm_context(key text) returns text language sql stable as $$
      select nullif(current_setting('crm.' || key, true), '')
    $$`.execute(db)

  await sql`
    create table audit_events (
      id uuid primary key default crm_uuid_v7(),
      occurred_at timestamptz not null default now(),
      actor text not null,
      request_id text,
      route text,
      action text not null check (action in ('insert', 'update', 'delete')),
      entity text not null,
      entity_id uuid not null,
      before jsonb,
      after jsonb,
      txid bigint not null default txid_current()
    )`.execute(db)
  await sql`create index audit_events_entity_idx on audit_events (entity, entity_id, occurred_at, id)`.execute(db)
  await sql`create index audit_events_actor_idx on audit_events (actor, occurred_at, id)`.execute(db)
  await sql`create index audit_events_occurred_idx on audit_events (occurred_at, id)`.execute(db)
  await sql`create index audit_events_request_idx on audit_events (request_id)`.execute(db)

  // One statement-level trigger per table and operation: transition tables let a bulk write
  // record all its rows with one INSERT ... SELECT instead of one trigger call per row.
  await sql`
    create function crm_audit_capture() returns trigger language plpgsql as $$
    declare
      v_actor text := coalesce(crm_context('actor'), 'db:' || session_user);
      v_request text := crm_context('request_id');
      v_route text := crm_context('route');
    begin
      if tg_op = 'INSERT' then
        insert into audit_events (actor, request_id, route, action, entity, entity_id, before, after)
        select v_actor, v_request, v_route, 'insert', tg_table_name, n.id, null, to_jsonb(n) from crm_new_rows n;
      elsif tg_op = 'UPDATE' then
        insert into audit_events (actor, request_id, route, action, entity, entity_id, before, after)
        select v_actor, v_request, v_route, 'update', tg_table_name, n.id, to_jsonb(o), to_jsonb(n)
        from crm_old_rows o join crm_new_rows n on n.id = o.id
        where to_jsonb(o) is distinct from to_jsonb(n);
      else
        insert into audit_events (actor, request_id, route, action, entity, entity_id, before, after)
        select v_actor, v_request, v_route, 'delete', tg_table_name, o.id, to_jsonb(o), null from crm_old_rows o;
      end if;
      return null;
    end $$`.execute(db)

  // Attaches the three audit triggers to a table; later migrations call it for their tables.
  await sql`
    create function crm_audit_attach(tbl regclass) returns void language plpgsql as $$
    begin
      execute format('create trigger audit_insert after insert on %s referencing new table as crm_new_rows
                      for each statement execute function crm_audit_capture()', tbl);
      execute format('create trigger audit_update after update on %s referencing old table as crm_old_rows new table as crm_new_rows
                      for each statement execute function crm_audit_capture()', tbl);
      execute format('create trigger audit_delete after delete on %s referencing old table as crm_old_rows
                      for each statement execute function crm_audit_capture()', tbl);
    end $$`.execute(db)

  // Keeps version and updated_at honest whatever code path writes the row.
  await sql`
    create function crm_touch() returns trigger language plpgsql as $$
    begin
      if new is distinct from old then
        new.version := old.version + 1;
        new.updated_at := now();
      end if;
      return new;
    end $$`.execute(db)

  // JSON Merge Patch (RFC 7396) of a jsonb value, so PATCH merges objects in one UPDATE
  // guarded by the version check instead of a read-modify-write in the application.
  await sql`
    create function crm_jsonb_merge_patch(target jsonb, patch jsonb) returns jsonb
    language plpgsql immutable parallel safe as $$
    declare
      k text;
      v jsonb;
      result jsonb;
    begin
      if patch is null or jsonb_typeof(patch) <> 'object' then
        return patch;
      end if;
      result := case when jsonb_typeof(target) = 'object' then target else '{}'::jsonb end;
      for k, v in select * from jsonb_each(patch) loop
        if jsonb_typeof(v) = 'null' then
          result := result - k;
        else
          result := jsonb_set(result, array[k], crm_jsonb_merge_patch(result -> k, v));
        end if;
      end loop;
      return result;
    end $$`.execute(db)

  await sql`
    create table customers (
      id uuid primary key default crm_uuid_v7(),
      external_ref text unique,
      name text not null,
      given_name text,
      family_name text,
      gender text check (gender in ('female', 'male', 'non_binary', 'other', 'unknown')),
      birthday date,
      occupation text,
      marital_status text check (marital_status in ('single', 'married', 'divorced', 'widowed', 'separated', 'domestic_partnership', 'unknown')),
      company text,
      job_title text,
      preferred_channel text check (preferred_channel in ('email', 'phone', 'sms', 'chat', 'mail', 'in_person', 'social')),
      acquisition_source text check (acquisition_source in ('organic', 'direct', 'referral', 'paid_search', 'paid_social', 'social', 'email', 'event', 'partner', 'store', 'call_center', 'import', 'other')),
      tags text[] not null default '{}',
      interests text[] not null default '{}',
      preferences jsonb not null default '{}',
      attributes jsonb not null default '{}',
      lifecycle_stage text not null default 'lead' check (lifecycle_stage in ('lead', 'first_purchase', 'repeat', 'loyal', 'at_risk', 'churned')),
      consent jsonb not null default '{}',
      credit_limit numeric(14, 2) check (credit_limit >= 0),
      credit_currency char(3),
      payment_terms_days integer check (payment_terms_days between 0 and 365),
      loyalty_points integer not null default 0 check (loyalty_points >= 0),
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      archived_at timestamptz,
      check ((credit_limit is null) = (credit_currency is null))
    )`.execute(db)
  await sql`create index customers_created_idx on customers (created_at, id)`.execute(db)
  await sql`create index customers_updated_idx on customers (updated_at, id)`.execute(db)
  await sql`create index customers_name_idx on customers (name, id)`.execute(db)
  await sql`create index customers_name_trgm_idx on customers using gin (name gin_trgm_ops)`.execute(db)
  await sql`create index customers_tags_idx on customers using gin (tags)`.execute(db)
  await sql`create index customers_lifecycle_idx on customers (lifecycle_stage, created_at, id)`.execute(db)
  await sql`create index customers_source_idx on customers (acquisition_source, created_at, id)`.execute(db)

  await sql`
    create table contact_points (
      id uuid primary key default crm_uuid_v7(),
      customer_id uuid not null references customers (id) on delete cascade,
      kind text not null check (kind in ('phone', 'email', 'address', 'social')),
      label text check (label in ('home', 'work', 'mobile', 'billing', 'shipping', 'other')),
      value text not null,
      value_normalized text not null,
      network text check (network in ('wechat', 'weibo', 'whatsapp', 'line', 'telegram', 'linkedin', 'x', 'facebook', 'instagram', 'tiktok', 'other')),
      address jsonb,
      is_primary boolean not null default false,
      verified boolean not null default false,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((kind = 'social') = (network is not null)),
      check ((kind = 'address') = (address is not null))
    )`.execute(db)
  await sql`create index contact_points_customer_idx on contact_points (customer_id, kind, created_at)`.execute(db)
  await sql`create unique index contact_points_one_primary_idx on contact_points (customer_id, kind) where is_primary`.execute(db)
  await sql`create unique index contact_points_primary_email_idx on contact_points (value_normalized) where kind = 'email' and is_primary`.execute(db)
  await sql`create index contact_points_value_trgm_idx on contact_points using gin (value_normalized gin_trgm_ops)`.execute(db)

  for (const table of ['customers', 'contact_points']) {
    await sql`create trigger touch before update on ${sql.table(table)} for each row execute function crm_touch()`.execute(db)
    await sql`select crm_audit_attach(${table}::regclass)`.execute(db)
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists contact_points, customers, audit_events`.execute(db)
  await sql`drop function if exists crm_jsonb_merge_patch(jsonb, jsonb), crm_touch(), crm_audit_attach(regclass), crm_audit_capture(), crm_context(text), crm_uuid_v7()`.execute(db)
}
