import { type Kysely, sql } from 'kysely'

/**
 * Verification of the audit chain from the last verified position instead of from the start.
 *
 * crm_audit_verify_from(from_seq) recomputes the links after `from_seq`, taking the stored hash at
 * `from_seq` as their anchor; crm_audit_verify() is now crm_audit_verify_from(0). A verified head
 * is recorded in audit_verifications by crm_audit_checkpoint(full), which the API and the
 * scheduler call: incremental (full = false) checks that the chain still holds the recorded hash
 * at the last verified position, then only the links after it; full re-reads everything. What
 * incremental runs cannot see (an event changed before the last verified position) the full run
 * does: GET /v1/audit-events/verify?full=true, and the scheduler's audit-verify-full job.
 *
 * The unsealed count reads only events of transactions at or after the last seal's horizon
 * (every older one was sealed: see crm_audit_seal), through the txid BRIN index.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table audit_verifications (
      seq bigint primary key,
      hash bytea not null check (length(hash) = 32),
      full_scan boolean not null,
      verified_at timestamptz(3) not null default now()
    )`.execute(db)
  await sql`revoke insert, update, delete, truncate, references, trigger on audit_verifications from crm_app`.execute(db)

  await sql`
    create function crm_audit_verify_from(from_seq bigint)
    returns table (intact boolean, sealed_count bigint, unsealed_count bigint, head_seq bigint, head_hash text,
                   broken_seq bigint, broken_audit_event_id uuid, reason text)
    language sql stable as $$
      with links as (
        select c.seq, c.audit_event_id, c.hash,
               lag(c.seq) over w as prev_seq,
               lag(c.hash) over w as prev_hash,
               a.id is not null as present,
               case when a.id is not null and c.seq > from_seq then crm_audit_canonical(a) end as content
        from audit_chain c
        left join audit_events a on a.id = c.audit_event_id
        where c.seq >= from_seq
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
        where seq > from_seq
      ),
      first_broken as (
        select * from broken where reason is not null order by seq limit 1
      ),
      head as (
        select seq, hash from audit_chain order by seq desc limit 1
      ),
      last_seal as (
        select coalesce(max(last_seq), 0) as last_seq,
               coalesce((select horizon_txid from audit_seals order by id desc limit 1), 0) as horizon
        from audit_seals
      ),
      tail as (
        select case when coalesce((select seq from head), 0) < s.last_seq
                    then 'chain positions after ' || coalesce((select seq from head), 0) || ' up to ' || s.last_seq || ' are missing'
               end as reason, s.horizon
        from last_seal s
      )
      select (select count(*) from first_broken) = 0 and t.reason is null,
             coalesce((select seq from head), 0),
             (select count(*) from audit_events a
              where a.txid >= t.horizon and not exists (select 1 from audit_chain c where c.audit_event_id = a.id)),
             (select seq from head),
             (select encode(hash, 'hex') from head),
             coalesce((select seq from first_broken), case when t.reason is not null then (select seq from head) + 1 end),
             (select audit_event_id from first_broken),
             coalesce((select reason from first_broken), t.reason)
      from tail t
    $$`.execute(db)

  await sql`
    create or replace function crm_audit_verify()
    returns table (intact boolean, sealed_count bigint, unsealed_count bigint, head_seq bigint, head_hash text,
                   broken_seq bigint, broken_audit_event_id uuid, reason text)
    language sql stable as $$ select * from crm_audit_verify_from(0) $$`.execute(db)

  await sql`
    create function crm_audit_checkpoint(full_scan boolean)
    returns table (intact boolean, sealed_count bigint, unsealed_count bigint, head_seq bigint, head_hash text,
                   broken_seq bigint, broken_audit_event_id uuid, reason text, verified_from bigint)
    language plpgsql security definer set search_path = pg_catalog, public as $$
    declare
      v_from bigint := 0;
      v_hash bytea;
      r record;
    begin
      if not full_scan then
        select v.seq, v.hash into v_from, v_hash from audit_verifications v order by v.seq desc limit 1;
        v_from := coalesce(v_from, 0);
        if v_from > 0 and v_hash is distinct from (select c.hash from audit_chain c where c.seq = v_from) then
          return query
            select false, coalesce((select max(c.seq) from audit_chain c), 0), 0::bigint,
                   (select max(c.seq) from audit_chain c), (select encode(c.hash, 'hex') from audit_chain c order by c.seq desc limit 1),
                   v_from, (select c.audit_event_id from audit_chain c where c.seq = v_from),
                   'the chain no longer holds the hash verified at this position'::text, v_from;
          return;
        end if;
      end if;
      select * into r from crm_audit_verify_from(v_from);
      if r.intact and r.head_seq is not null and r.head_seq > v_from then
        insert into audit_verifications (seq, hash, full_scan) values (r.head_seq, decode(r.head_hash, 'hex'), full_scan)
        on conflict (seq) do nothing;
      end if;
      return query select r.intact, r.sealed_count, r.unsealed_count, r.head_seq, r.head_hash,
                          r.broken_seq, r.broken_audit_event_id, r.reason, v_from;
    end $$`.execute(db)
  await sql`revoke all on function crm_audit_checkpoint(boolean) from public`.execute(db)
  await sql`grant execute on function crm_audit_checkpoint(boolean) to crm_app`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function if exists crm_audit_checkpoint(boolean)`.execute(db)
  await sql`
    create or replace function crm_audit_verify()
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
  await sql`drop function if exists crm_audit_verify_from(bigint)`.execute(db)
  await sql`drop table if exists audit_verifications`.execute(db)
}
