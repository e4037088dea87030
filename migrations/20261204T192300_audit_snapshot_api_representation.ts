import { type Kysely, sql } from 'kysely'

/**
 * Audit snapshots in the API's representation, from this migration on.
 *
 * The audit triggers stored to_jsonb(row): numeric columns became JSON numbers (a total of
 * 129.90 read back as 129.9 by most JSON parsers, money as a float) and timestamptz columns
 * PostgreSQL's text (2026-11-22T08:30:00.123+00:00). New before/after snapshots are written by
 * crm_audit_snapshot(): numeric columns (money, tax_rate) as decimal strings with the digits the
 * column holds, which for money are its currency's minor units ("129.90", "1500", "1.234", see
 * migration money_minor_units), and timestamptz columns as RFC 3339 in UTC with milliseconds and
 * a Z ("2026-11-22T08:30:00.123Z"), the API's own text (migration timestamps_milliseconds). Other
 * columns are as to_jsonb gives them, like the API (integers, text, dates, arrays, JSON).
 *
 * Events written before this migration keep their snapshots: the hash chain covers their full
 * content, so they are never rewritten. A reader of old events meets JSON numbers and +00:00.
 *
 * Which columns convert is read from the catalog once per statement (crm_audit_column_kinds),
 * not per row; an update that changes nothing still writes no event (raw rows are compared).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function crm_audit_column_kinds(tbl regclass) returns jsonb language sql stable parallel safe as $$
      select coalesce(jsonb_object_agg(a.attname, k.kind), '{}'::jsonb)
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      cross join lateral (select case
        when 'numeric'::regtype in (a.atttypid, t.typbasetype) then 'decimal'
        when 'timestamptz'::regtype in (a.atttypid, t.typbasetype) then 'time'
      end as kind) k
      where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped and k.kind is not null
    $$`.execute(db)
  await sql`
    create function crm_audit_snapshot(snapshot jsonb, kinds jsonb) returns jsonb language sql immutable parallel safe as $$
      select coalesce(jsonb_object_agg(j.key, case
        when jsonb_typeof(j.value) = 'null' then j.value
        when kinds ->> j.key = 'decimal' then to_jsonb(j.value #>> '{}')
        when kinds ->> j.key = 'time'
          then to_jsonb(to_char((j.value #>> '{}')::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
        else j.value
      end), '{}'::jsonb)
      from jsonb_each(snapshot) j
    $$`.execute(db)
  await sql`
    comment on function crm_audit_snapshot(jsonb, jsonb) is
      'An audit before/after snapshot in the API''s representation: decimals as strings, times as RFC 3339 UTC with milliseconds and Z'`.execute(db)
  await sql`
    create or replace function crm_audit_capture() returns trigger language plpgsql as $$
    declare
      v_actor text := coalesce(crm_context('actor'), 'db:' || session_user);
      v_request text := crm_context('request_id');
      v_route text := crm_context('route');
      v_kinds jsonb := crm_audit_column_kinds(tg_relid);
    begin
      if tg_op = 'INSERT' then
        insert into audit_events (actor, request_id, route, action, entity, entity_id, before, after)
        select v_actor, v_request, v_route, 'insert', tg_table_name, n.id, null, crm_audit_snapshot(to_jsonb(n), v_kinds) from crm_new_rows n;
      elsif tg_op = 'UPDATE' then
        insert into audit_events (actor, request_id, route, action, entity, entity_id, before, after)
        select v_actor, v_request, v_route, 'update', tg_table_name, n.id, crm_audit_snapshot(to_jsonb(o), v_kinds), crm_audit_snapshot(to_jsonb(n), v_kinds)
        from crm_old_rows o join crm_new_rows n on n.id = o.id
        where to_jsonb(o) is distinct from to_jsonb(n);
      else
        insert into audit_events (actor, request_id, route, action, entity, entity_id, before, after)
        select v_actor, v_request, v_route, 'delete', tg_table_name, o.id, crm_audit_snapshot(to_jsonb(o), v_kinds), null from crm_old_rows o;
      end if;
      return null;
    end $$`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function crm_audit_capture() returns trigger language plpgsql as $$
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
  await sql`drop function crm_audit_snapshot(jsonb, jsonb)`.execute(db)
  await sql`drop function crm_audit_column_kinds(regclass)`.execute(db)
}
