import { type Kysely, sql } from 'kysely'

/**
 * Domain events (an outbox) derived in the database from the audit trail, and the change feed's
 * positions.
 *
 * Written in the same transaction as the change, by construction: every audited write already
 * inserts its audit_events rows from the audit triggers; a statement trigger on audit_events
 * (crm_events_derive) turns those rows into `events` rows in the same statement. No route can
 * forget it, a rolled-back change leaves neither, a committed one has both.
 *
 * Types: crm_event_types(entity, action, before, after) maps a changed row to `<entity>.<verb>`:
 * an insert is `.created` (plus the state it was created in: an order created paid is also
 * `order.paid`, a complaint is also `feedback.complaint_opened`); a delete is `.deleted`; an update
 * is named by its transition (archived, restored, merged, paid, refunded, cancelled, fulfilled,
 * complaint_resolved/closed/reopened, succeeded/failed for imports), else `.updated`. A segment
 * membership event is `segment.member_entered` / `segment.member_left` on its segment. Rows of
 * order_items, order_payments, segment_members and segment_snapshots emit nothing of their own:
 * their parent's row changes with them (an order's amounts and status, a segment's membership
 * events). A later table is covered without a change here: `<table without trailing s>.<verb>`.
 *
 * Positions. Each event row stores the writing transaction's id (xid8, pg_current_xact_id()) and
 * a sequence number; the feed's order is (txid, seq). Sequence values and xids are handed out
 * before commit, so a transaction that started writing earlier can commit later than one that
 * wrote after it: reading "seq > cursor" would skip it. The reader therefore returns only events
 * of transactions below its snapshot's xmin (pg_snapshot_xmin(pg_current_snapshot())): every
 * transaction with a smaller xid has committed or aborted, so no event can ever appear at or
 * before a position the reader has returned, and every later-assigned xid is larger than xmin.
 * The audit sealer (migration audit_chain) rests on the same fact. The price: a long transaction
 * holds the feed back (not its own events: everyone's after its xid) until it ends.
 *
 * Retention: crm_events_purge(cutoff, max_rows) deletes a prefix of the feed (every event at or
 * before the last position that occurred before the cutoff) and records that position in
 * events_horizon; a reader whose cursor lies before the horizon has lost events (410).
 *
 * crm_app may read events but never write them: the trigger function and the purge are SECURITY
 * DEFINER, like the audit sealer.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table events (
      txid xid8 not null default pg_current_xact_id(),
      seq bigint generated always as identity,
      id uuid not null default crm_uuid_v7() unique,
      type text not null,
      occurred_at timestamptz(3) not null,
      actor text not null,
      request_id text,
      correlation_id text,
      entity_type text not null,
      entity_id uuid not null,
      version integer,
      changes jsonb not null,
      audit_event_id uuid not null,
      primary key (txid, seq)
    )`.execute(db)
  // The purge finds the events older than the retention cutoff; BRIN because occurred_at grows
  // with insertion order and it costs the writers next to nothing.
  await sql`create index events_occurred_brin on events using brin (occurred_at) with (pages_per_range = 16)`.execute(db)

  await sql`
    create table events_horizon (
      singleton boolean primary key default true check (singleton),
      txid xid8 not null,
      seq bigint not null,
      purged_at timestamptz not null default now()
    )`.execute(db)

  // The entity type an audited table's events name; null: the table emits no events of its own.
  await sql`
    create function crm_event_entity_type(tbl text) returns text language sql immutable parallel safe as $$
      select case
        when tbl in ('order_items', 'order_payments', 'segment_members', 'segment_snapshots') then null
        when tbl = 'segment_membership_events' then 'segment'
        else regexp_replace(tbl, 's$', '')
      end
    $$`.execute(db)

  await sql`
    create function crm_event_types(tbl text, action text, before jsonb, after jsonb) returns text[]
    language plpgsql immutable parallel safe as $$
    declare
      e text := crm_event_entity_type(tbl);
      types text[] := '{}';
      old_status text := before ->> 'status';
      new_status text := after ->> 'status';
    begin
      if e is null then
        return types;
      end if;
      if tbl = 'segment_membership_events' then
        return case when action = 'insert' then array['segment.member_' || (after ->> 'event')] else types end;
      end if;
      if action = 'delete' then
        return array[e || '.deleted'];
      end if;
      if action = 'update' then
        if before ->> 'archived_at' is null and after ->> 'archived_at' is not null then
          types := types || (e || case when after ->> 'merged_into_id' is not null then '.merged' else '.archived' end);
        elsif before ->> 'archived_at' is not null and after ->> 'archived_at' is null then
          types := types || (e || '.restored');
        end if;
      end if;
      if new_status is distinct from old_status then
        if tbl = 'orders' then
          if new_status in ('paid', 'cancelled', 'fulfilled') then
            types := types || (e || '.' || new_status);
          end if;
        elsif tbl = 'feedback' then
          if new_status in ('open', 'in_progress') and (old_status is null or old_status in ('resolved', 'closed')) then
            types := types || ('feedback.complaint_' || case when old_status is null then 'opened' else 'reopened' end);
          elsif new_status in ('resolved', 'closed') and (old_status is null or old_status in ('open', 'in_progress')) then
            types := types || ('feedback.complaint_' || new_status);
          end if;
        elsif tbl = 'imports' and new_status in ('succeeded', 'failed') then
          types := types || (e || '.' || new_status);
        end if;
      end if;
      -- Every refund raises amount_refunded, whether the status becomes refunded or stays partially_refunded.
      if tbl = 'orders' and (after ->> 'amount_refunded')::numeric > coalesce((before ->> 'amount_refunded')::numeric, 0) then
        types := types || 'order.refunded'::text;
      end if;
      if action = 'insert' then
        return array[e || '.created'] || types;
      end if;
      return case when cardinality(types) = 0 then array[e || '.updated'] else types end;
    end $$`.execute(db)

  // The fields an event carries: an insert's whole row, an update's changed fields with their new
  // values, nothing for a delete. The version is a field of the event itself.
  await sql`
    create function crm_event_changes(tbl text, action text, before jsonb, after jsonb) returns jsonb
    language sql immutable parallel safe as $$
      select case
        when action = 'delete' then '{}'::jsonb
        when tbl = 'segment_membership_events' then jsonb_build_object('customer_id', after -> 'customer_id', 'occurred_at', after -> 'occurred_at')
        else coalesce((select jsonb_object_agg(a.key, a.value) from jsonb_each(after) a
                       where a.key <> 'version' and (before is null or before -> a.key is distinct from a.value)), '{}'::jsonb)
      end
    $$`.execute(db)

  await sql`
    create function crm_events_derive() returns trigger
    language plpgsql security definer set search_path = pg_catalog, public as $$
    begin
      insert into events (type, occurred_at, actor, request_id, correlation_id, entity_type, entity_id, version, changes, audit_event_id)
      select t.type, a.occurred_at, a.actor, a.request_id, a.correlation_id,
             crm_event_entity_type(a.entity),
             case when a.entity = 'segment_membership_events' then (a.after ->> 'segment_id')::uuid else a.entity_id end,
             case when a.entity = 'segment_membership_events' then null else (coalesce(a.after, a.before) ->> 'version')::integer end,
             crm_event_changes(a.entity, a.action, a.before, a.after),
             a.id
      from crm_new_audit a
      cross join lateral unnest(crm_event_types(a.entity, a.action, a.before, a.after)) with ordinality as t(type, n)
      order by a.id, t.n;
      return null;
    end $$`.execute(db)
  await sql`
    create trigger events_derive after insert on audit_events referencing new table as crm_new_audit
    for each statement execute function crm_events_derive()`.execute(db)

  await sql`
    create function crm_events_purge(cutoff timestamptz, max_rows integer default 50000) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
    declare
      v_txid xid8;
      v_seq bigint;
      v_count integer;
    begin
      -- The last position, within this batch, of an event older than the cutoff: everything at
      -- or before it goes, so what remains is always a suffix of the feed.
      select e.txid, e.seq into v_txid, v_seq
      from (select txid, seq, occurred_at from events order by txid, seq limit max_rows) e
      where e.occurred_at < cutoff
      order by e.txid desc, e.seq desc
      limit 1;
      if v_txid is null then
        return 0;
      end if;
      delete from events where (txid, seq) <= (v_txid, v_seq);
      get diagnostics v_count = row_count;
      insert into events_horizon (singleton, txid, seq) values (true, v_txid, v_seq)
      on conflict (singleton) do update set txid = excluded.txid, seq = excluded.seq, purged_at = now();
      return v_count;
    end $$`.execute(db)

  await sql`revoke insert, update, delete, truncate, references, trigger on events, events_horizon from crm_app`.execute(db)
  await sql`revoke all on function crm_events_purge(timestamptz, integer) from public`.execute(db)
  await sql`grant execute on function crm_events_purge(timestamptz, integer) to crm_app`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists events_derive on audit_events`.execute(db)
  await sql`drop function if exists crm_events_purge(timestamptz, integer), crm_events_derive(), crm_event_changes(text, text, jsonb, jsonb),
            crm_event_types(text, text, jsonb, jsonb), crm_event_entity_type(text)`.execute(db)
  await sql`drop table if exists events_horizon, events`.execute(db)
}
