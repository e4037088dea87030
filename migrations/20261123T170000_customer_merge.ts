import { type Kysely, sql } from 'kysely'

/**
 * Merging duplicate customers (POST /v1/customers/{id}/merge). The duplicate is archived and
 * points at the customer it was merged into; it keeps its own external_ref, so the unique index
 * still reserves that ref, and the customers external_ref upsert follows merged_into_id to the
 * surviving customer. A merge repoints earlier merges into the duplicate, so the chain is always
 * one step long.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table customers add column merged_into_id uuid references customers (id)`.execute(db)
  await sql`
    alter table customers
      add constraint customers_merged_into_other check (merged_into_id <> id),
      add constraint customers_merged_archived check (merged_into_id is null or archived_at is not null)`.execute(db)
  await sql`create index customers_merged_into_idx on customers (merged_into_id) where merged_into_id is not null`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table customers drop column if exists merged_into_id`.execute(db)
}
