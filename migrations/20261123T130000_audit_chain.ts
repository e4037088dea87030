import { type Kysely, sql } from 'kysely'

/**
 * Tamper-evident audit trail, and the least-privilege role the API runs as.
 *
 * Writers stay as they were: the statement-level triggers append audit rows with no global lock.
 * A separate sealing step (crm_audit_seal, run on a schedule and before every verification)
 * appends each visible, not yet sealed audit row to a hash chain: position n's hash is
 * sha256(hash(n-1) || n || canonical(row)). Chain order is seal order, not insert order, and
 * "not yet sealed" means "has no chain entry" (an anti-join), so a transaction that commits late
 * is sealed late, never skipped. The scan stays small through a horizon: every audit row of a
 * transaction older than the oldest transaction still running when a seal began was visible to
 * that seal and is sealed, so the next seal looks only at rows of newer transactions.
 *
 * crm_app (NOLOGIN) is the role the API's connections take (SET ROLE via the connection's
 * options): it can read and write the domain tables but can only append audit rows through the
 * triggers' columns, can never change or remove them, and can write the chain only through the
 * SECURITY DEFINER sealing function.
 */
const SEAL_LOCK = 7234001

export async function up(db: Kysely<any>): Promise<void> {
  // Roles are per cluster: several databases (tests clone a template) may run this at once.
  await sql`
    do $$
    begin
      if not exists (select 1 from pg_roles where rolname = 'crm_app') then
        begin
          create role crm_app nologin;
        exception when duplicate_object or unique_violation then
          null;
        end;
      end if;
      if not pg_has_role(current_user, 'crm_app', 'member') then
        execute format('grant crm_app to %I', current_user);
      end if;
    end $$`.execute(db)

  await sql`
    create table audit_seals (
      id bigint primary key,
      sealed_at timestamptz not null default now(),
      first_seq bigint not null,
      last_seq bigint not null,
      horizon_txid bigint not null,
      check (last_seq >= first_seq)
    )`.execute(db)
  // No foreign key to audit_events: a removed audit row must show up as a broken link.
  await sql`
    create table audit_chain (
      seq bigint primary key,
      audit_event_id uuid not null unique,
      hash bytea not null check (length(hash) = 32),
      seal_id bigint not null references audit_seals (id)
    )`.execute(db)
  // The sealer's scan: rows of transactions at or after the horizon. BRIN because txids grow
  // with insertion order, and it costs the writers next to nothing.
  await sql`create index audit_events_txid_brin on audit_events using brin (txid) with (pages_per_range = 16)`.execute(db)

  // The bytes a chain hash covers: every column, timestamps as exact epoch microseconds so the
  // session's time zone cannot change them.
  await sql`
    create function crm_audit_canonical(a audit_events) returns bytea language sql stable parallel safe as $$
      select convert_to(jsonb_build_array(
        a.id, (extract(epoch from a.occurred_at) * 1000000)::bigint, a.actor, a.request_id, a.route,
        a.action, a.entity, a.entity_id, a.before, a.after, a.txid)::text, 'UTF8')
    $$`.execute(db)

  await sql`
    create function crm_audit_seal(max_rows integer default 50000, wait boolean default true) returns integer
    language plpgsql security definer set search_path = pg_catalog, public as $$
    declare
      v_floor bigint := 0;
      v_horizon bigint;
      v_seal bigint := 0;
      v_seq bigint := 0;
      v_hash bytea := '\\x'::bytea;
      v_first bigint;
      v_ids uuid[] := '{}';
      v_hashes bytea[] := '{}';
      r record;
    begin
      -- Each statement below must see what committed before it: a REPEATABLE READ snapshot
      -- taken earlier would hide rows and chain entries.
      if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'crm_audit_seal() runs only under READ COMMITTED' using errcode = '25001';
      end if;
      if wait then
        perform pg_advisory_xact_lock(${sql.lit(SEAL_LOCK)});
      elsif not pg_try_advisory_xact_lock(${sql.lit(SEAL_LOCK)}) then
        return 0;
      end if;
      -- Taken before the rows are read: every transaction older than this has finished, so all
      -- of its rows are visible to the scan below.
      v_horizon := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
      select id, horizon_txid into v_seal, v_floor from audit_seals order by id desc limit 1;
      select seq, hash into v_seq, v_hash from audit_chain order by seq desc limit 1;
      v_seal := coalesce(v_seal, 0);
      v_floor := coalesce(v_floor, 0);
      v_seq := coalesce(v_seq, 0);
      v_hash := coalesce(v_hash, '\\x'::bytea);
      v_first := v_seq + 1;
      for r in
        select a.id, crm_audit_canonical(a) as content
        from audit_events a
        where a.txid >= v_floor and not exists (select 1 from audit_chain c where c.audit_event_id = a.id)
        order by a.txid, a.id
        limit max_rows
      loop
        v_seq := v_seq + 1;
        v_hash := sha256(v_hash || int8send(v_seq) || r.content);
        v_ids := v_ids || r.id;
        v_hashes := v_hashes || v_hash;
      end loop;
      if cardinality(v_ids) = 0 then
        return 0;
      end if;
      insert into audit_seals (id, first_seq, last_seq, horizon_txid)
      values (v_seal + 1, v_first, v_seq, case when cardinality(v_ids) < max_rows then v_horizon else v_floor end);
      insert into audit_chain (seq, audit_event_id, hash, seal_id)
      select v_first + u.o - 1, u.id, u.hash, v_seal + 1
      from unnest(v_ids, v_hashes) with ordinality as u(id, hash, o);
      return cardinality(v_ids);
    end $$`.execute(db)

  // Recomputes every link from the stored previous hash (set-based: if every link holds, the
  // fold from the first position gives the stored hashes) and reports the first broken one.
  await sql`
    create function crm_audit_verify()
    returns table (intact boolean, sealed_count bigint, unsealed_count bigint, head_seq bigint, head_hash text,
                   broken_seq bigint, broken_audit_event_id uuid, reason text)
    language sql stable as $$
      with links as (
        select c.seq, c.audit_event_id, c.hash,
               lag(c.seq) over w as prev_seq,
               lag(c.hash) over w as prev_hash,
               a.id is not null as present,
               case when a.id is not null then crm_audit_canonical(a) end as content
        from audit_chain c
        left join audit_events a on a.id = c.audit_event_id
        window w as (order by c.seq)
      ),
      broken as (
        select seq, audit_event_id,
               case
                 when coalesce(prev_seq, 0) <> seq - 1 then 'chain position ' || (coalesce(prev_seq, 0) + 1) || ' is missing'
                 when not present then 'the sealed audit event no longer exists'
                 when hash <> sha256(coalesce(prev_hash, '\\x'::bytea) || int8send(seq) || content)
                   then 'the audit event or its hash differs from what was sealed'
               end as reason
        from links
      ),
      first_broken as (
        select * from broken where reason is not null order by seq limit 1
      ),
      head as (
        select seq, hash from audit_chain order by seq desc limit 1
      ),
      sealed_tail as (
        select coalesce(max(last_seq), 0) as last_seq from audit_seals
      ),
      tail as (
        select case when coalesce((select seq from head), 0) < s.last_seq
                    then 'chain positions after ' || coalesce((select seq from head), 0) || ' up to ' || s.last_seq || ' are missing'
               end as reason, s.last_seq
        from sealed_tail s
      )
      select (select count(*) from first_broken) = 0 and t.reason is null,
             (select count(*) from audit_chain),
             (select count(*) from audit_events a where not exists (select 1 from audit_chain c where c.audit_event_id = a.id)),
             (select seq from head),
             (select encode(hash, 'hex') from head),
             coalesce((select seq from first_broken), case when t.reason is not null then (select seq from head) + 1 end),
             (select audit_event_id from first_broken),
             coalesce((select reason from first_broken), t.reason)
      from tail t
    $$`.execute(db)

  // The API's role: everything the domains need, nothing that rewrites history.
  await sql`grant usage on schema public to crm_app`.execute(db)
  await sql`grant select, insert, update, delete on all tables in schema public to crm_app`.execute(db)
  await sql`grant usage, select on all sequences in schema public to crm_app`.execute(db)
  // Tables and sequences that later migrations create (as this same owner) get the same grants.
  await sql`alter default privileges in schema public grant select, insert, update, delete on tables to crm_app`.execute(db)
  await sql`alter default privileges in schema public grant usage, select on sequences to crm_app`.execute(db)
  await sql`
    do $$
    declare t text;
    begin
      foreach t in array array['kysely_migration', 'kysely_migration_lock'] loop
        if to_regclass(t) is not null then
          execute format('revoke insert, update, delete, truncate on %I from crm_app', t);
        end if;
      end loop;
    end $$`.execute(db)
  // Audit rows are appended by the triggers, with server-set id, occurred_at and txid.
  await sql`revoke insert, update, delete, truncate, references, trigger on audit_events, audit_chain, audit_seals from crm_app`.execute(db)
  await sql`grant insert (actor, request_id, route, action, entity, entity_id, before, after) on audit_events to crm_app`.execute(db)
  await sql`revoke all on function crm_audit_seal(integer, boolean) from public`.execute(db)
  await sql`grant execute on function crm_audit_seal(integer, boolean) to crm_app`.execute(db)

  // Everything already in the trail starts the chain.
  await sql`select crm_audit_seal()`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  // The role is the cluster's, possibly used by other databases: only this database's grants go.
  await sql`alter default privileges in schema public revoke select, insert, update, delete on tables from crm_app`.execute(db)
  await sql`alter default privileges in schema public revoke usage, select on sequences from crm_app`.execute(db)
  await sql`drop function if exists crm_audit_verify(), crm_audit_seal(integer, boolean), crm_audit_canonical(audit_events)`.execute(db)
  await sql`drop table if exists audit_chain, audit_seals`.execute(db)
  await sql`drop index if exists audit_events_txid_brin`.execute(db)
  await sql`revoke all on all tables in schema public from crm_app`.execute(db)
  await sql`revoke all on all sequences in schema public from crm_app`.execute(db)
  await sql`revoke usage on schema public from crm_app`.execute(db)
}
