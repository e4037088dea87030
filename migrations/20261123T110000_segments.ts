import { type Kysely, sql } from 'kysely'

/**
 * Segments: dynamic ones store a customer filter (the language of lib/filters), static ones list
 * their members. A dynamic segment's membership as of its last refresh is kept in
 * segment_snapshots, and every change of membership (a customer entering or leaving, by a refresh
 * or by a static add/remove) is appended to segment_membership_events, which is the history API.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table segments (
      id uuid primary key default crm_uuid_v7(),
      name text not null,
      description text,
      kind text not null check (kind in ('dynamic', 'static')),
      filter jsonb,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      archived_at timestamptz,
      check ((kind = 'dynamic') = (filter is not null))
    )`.execute(db)
  // Names are unique among live segments, whatever their case.
  await sql`create unique index segments_live_name_idx on segments (lower(name)) where archived_at is null`.execute(db)
  await sql`create index segments_created_idx on segments (created_at, id)`.execute(db)
  await sql`create index segments_name_idx on segments (name, id)`.execute(db)

  await sql`
    create table segment_members (
      id uuid primary key default crm_uuid_v7(),
      segment_id uuid not null references segments (id),
      customer_id uuid not null references customers (id),
      added_at timestamptz not null default now(),
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (segment_id, customer_id)
    )`.execute(db)
  await sql`create index segment_members_customer_idx on segment_members (customer_id)`.execute(db)

  await sql`
    create table segment_snapshots (
      id uuid primary key default crm_uuid_v7(),
      segment_id uuid not null references segments (id),
      customer_id uuid not null references customers (id),
      entered_at timestamptz not null default now(),
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (segment_id, customer_id)
    )`.execute(db)
  await sql`create index segment_snapshots_customer_idx on segment_snapshots (customer_id)`.execute(db)

  await sql`
    create table segment_membership_events (
      id uuid primary key default crm_uuid_v7(),
      segment_id uuid not null references segments (id),
      customer_id uuid not null references customers (id),
      event text not null check (event in ('entered', 'left')),
      occurred_at timestamptz not null default now(),
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  await sql`create index segment_events_segment_idx on segment_membership_events (segment_id, occurred_at, id)`.execute(db)
  await sql`create index segment_events_customer_idx on segment_membership_events (customer_id, occurred_at)`.execute(db)

  for (const table of ['segments', 'segment_members', 'segment_snapshots', 'segment_membership_events']) {
    await sql`create trigger touch before update on ${sql.table(table)} for each row execute function crm_touch()`.execute(db)
    await sql`select crm_audit_attach(${table}::regclass)`.execute(db)
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists segment_membership_events, segment_snapshots, segment_members, segments`.execute(db)
}
