import { type Kysely, sql } from 'kysely'

/**
 * audit_events and events range-partitioned by month of occurred_at (UTC), converted together:
 * the feed's trigger events_derive sits on audit_events, and both grow without bound by time.
 *
 * Why monthly: the events retention (EVENTS_RETENTION_DAYS, default 30) drops whole partitions,
 * so a partition must be small next to the retention (a month: at most one month's events are
 * kept past their cutoff, and the boundary month is trimmed by the bounded row delete); and the
 * per-partition cost of the lookups by id (the chain's join, GET /v1/audit-events/{id}), one
 * index probe per partition, must stay small for a trail kept for years (12 partitions a year).
 *
 * Each table gets a default partition as a safety net: a write whose month has no partition yet
 * lands there instead of failing. crm_partitions_maintain(months_ahead) (SECURITY DEFINER, the
 * scheduler's partition-upkeep job) creates the partitions of this month and the next ones, and
 * moves rows the default partition caught into the partition of their month.
 * crm_events_purge(cutoff, max_rows) now drops every events partition that ended before the
 * cutoff (after recording its last position as the horizon), then deletes a bounded prefix of
 * what remains, as before. Audit partitions are never dropped.
 *
 * Keys: PostgreSQL requires the partition key in every unique index, so audit_events' primary
 * key is (id, occurred_at) and events' are (txid, seq, occurred_at) and unique (id, occurred_at).
 * id stays unique in practice (a UUID v7, and the chain's audit_chain.audit_event_id is unique).
 *
 * Guarantees kept: the same columns in the same order, so crm_audit_canonical hashes every row
 * exactly as before and the chain verifies across the conversion; crm_app reads both tables and
 * may insert only the audit columns the triggers fill, and has no privilege at all on the
 * partitions themselves (so no write can bypass the parent's events_derive trigger); events keep
 * their positions and the identity continues from the old table's.
 *
 * Cost: this rewrites both tables (every row is copied into its partition and every index is
 * rebuilt) under the write gate: writers wait for all of it. 100,002 audit rows and as many
 * events over four months took 6.4 s on a 2-core machine busy with other test runs
 * (`npx tsx bench/partition-conversion.ts --audit-rows 100000`); it grows linearly, so a trail of
 * hundreds of millions of rows needs a maintenance window, or attaching the old table whole as
 * one partition of history (no copy), which this migration does not do.
 */

const AUDIT_COLUMNS = sql`
  id uuid not null default crm_uuid_v7(),
  occurred_at timestamptz not null default date_trunc('milliseconds', now()),
  actor text not null,
  request_id text,
  route text,
  action text not null constraint audit_events_action_check check (action in ('insert', 'update', 'delete')),
  entity text not null,
  entity_id uuid not null,
  before jsonb,
  after jsonb,
  txid bigint not null default txid_current(),
  correlation_id text default crm_context('correlation_id')`

const EVENT_COLUMNS = sql`
  txid xid8 not null default pg_current_xact_id(),
  seq bigint generated always as identity,
  id uuid not null default crm_uuid_v7(),
  type text not null,
  occurred_at timestamptz(3) not null,
  actor text not null,
  request_id text,
  correlation_id text,
  entity_type text not null,
  entity_id uuid not null,
  version integer,
  changes jsonb not null,
  audit_event_id uuid not null`

const CANONICAL = sql`
    create function crm_audit_canonical(a audit_events) returns bytea language sql stable parallel safe as $$
      select convert_to((jsonb_build_array(
        a.id, (extract(epoch from a.occurred_at) * 1000000)::bigint, a.actor, a.request_id, a.route,
        a.action, a.entity, a.entity_id, a.before, a.after, a.txid)
        || case when a.correlation_id is null then '[]'::jsonb else jsonb_build_array(a.correlation_id) end)::text, 'UTF8')
    $$`

async function auditIndexes(db: Kysely<any>, primaryKey: string): Promise<void> {
  await sql`alter table audit_events add constraint audit_events_pkey primary key (${sql.raw(primaryKey)})`.execute(db)
  await sql`create index audit_events_entity_idx on audit_events (entity, entity_id, occurred_at, id)`.execute(db)
  await sql`create index audit_events_actor_idx on audit_events (actor, occurred_at, id)`.execute(db)
  await sql`create index audit_events_occurred_idx on audit_events (occurred_at, id)`.execute(db)
  await sql`create index audit_events_request_idx on audit_events (request_id)`.execute(db)
  await sql`create index audit_events_txid_brin on audit_events using brin (txid) with (pages_per_range = 16)`.execute(db)
  await sql`
    create trigger events_derive after insert on audit_events referencing new table as crm_new_audit
    for each statement execute function crm_events_derive()`.execute(db)
  await sql`revoke all on audit_events from crm_app`.execute(db)
  await sql`grant select on audit_events to crm_app`.execute(db)
  await sql`grant insert (actor, request_id, route, action, entity, entity_id, before, after) on audit_events to crm_app`.execute(db)
}

