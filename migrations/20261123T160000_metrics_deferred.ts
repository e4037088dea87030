import { type Kysely, sql } from 'kysely'

/**
 * Customer metrics are refreshed once per transaction, at commit, instead of after every
 * statement. They stay exact and atomic with the change: the refresh still runs inside the
 * writing transaction (as its last step), and if it fails the COMMIT fails and everything rolls
 * back. Before this, a 1,000-item batch (one INSERT per item) recomputed the same customers'
 * metrics 1,000 times, each recomputation reading all of the customer's rows (bench/metrics-batch.ts).
 *
 * How:
 *  - The pending set: the ids of the customers the transaction touched, kept in the custom
 *    setting crm.metrics_pending (comma-separated uuids), set with set_config(..., true). It is
 *    local to the transaction (reset at commit or rollback, so a pooled connection starts the
 *    next transaction empty), private to the session (no sharing between concurrent sessions),
 *    reverted by ROLLBACK TO SAVEPOINT together with the rows whose writes it recorded, and needs
 *    no privilege at all (a temp table would need TEMP on the database and a catalog lookup per
 *    write; measured no faster, see the bench).
 *  - Per written row, the WHEN clause of a row-level constraint trigger adds the row's customer
 *    to the set (crm_metrics_note). It returns true only when the set was empty, so one trigger
 *    event is queued per transaction (not per row). For a constraint trigger PostgreSQL evaluates
 *    WHEN at the write and queues the event only if it is true.
 *  - That event is DEFERRABLE INITIALLY DEFERRED: it fires at commit and drains the set with one
 *    crm_refresh_customer_metrics call for all the customers (crm_flush_customer_metrics).
 *
 * Consequences, all deliberate:
 *  - Inside a writing transaction, customer_metrics, customer_spend and the derived
 *    customers.lifecycle_stage show the state before the transaction's writes until commit. Code
 *    that must read them fresh inside the transaction calls `select crm_flush_customer_metrics()`
 *    first (the event queued for commit then finds the set empty and does nothing).
 *  - `SET CONSTRAINTS ALL IMMEDIATE` (or naming metrics_insert/metrics_update/metrics_delete)
 *    gives back the old per-statement behaviour: the event fires at the end of each statement,
 *    after WHEN has recorded every row of it. Switching to IMMEDIATE also fires what is pending.
 *  - The lifecycle UPDATE on customers now happens at commit; its audit rows are written then, in
 *    the same transaction, naming the same actor/request (the settings are still in force).
 *  - Cost per written row: one plpgsql call scanning the pending string, so a single statement
 *    touching n distinct customers costs O(n²) string work (about 20 MB scanned for n = 1,000);
 *    the API writes one row per statement. A bulk statement over tens of thousands of distinct
 *    customers should instead run with these triggers' constraints IMMEDIATE, or call
 *    crm_refresh_customer_metrics itself.
 */
export async function up(db: Kysely<any>): Promise<void> {
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
    create function crm_flush_customer_metrics() returns void language plpgsql as $$
    declare
      pending text := coalesce(current_setting('crm.metrics_pending', true), '');
    begin
      if pending = '' then
        return;
      end if;
      perform set_config('crm.metrics_pending', '', true);
      -- Sorted, so that concurrent transactions lock the customers' metrics rows in one order.
      perform crm_refresh_customer_metrics(array(select unnest(string_to_array(rtrim(pending, ','), ',')::uuid[]) as id order by id));
    end $$`.execute(db)

  await sql`
    create function crm_metrics_flush() returns trigger language plpgsql as $$
    begin
      perform crm_flush_customer_metrics();
      return null;
    end $$`.execute(db)

  for (const table of ['orders', 'interactions', 'feedback']) {
    await sql.raw(`
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
  await sql`drop function crm_metrics_capture()`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  // The statement-level triggers of the customer_metrics migration, as they were.
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
  for (const table of ['orders', 'interactions', 'feedback']) {
    await sql.raw(`
      drop trigger if exists metrics_insert on ${table};
      drop trigger if exists metrics_update on ${table};
      drop trigger if exists metrics_delete on ${table};
      create trigger metrics_insert after insert on ${table} referencing new table as crm_new_rows
        for each statement execute function crm_metrics_capture();
      create trigger metrics_update after update on ${table} referencing old table as crm_old_rows new table as crm_new_rows
        for each statement execute function crm_metrics_capture();
      create trigger metrics_delete after delete on ${table} referencing old table as crm_old_rows
        for each statement execute function crm_metrics_capture();
    `).execute(db)
  }
  await sql`drop function if exists crm_metrics_flush(), crm_flush_customer_metrics(), crm_metrics_note(uuid, uuid)`.execute(db)
}
