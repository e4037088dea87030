import { type Expression, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import { keysetSql, type PageRequest } from '../../lib/pagination.js'
import { whereListFilters, withPrimaries, type CustomerFilters, type CustomerRecord } from './customers.repository.js'

/**
 * The search engine behind `?q=` on the customer list: a term matched against names and (with
 * pii:read) emails and phones, served by trigram and bigram indexes, paged in the list's order.
 */

const likePattern = (term: string) => `%${term.replace(/[\\%_]/g, (c) => '\\' + c)}%`

/** Terms of this length have no trigram: the bigram indexes of the search migration serve them. */
const BIGRAM_LENGTH = 2

/** The name contains the term: served by the name's trigram index (or, for two characters, bigram index). */
const nameMatches = (q: string) => sql<boolean>`customers.name ilike ${likePattern(q)}
  ${[...q].length === BIGRAM_LENGTH ? sql`and crm_bigrams(lower(customers.name)) @> array[${q.toLowerCase()}]::text[]` : sql``}`

/** An email or phone (alias cp) contains the term: served by the contact points' trigram or bigram index. */
function contactMatches(q: string) {
  const term = contactSearchTerm(q)
  return sql<boolean>`cp.kind in ('email', 'phone') and cp.value_normalized like ${likePattern(term)}
    ${[...term].length === BIGRAM_LENGTH ? sql`and crm_bigrams(cp.value_normalized) @> array[${term}]::text[]` : sql``}`
}

/**
 * The customers whose name (or, with qContacts, email or phone) contains the term and who pass
 * the other filters (and the cursor), with their sort keys: every match, from the trigram (or,
 * for two-character terms, bigram) indexes. Name matches come with their keys from the rows the
 * index scan already rechecked; customers matched by a contact point are fetched by primary key,
 * from an array of ids: a plain IN (subquery) let the planner misjudge how many match and
 * hash-join a sequential scan of all customers.
 */
function matchingCustomers(q: string, qContacts: boolean, where: Expression<boolean>) {
  const columns = sql`customers.id, customers.created_at, customers.updated_at, customers.name`
  const byName = sql`select ${columns} from customers where ${nameMatches(q)} and ${where}`
  if (!qContacts) return byName
  return sql`${byName}
    union
    select ${columns} from customers
    where customers.id = any(array(select cp.customer_id from contact_points cp where ${contactMatches(q)}))
    and ${where}`
}

/** Emails and phones are compared without case, spaces, dots, dashes and parentheses. */
const contactSearchTerm = (q: string) => q.toLowerCase().replace(/[\s().-]/g, '')

/**
 * Whether one customer row (alias customers) matches the term: the per-row form of matchingCustomers.
 * The contacts are tested per customer, through contact_points_customer_idx, by a scalar subquery
 * with the LIKE inside bool_or: as EXISTS the planner may hash the subquery, and as a WHERE
 * condition it may AND the trigram index into every probe; both first gather every matching
 * contact point (25,000 heap pages for "garcia" at a million customers), the cost the walk avoids.
 */
function matchesTerm(q: string, qContacts: boolean) {
  const byName = sql<boolean>`customers.name ilike ${likePattern(q)}`
  if (!qContacts) return byName
  return sql<boolean>`(${byName} or (
    select bool_or(cp.value_normalized like ${likePattern(contactSearchTerm(q))}) from contact_points cp
    where cp.customer_id = customers.id and cp.kind in ('email', 'phone')) is true)`
}

/**
 * How many customers a q search checks one by one, in the list's order from the cursor, before it
 * gathers every match instead. A common term (a frequent name, an email fragment) matches tens of
 * thousands of customers at a million: gathering them all reads each match's row, while walking
 * the order fills the page within a few thousand rows. A rare term is the opposite: the walk would
 * cover the whole table, and gathering its few matches is cheap. So the walk is bounded, and only
 * when it ends without a full page are the matches gathered. At a million customers a walked row
 * costs about 7 µs and a gathered match 10-35 µs (bench/search-q-explain.ts); 8,000 rows fill a
 * page for any term matching more than about 0.6 % of customers, and the worst case, a term just
 * below that, pays the walk and a gathering of some 6,000 matches.
 */
export const SEARCH_WALK_ROWS = 8000

type WalkedRow = CustomerRecord & { q_hit: boolean; q_walked: number }

/**
 * The page of a q search found by walking at most SEARCH_WALK_ROWS customers in the list's order
 * (every customer after the cursor, whatever the other filters: the bound is on rows read, so a
 * sparse filter cannot make the walk long) and testing each against the filters and the term.
 * The walk stops as soon as the page is full. undefined when the bound was reached first.
 */
async function walkForPage(db: DbExecutor, f: CustomerFilters & { q: string }, page: PageRequest, walkRows: number) {
  const keyset = keysetSql(page, 'customers')
  const walk = sql`
    select customers.*, (${whereListFilters(f)} and ${matchesTerm(f.q, f.qContacts)}) as q_hit,
      row_number() over (order by ${keyset.orderBy}) as q_walked
    from customers ${page.after ? sql`where ${keyset.where}` : sql``}
    order by ${keyset.orderBy}
    limit ${walkRows}`
  const rows = await db
    .selectFrom(sql`(${walk})`.as('customers') as unknown as 'customers')
    .selectAll('customers')
    .select(withPrimaries)
    .where(sql<boolean>`customers.q_hit or customers.q_walked = ${walkRows}`)
    .orderBy(keyset.orderBy)
    .limit(page.limit + 1)
    .execute() as unknown as WalkedRow[]
  const hits: CustomerRecord[] = []
  for (const { q_hit, q_walked, ...row } of rows) {
    if (q_hit) hits.push(row)
    if (hits.length > page.limit) return hits
    if (Number(q_walked) === walkRows) return undefined
  }
  return hits
}

/**
 * The page of a q search from every match: only the matches' sort keys are sorted, and only the
 * page's customers are read in full.
 */
async function gatherPage(db: DbExecutor, f: CustomerFilters & { q: string }, page: PageRequest) {
  const keyset = keysetSql(page, 'customers')
  const where = sql<boolean>`${whereListFilters(f)} ${page.after ? sql`and ${keyset.where}` : sql``}`
  const ids = sql`select customers.id from (${matchingCustomers(f.q, f.qContacts, where)}) customers order by ${keyset.orderBy} limit ${page.limit + 1}`
  return db
    .selectFrom('customers')
    .selectAll('customers')
    .select(withPrimaries)
    .where(sql<boolean>`customers.id = any(array(${ids}))`)
    .orderBy(keyset.orderBy)
    .execute()
}

/**
 * Sorts whose order the walk follows (SEARCH_WALK_ROWS). Not name: in name order the matches of a
 * name fragment cluster (by script, then given name), so a walk from the start rarely meets them,
 * and it reads the heap at random instead of nearly in order as the time orders do.
 */
const WALKED_SORTS = new Set(['created_at', 'updated_at'])

/**
 * A term with fewer matches than this is rare: its page is gathered at once (at most ~1,000
 * matches, a few tens of ms), without first walking SEARCH_WALK_ROWS customers that could never
 * fill a page (the walk alone costs ~50 ms at a million customers). The count stops at the bound,
 * so counting a common term's matches costs a bounded index probe.
 */
export const SEARCH_RARE_MATCHES = 1000

async function isRareTerm(db: DbExecutor, q: string, qContacts: boolean): Promise<boolean> {
  const byName = sql`select 1 from customers where ${nameMatches(q)} limit ${SEARCH_RARE_MATCHES}`
  const byContact = sql`select 1 from contact_points cp where ${contactMatches(q)} limit ${SEARCH_RARE_MATCHES}`
  const r = await sql<{ n: number }>`select count(*)::int as n from ((${byName}) ${qContacts ? sql`union all (${byContact})` : sql``}) m`.execute(db)
  return r.rows[0]!.n < SEARCH_RARE_MATCHES
}

/**
 * A page of the customers matching f.q. `walkRows` (default SEARCH_WALK_ROWS) is for tests, to
 * take either path; 0 skips the walk.
 */
export async function listCustomersByTerm(
  db: DbExecutor, f: CustomerFilters & { q: string }, page: PageRequest, walkRows = SEARCH_WALK_ROWS,
): Promise<CustomerRecord[]> {
  if (walkRows > 0 && WALKED_SORTS.has(page.keys[0]!.field) && !(walkRows === SEARCH_WALK_ROWS && (await isRareTerm(db, f.q, f.qContacts)))) {
    const walked = await walkForPage(db, f, page, walkRows)
    if (walked) return walked
  }
  return gatherPage(db, f, page)
}