async function eventIndexes(db: Kysely<any>, primaryKey: string, unique: string): Promise<void> {
  await sql`alter table events add constraint events_pkey primary key (${sql.raw(primaryKey)})`.execute(db)
  await sql`alter table events add constraint events_id_key unique (${sql.raw(unique)})`.execute(db)
  await sql`create index events_occurred_brin on events using brin (occurred_at) with (pages_per_range = 16)`.execute(db)
  await sql`revoke all on events from crm_app`.execute(db)
  await sql`grant select on events to crm_app`.execute(db)
  await sql`grant select, usage on sequence events_seq_seq to crm_app`.execute(db)
}

/** Renames the current tables aside (with the events identity's sequence, whose name the new table takes). */
async function setAside(db: Kysely<any>): Promise<{ seq: string; called: boolean }> {
  const { rows } = await sql<{ seq: string; called: boolean }>`select last_value::text as seq, is_called as called from events_seq_seq`.execute(db)
  await sql`alter table audit_events rename to audit_events_old`.execute(db)
  await sql`alter table events rename to events_old`.execute(db)
  await sql`alter sequence events_seq_seq rename to events_old_seq_seq`.execute(db)
  for (const [table, names] of [['audit_events_old', ['audit_events_pkey', 'audit_events_entity_idx', 'audit_events_actor_idx', 'audit_events_occurred_idx', 'audit_events_request_idx', 'audit_events_txid_brin']], ['events_old', ['events_pkey', 'events_id_key', 'events_occurred_brin']]] as const) {
    for (const name of names) await sql`alter index ${sql.id(name)} rename to ${sql.id(`${table}_${name.replace(/^(audit_)?events_/, '')}`)}`.execute(db)
  }
  return rows[0]!
}

/** Copies the rows aside into the new tables (positions and the identity kept), then drops the old ones. */
async function moveRows(db: Kysely<any>, identity: { seq: string; called: boolean }): Promise<void> {
  await sql`insert into audit_events select * from audit_events_old`.execute(db)
  await sql`insert into events overriding system value select * from events_old`.execute(db)
  await sql`select setval('events_seq_seq', ${identity.seq}::bigint, ${identity.called})`.execute(db)
  await sql`drop function crm_audit_canonical(audit_events_old)`.execute(db)
  await sql`drop table audit_events_old, events_old`.execute(db)
  await CANONICAL.execute(db)
}

