import { type Kysely, sql } from 'kysely'

/**
 * crm_lifecycle_stage was declared IMMUTABLE, but its body subtracts intervals from a timestamptz,
 * which is only STABLE (a day's length depends on the time zone). PostgreSQL never inlines an
 * immutable SQL function whose body is less than immutable, so every call went through the SQL
 * function executor: about 5.5 µs a call, 5.5 s for the lifecycle analytics over 1M customers.
 * Declared STABLE (what it truly is), the CASE is inlined into the calling query: about 0.7 s for
 * the same million calls. It is used in queries and updates only, never in an index.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter function crm_lifecycle_stage(integer, timestamptz, timestamptz) stable`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter function crm_lifecycle_stage(integer, timestamptz, timestamptz) immutable`.execute(db)
}
