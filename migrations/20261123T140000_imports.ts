import { type Kysely, sql } from 'kysely'

/**
 * Bulk imports: a job per upload, and an unlogged staging table that rows are COPYed into before
 * one set-wise merge. Staging rows carry their job id and line number so that rows the merge
 * refuses can be reported per line; they are deleted when the job ends.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table imports (
      id uuid primary key default crm_uuid_v7(),
      kind text not null check (kind in ('customers')),
      format text not null check (format in ('csv', 'ndjson')),
      status text not null default 'receiving' check (status in ('receiving', 'merging', 'succeeded', 'failed')),
      rows_received integer not null default 0,
      rows_imported integer not null default 0,
      rows_created integer not null default 0,
      rows_updated integer not null default 0,
      rows_rejected integer not null default 0,
      errors jsonb not null default '[]',
      failure text,
      actor text not null,
      request_id text,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      finished_at timestamptz
    )`.execute(db)
  await sql`create index imports_created_idx on imports (created_at, id)`.execute(db)
  await sql`create trigger touch before update on imports for each row execute function crm_touch()`.execute(db)
  await sql`select crm_audit_attach('imports'::regclass)`.execute(db)

  await sql`
    create unlogged table import_customer_rows (
      import_id uuid not null,
      line integer not null,
      external_ref text,
      name text not null,
      given_name text,
      family_name text,
      gender text,
      birthday date,
      occupation text,
      marital_status text,
      company text,
      job_title text,
      preferred_channel text,
      acquisition_source text,
      tags text[],
      email text,
      email_normalized text,
      phone text,
      phone_normalized text,
      customer_id uuid not null,
      rejected text,
      primary key (import_id, line)
    )`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists import_customer_rows, imports`.execute(db)
}
