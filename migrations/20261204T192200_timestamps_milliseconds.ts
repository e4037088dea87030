import { type Kysely, sql } from 'kysely'

/**
 * The API's timestamps have millisecond precision, in storage as in its answers.
 *
 * A client's clock is usually a millisecond one (a JavaScript Date): a time the API answered
 * with microseconds (…:15.255274Z) comes back as …:15.255Z, and a filter bound or a comparison
 * built from it no longer matches the record it was read from (created_at lte …255Z misses a
 * record at .255274; a search for times after it finds the record itself). So every timestamp
 * column a client reads becomes timestamptz(3): PostgreSQL rounds each value written to the
 * millisecond, whoever writes it (a client's time, a default now(), a trigger's now()), and the
 * API answers exactly what is stored (src/db/database.ts prints three fraction digits). Filters
 * and keyset cursors compare stored values with millisecond bounds, with their indexes as before.
 *
 * The audit trail keeps its column: its hash chain covers each event's occurred_at to the
 * microsecond (crm_audit_canonical), so rewriting old events would break it. New events are
 * stamped at the millisecond (the default below); events from before this migration keep their
 * microseconds and are answered truncated to the millisecond.
 */
const COLUMNS: Record<string, string[]> = {
  customers: ['created_at', 'updated_at', 'archived_at'],
  contact_points: ['created_at', 'updated_at'],
  customer_metrics: ['first_order_at', 'last_order_at', 'last_interaction_at', 'refreshed_at'],
  orders: ['ordered_at', 'created_at', 'updated_at', 'archived_at'],
  order_items: ['created_at', 'updated_at'],
  order_payments: ['paid_at', 'created_at', 'updated_at'],
  interactions: ['occurred_at', 'created_at', 'updated_at', 'archived_at'],
  feedback: ['submitted_at', 'sla_due_at', 'resolved_at', 'created_at', 'updated_at', 'archived_at'],
  segments: ['created_at', 'updated_at', 'archived_at'],
  segment_members: ['added_at', 'created_at', 'updated_at'],
  segment_snapshots: ['entered_at', 'created_at', 'updated_at'],
  segment_membership_events: ['occurred_at', 'created_at', 'updated_at'],
  imports: ['created_at', 'updated_at', 'finished_at'],
}
/** The purchase history's sorted purchase times must equal orders.ordered_at to the last digit. */
const ARRAYS: Record<string, string[]> = {
  customer_purchases: ['ordered_at'],
  customer_currency_purchases: ['ordered_at'],
}

async function retype(db: Kysely<any>, scalar: string, array: string): Promise<void> {
  for (const [table, columns] of Object.entries(COLUMNS)) {
    await sql`alter table ${sql.table(table)} ${sql.join(columns.map((c) => sql`alter column ${sql.ref(c)} type ${sql.raw(scalar)}`))}`.execute(db)
  }
  for (const [table, columns] of Object.entries(ARRAYS)) {
    await sql`alter table ${sql.table(table)} ${sql.join(columns.map((c) => sql`alter column ${sql.ref(c)} type ${sql.raw(array)}`))}`.execute(db)
  }
}

export async function up(db: Kysely<any>): Promise<void> {
  await retype(db, 'timestamptz(3)', 'timestamptz(3)[]')
  await sql`alter table audit_events alter column occurred_at set default date_trunc('milliseconds', now())`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_events alter column occurred_at set default now()`.execute(db)
  await retype(db, 'timestamptz', 'timestamptz[]')
}
