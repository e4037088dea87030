import { type Kysely, sql } from 'kysely'

/**
 * Idempotency keys (API.md § Writing): the response a POST gave, kept for 24 hours so that a
 * retry with the same Idempotency-Key replays it instead of repeating the change. A row is
 * written in the same transaction as the change it answers, so a rolled-back request leaves none.
 *
 * Not audited (no crm_audit_attach): a row is the record of a request, not CRM data; the change it
 * answers is audited already, and copying response bodies (which can hold PII) into the audit
 * trail would keep them there forever.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table idempotency_keys (
      actor text not null,
      route text not null,
      key text not null check (length(key) between 1 and 255),
      fingerprint text not null,
      status integer not null check (status between 100 and 599),
      headers jsonb not null default '{}',
      body text,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      primary key (actor, route, key)
    )`.execute(db)
  // The periodic purge deletes by expiry.
  await sql`create index idempotency_keys_expires_idx on idempotency_keys (expires_at)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists idempotency_keys`.execute(db)
}
