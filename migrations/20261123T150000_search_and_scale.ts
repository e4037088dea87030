import { type Kysely, sql } from 'kysely'

/**
 * Search that stays fast at a million customers (see bench/README.md for the measurements).
 *
 * `q` matches substrings of names, emails and phones through the pg_trgm indexes. A trigram
 * index cannot serve a two-character term (a two-character Chinese name such as 张伟 is the
 * common case, not an edge case): LIKE '%张伟%' has no complete trigram, so it was a sequential
 * scan of customers and contact points. Bigram GIN indexes serve exactly those terms; the query
 * still rechecks with ILIKE/LIKE, so the bigrams only narrow the candidates.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function crm_bigrams(value text) returns text[] language sql immutable strict parallel safe as $$
      select coalesce(array_agg(distinct substr(value, i, 2)), '{}') from generate_series(1, length(value) - 1) i
    $$`.execute(db)
  await sql`create index customers_name_bigram_idx on customers using gin (crm_bigrams(lower(name)))`.execute(db)
  await sql`
    create index contact_points_value_bigram_idx on contact_points using gin (crm_bigrams(value_normalized))
    where kind in ('email', 'phone')`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists contact_points_value_bigram_idx, customers_name_bigram_idx`.execute(db)
  await sql`drop function if exists crm_bigrams(text)`.execute(db)
}
