import { type Kysely, sql } from 'kysely'

/**
 * Webhooks (issue 15): subscriptions, their signing secrets, the fan-out cursor of each
 * subscription over the event outbox, deliveries (one per event and subscription: the unit of
 * at-least-once delivery, its lease, its retries and its dead letter) and their attempts.
 *
 * - webhook_subscriptions is audited and versioned like every CRM record (touch, audit_*).
 * - webhook_secrets is not audited: the audit trail copies whole rows, and a copied secret
 *   would be a leaked one. Creating or rotating a secret is audited through the subscription
 *   row (secret_rotated_at changes in the same transaction).
 * - webhook_cursors, webhook_deliveries and webhook_delivery_attempts are the workers' state
 *   and log, written many times a second: not audited. What an operator asks of them (a
 *   manual retry, a replay) is recorded in webhook_operations, which is audited.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table webhook_subscriptions (
      id uuid primary key default crm_uuid_v7(),
      url text not null check (length(url) <= 2048),
      event_types text[] not null check (cardinality(event_types) between 1 and 100),
      filter jsonb,
      status text not null default 'active' check (status in ('active', 'paused', 'disabled')),
      description text,
      disabled_reason text,
      secret_rotated_at timestamptz(3) not null default now(),
      version integer not null default 1,
      created_at timestamptz(3) not null default now(),
      updated_at timestamptz(3) not null default now(),
      archived_at timestamptz(3)
    )`.execute(db)
  await sql`create index webhook_subscriptions_created_idx on webhook_subscriptions (created_at, id)`.execute(db)
  await sql`select crm_audit_attach('webhook_subscriptions')`.execute(db)
  await sql`create trigger touch before update on webhook_subscriptions for each row execute function crm_touch()`.execute(db)

  // A subscription signs with every secret not yet expired: the current one (expires_at null)
  // and, during a rotation's overlap, the previous one.
  await sql`
    create table webhook_secrets (
      id uuid primary key default crm_uuid_v7(),
      subscription_id uuid not null references webhook_subscriptions (id) on delete cascade,
      secret text not null,
      created_at timestamptz(3) not null default now(),
      expires_at timestamptz(3)
    )`.execute(db)
  await sql`create index webhook_secrets_subscription_idx on webhook_secrets (subscription_id)`.execute(db)

  // Where a subscription's fan-out stands in the event feed (a feed position: txid, seq; see
  // migration 20261204T211000_events); a replay moves it back and starts a
  // new generation, so replayed events become new deliveries (new webhook-ids).
  await sql`
    create table webhook_cursors (
      subscription_id uuid primary key references webhook_subscriptions (id) on delete cascade,
      txid xid8 not null,
      seq bigint not null,
      generation integer not null default 0,
      updated_at timestamptz(3) not null default now()
    )`.execute(db)

  await sql`
    create table webhook_deliveries (
      id uuid primary key default crm_uuid_v7(),
      subscription_id uuid not null references webhook_subscriptions (id) on delete cascade,
      event_id uuid not null,
      event_txid xid8 not null,
      event_seq bigint not null,
      event_type text not null,
      entity_id uuid,
      generation integer not null default 0,
      payload text not null,
      status text not null default 'pending' check (status in ('pending', 'succeeded', 'dead')),
      attempts integer not null default 0,
      -- attempts made before the last manual retry: the retry schedule counts from here
      schedule_base integer not null default 0,
      next_attempt_at timestamptz(3) not null default now(),
      lease_owner text,
      lease_until timestamptz(3),
      last_attempt_at timestamptz(3),
      last_status_code integer,
      last_latency_ms integer,
      last_response text,
      last_error text,
      created_at timestamptz(3) not null default now(),
      finished_at timestamptz(3),
      unique (subscription_id, event_id, generation)
    )`.execute(db)
  // The claim: due, pending deliveries; and the order check: an earlier pending delivery of the
  // same entity to the same subscription.
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status = 'pending'`.execute(db)
  await sql`create index webhook_deliveries_entity_idx on webhook_deliveries (subscription_id, entity_id, event_txid, event_seq) where status = 'pending'`.execute(db)
  await sql`create index webhook_deliveries_log_idx on webhook_deliveries (subscription_id, created_at, id)`.execute(db)

  await sql`
    create table webhook_delivery_attempts (
      delivery_id uuid not null references webhook_deliveries (id) on delete cascade,
      attempt integer not null,
      started_at timestamptz(3) not null,
      status_code integer,
      latency_ms integer not null,
      response_excerpt text,
      error text,
      worker text not null,
      primary key (delivery_id, attempt)
    )`.execute(db)

  await sql`
    create table webhook_operations (
      id uuid primary key default crm_uuid_v7(),
      subscription_id uuid not null references webhook_subscriptions (id) on delete cascade,
      kind text not null check (kind in ('retry', 'replay')),
      delivery_id uuid,
      from_position text,
      created_at timestamptz(3) not null default now(),
      check ((kind = 'retry') = (delivery_id is not null) and (kind = 'replay') = (from_position is not null))
    )`.execute(db)
  await sql`select crm_audit_attach('webhook_operations')`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['webhook_operations', 'webhook_delivery_attempts', 'webhook_deliveries', 'webhook_cursors', 'webhook_secrets', 'webhook_subscriptions']) {
    await sql`drop table if exists ${sql.table(table)}`.execute(db)
  }
}
