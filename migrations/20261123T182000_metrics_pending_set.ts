import { type Kysely, sql } from 'kysely'

/**
 * The pending set of the deferred customer metrics (20261123T160000_metrics_deferred) recorded
 * once per statement instead of once per row.
 *
 * Before, the WHEN clause of the row-level constraint triggers added each written row's customer
 * to crm.metrics_pending, scanning and copying the whole string every time: O(n) per row, so a
 * transaction touching n distinct customers cost O(n²): for 1,000 distinct customers (one
 * set-wise POST /v1/orders/batch) 30–75 ms, for 5,000 1.7 s, measured with
 * `select count(*) filter (where crm_metrics_note(id)) from (select id from customers limit n) c`.
 *
 * Now:
 *  - The row-level constraint triggers (same names, still DEFERRABLE INITIALLY DEFERRED) only
 *    queue the flush event: their WHEN (crm_metrics_queue) reads a short flag, crm.metrics_queued,
 *    and is true once until that event fires. O(1) per row.
 *  - A statement-level AFTER trigger per table and operation (metrics_collect_*) reads the
 *    statement's customers from its transition tables and adds those not yet pending with one
 *    set operation (crm_metrics_pend): O(rows + pending) per statement, so a set-wise batch
 *    costs O(n) and the one-row statements of the single-item routes cost what they did.
 *  - When the flush event fires it clears the flag (the event is consumed) and drains the set
 *    as before (crm_flush_customer_metrics, unchanged, so explicit calls work as documented).
 *
 * The documented behaviours stay: refreshed once at commit for every customer touched, failing
 * the commit if the refresh fails; ROLLBACK TO SAVEPOINT reverts the flag and the set together
 * with the rows and the queued event; SET CONSTRAINTS ... IMMEDIATE refreshes after every
 * statement: the row event then fires at the end of the statement, before the statement-level
 * trigger has collected the statement's customers, so crm_metrics_pend, finding no event queued,
 * refreshes them itself right away.
 */
const TABLES = ['orders', 'interactions', 'feedback']

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function crm_metrics_queue() returns boolean language plpgsql as $$
    begin
      if coalesce(current_setting('crm.metrics_queued', true), '') <> '' then
        return false;
      end if;
      perform set_config('crm.metrics_queued', 'on', true);
      return true;
    end $$`.execute(db)

  // Adds customers to the pending set ("id,id,...,"), each once.
  await sql`
    create function crm_metrics_pend(ids uuid[]) returns void language plpgsql as $$
    declare
      pending text := coalesce(current_setting('crm.metrics_pending', true), '');
      added text;
    begin
      if cardinality(ids) = 0 then
        return;
      end if;
      if coalesce(current_setting('crm.metrics_queued', true), '') = '' then
        -- No flush event is queued: it fired already, at the end of this statement (IMMEDIATE).
        perform crm_refresh_customer_metrics(array(select distinct id from unnest(ids) id order by id));
        return;
      end if;
      if pending = '' then
        added := (select string_agg(distinct id::text, ',') from unnest(ids) id);
      elsif cardinality(ids) <= 8 then
        -- A one-row statement: a scan of the string is cheaper than parsing it.
        added := (select string_agg(distinct id::text, ',') from unnest(ids) id where strpos(pending, id::text) = 0);
      else
        added := (select string_agg(id::text, ',') from (
                    select id from unnest(ids) id
                    except
                    select unnest(string_to_array(rtrim(pending, ','), ','))::uuid) s);
      end if;
      if added is not null then
        perform set_config('crm.metrics_pending', pending || added || ',', true);
      end if;
    end $$`.execute(db)

  await sql`
    create function crm_metrics_collect() returns trigger language plpgsql as $$
    begin
      if tg_op = 'INSERT' then
        perform crm_metrics_pend(array(select customer_id from crm_new_rows where customer_id is not null));
      elsif tg_op = 'UPDATE' then
        perform crm_metrics_pend(array(select customer_id from crm_old_rows where customer_id is not null
                                       union select customer_id from crm_new_rows where customer_id is not null));
      else
        perform crm_metrics_pend(array(select customer_id from crm_old_rows where customer_id is not null));
      end if;
      return null;
    end $$`.execute(db)

  await sql`
    create or replace function crm_metrics_flush() returns trigger language plpgsql as $$
    begin
      perform set_config('crm.metrics_queued', '', true);
      perform crm_flush_customer_metrics();
      return null;
    end $$`.execute(db)

  for (const table of TABLES) {
    await sql.raw(`
      drop trigger metrics_insert on ${table};
      drop trigger metrics_update on ${table};
      drop trigger metrics_delete on ${table};
      create constraint trigger metrics_insert after insert on ${table} deferrable initially deferred
        for each row when (crm_metrics_queue()) execute function crm_metrics_flush();
      create constraint trigger metrics_update after update on ${table} deferrable initially deferred
        for each row when (crm_metrics_queue()) execute function crm_metrics_flush();
      create constraint trigger metrics_delete after delete on ${table} deferrable initially deferred
        for each row when (crm_metrics_queue()) execute function crm_metrics_flush();
      create trigger metrics_collect_insert after insert on ${table} referencing new table as crm_new_rows
        for each statement execute function crm_metrics_collect();
      create trigger metrics_collect_update after update on ${table} referencing old table as crm_old_rows new table as crm_new_rows
        for each statement execute function crm_metrics_collect();
      create trigger metrics_collect_delete after delete on ${table} referencing old table as crm_old_rows
        for each statement execute function crm_metrics_collect();
    `).execute(db)
  }
  await sql`drop function crm_metrics_note(uuid, uuid)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  // crm_metrics_note and the triggers as 20261123T160000_metrics_deferred made them.
  await sql`
    create function crm_metrics_note(a uuid, b uuid default null) returns boolean language plpgsql as $$
    declare
      pending text := coalesce(current_setting('crm.metrics_pending', true), '');
      was_empty boolean := pending = '';
      added boolean := false;
    begin
      if a is not null and strpos(pending, a::text) = 0 then
        pending := pending || a::text || ',';
        added := true;
      end if;
      if b is not null and strpos(pending, b::text) = 0 then
        pending := pending || b::text || ',';
        added := true;
      end if;
      if added then
        perform set_config('crm.metrics_pending', pending, true);
      end if;
      return was_empty and added;
    end $$`.execute(db)
  await sql`
    create or replace function crm_metrics_flush() returns trigger language plpgsql as $$
    begin
      perform crm_flush_customer_metrics();
      return null;
    end $$`.execute(db)
  for (const table of TABLES) {
    await sql.raw(`
      drop trigger metrics_collect_insert on ${table};
      drop trigger metrics_collect_update on ${table};
      drop trigger metrics_collect_delete on ${table};
      drop trigger metrics_insert on ${table};
      drop trigger metrics_update on ${table};
      drop trigger metrics_delete on ${table};
      create constraint trigger metrics_insert after insert on ${table} deferrable initially deferred
        for each row when (crm_metrics_note(new.customer_id)) execute function crm_metrics_flush();
      create constraint trigger metrics_update after update on ${table} deferrable initially deferred
        for each row when (crm_metrics_note(old.customer_id, new.customer_id)) execute function crm_metrics_flush();
      create constraint trigger metrics_delete after delete on ${table} deferrable initially deferred
        for each row when (crm_metrics_note(old.customer_id)) execute function crm_metrics_flush();
    `).execute(db)
  }
  await sql`drop function crm_metrics_collect(), crm_metrics_pend(uuid[]), crm_metrics_queue()`.execute(db)
}