export async function up(db: Kysely<any>): Promise<void> {
  // Creates the partition of one month of a parent (<parent>_yYYYYmMM), moving into it the rows of
  // that month its default partition caught: a default partition may not keep rows of a range a
  // new partition covers. Owned by the migration's role, which crm_app's default privileges would
  // let write a new table: the partition gets no privilege, everything goes through the parent.
  await sql`
    create function crm_partition_create(parent text, month_start timestamp) returns boolean
    language plpgsql security definer set search_path = pg_catalog, public as $$
    declare
      v_lo timestamp := date_trunc('month', month_start);
      v_hi timestamp := date_trunc('month', month_start) + interval '1 month';
      v_name text := parent || to_char(v_lo, '"_y"YYYY"m"MM');
      v_from text := to_char(v_lo, 'YYYY-MM-DD HH24:MI:SS') || '+00';
      v_to text := to_char(v_hi, 'YYYY-MM-DD HH24:MI:SS') || '+00';
    begin
      if parent not in ('audit_events', 'events') then
        raise exception 'crm_partition_create: % is not a partitioned table of the CRM', parent;
      end if;
      if to_regclass(v_name) is not null then
        return false;
      end if;
      execute format('create table public.%I (like public.%I including defaults including constraints including storage)', v_name, parent);
      execute format('revoke all on %I from crm_app', v_name);
      execute format('with moved as (delete from %I where occurred_at >= %L and occurred_at < %L returning *) insert into %I select * from moved',
                     parent || '_default', v_from, v_to, v_name);
      -- Proves the range to ATTACH, which then need not scan the new table under its lock.
      execute format('alter table %I add constraint %I check (occurred_at >= %L and occurred_at < %L)', v_name, v_name || '_range', v_from, v_to);
      execute format('alter table %I attach partition %I for values from (%L) to (%L)', parent, v_name, v_from, v_to);
      execute format('alter table %I drop constraint %I', v_name, v_name || '_range');
      return true;
    end $$`.execute(db)

  // The upkeep: this month's partition and the next months_ahead, for both tables, and the
  // partitions of the (at most 12 oldest) months whose rows the default partitions caught.
  await sql`
    create function crm_partitions_maintain(months_ahead integer default 3) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
    declare
      v_parent text;
      v_month timestamp;
      v_created integer := 0;
    begin
      foreach v_parent in array array['audit_events', 'events'] loop
        for v_month in execute format(
          'select date_trunc(''month'', now() at time zone ''UTC'') + make_interval(months => m) from generate_series(0, %s) m
           union
           select * from (select distinct date_trunc(''month'', occurred_at at time zone ''UTC'') as m from %I order by 1 limit 12) d
           order by 1', months_ahead, v_parent || '_default')
        loop
          v_created := v_created + crm_partition_create(v_parent, v_month)::int;
        end loop;
      end loop;
      return v_created;
    end $$`.execute(db)
  await sql`revoke all on function crm_partition_create(text, timestamp) from public`.execute(db)
  await sql`revoke all on function crm_partitions_maintain(integer) from public`.execute(db)
  await sql`grant execute on function crm_partitions_maintain(integer) to crm_app`.execute(db)

  const identity = await setAside(db)
  await sql`create table audit_events (${AUDIT_COLUMNS}) partition by range (occurred_at)`.execute(db)
  await sql`create table events (${EVENT_COLUMNS}) partition by range (occurred_at)`.execute(db)
  for (const parent of ['audit_events', 'events']) {
    await sql`create table ${sql.id(`${parent}_default`)} partition of ${sql.id(parent)} default`.execute(db)
    await sql`revoke all on ${sql.id(`${parent}_default`)} from crm_app`.execute(db)
  }
  // The months that hold rows, and this month and the next three.
  await sql`
    select crm_partition_create(p, m)
    from (select 'audit_events' as p, date_trunc('month', occurred_at at time zone 'UTC') as m from audit_events_old
          union select 'events', date_trunc('month', occurred_at at time zone 'UTC') from events_old) d
    order by p, m`.execute(db)
  await sql`select crm_partitions_maintain(3)`.execute(db)
  await moveRows(db, identity)
  await auditIndexes(db, 'id, occurred_at')
  await eventIndexes(db, 'txid, seq, occurred_at', 'id, occurred_at')

  await sql`
    create or replace function crm_events_purge(cutoff timestamptz, max_rows integer default 50000) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
    declare
      v_txid xid8;
      v_seq bigint;
      v_last_txid xid8;
      v_last_seq bigint;
      v_count integer := 0;
      v_n integer;
      v_lock_timeout text := current_setting('lock_timeout');
      p record;
    begin
      -- Whole partitions that ended before the cutoff, oldest first. Dropping one locks the parent
      -- (ACCESS EXCLUSIVE), so it waits at most 2 s for the lock and otherwise leaves the
      -- partition to the next run instead of holding every writer behind it.
      for p in
        select c.relname, make_timestamptz(substr(c.relname, 9, 4)::int, substr(c.relname, 14, 2)::int, 1, 0, 0, 0, 'UTC') + interval '1 month' as ends
        from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'events'::regclass and c.relname ~ '^events_y[0-9]{4}m[0-9]{2}$'
        order by c.relname
      loop
        exit when p.ends > cutoff;
        execute format('select txid, seq from %I order by txid desc, seq desc limit 1', p.relname) into v_last_txid, v_last_seq;
        execute format('select count(*) from %I', p.relname) into v_n;
        begin
          perform set_config('lock_timeout', '2s', true);
          execute format('drop table %I', p.relname);
          perform set_config('lock_timeout', v_lock_timeout, true);
        exception when lock_not_available then
          perform set_config('lock_timeout', v_lock_timeout, true);
          exit;
        end;
        v_count := v_count + v_n;
        if v_last_txid is not null and (v_txid is null or (v_last_txid, v_last_seq) > (v_txid, v_seq)) then
          v_txid := v_last_txid;
          v_seq := v_last_seq;
        end if;
      end loop;
      -- Then a prefix of what remains: the last position, within this batch, of an event older
      -- than the cutoff (or the dropped partitions' last one, when later); everything at or
      -- before it goes, so what remains is always a suffix of the feed.
      select e.txid, e.seq into v_last_txid, v_last_seq
      from (select txid, seq, occurred_at from events order by txid, seq limit max_rows) e
      where e.occurred_at < cutoff or (v_txid is not null and (e.txid, e.seq) <= (v_txid, v_seq))
      order by e.txid desc, e.seq desc
      limit 1;
      if v_last_txid is not null and (v_txid is null or (v_last_txid, v_last_seq) > (v_txid, v_seq)) then
        v_txid := v_last_txid;
        v_seq := v_last_seq;
      end if;
      if v_txid is null then
        return 0;
      end if;
      delete from events e
      where (e.txid, e.seq, e.occurred_at) in (select d.txid, d.seq, d.occurred_at from events d where (d.txid, d.seq) <= (v_txid, v_seq)
                                               order by d.txid, d.seq limit max_rows);
      get diagnostics v_n = row_count;
      v_count := v_count + v_n;
      insert into events_horizon (singleton, txid, seq) values (true, v_txid, v_seq)
      on conflict (singleton) do update set txid = excluded.txid, seq = excluded.seq, purged_at = now()
      where (events_horizon.txid, events_horizon.seq) < (excluded.txid, excluded.seq);
      return v_count;
    end $$`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  const identity = await setAside(db)
  await sql`create table audit_events (${AUDIT_COLUMNS})`.execute(db)
  await sql`create table events (${EVENT_COLUMNS})`.execute(db)
  await moveRows(db, identity)
  await auditIndexes(db, 'id')
  await eventIndexes(db, 'txid, seq', 'id')
  await sql`drop function crm_partitions_maintain(integer), crm_partition_create(text, timestamp)`.execute(db)
  await sql`
    create or replace function crm_events_purge(cutoff timestamptz, max_rows integer default 50000) returns integer
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
}
