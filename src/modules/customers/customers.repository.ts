import { type ExpressionBuilder, type Expression, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import { compiledByKey, compiledByShape } from '../../db/compiled.js'
import type { ContactPointRow, CustomerRow, Database, NewCustomerRow } from '../../db/schema.js'
import { keysetOrder, keysetPage, keysetSql, type PageRequest, type SortKey } from '../../lib/pagination.js'
import type { CustomerPredicate } from '../../lib/filters/filter.compile.js'
import type { ArchivedFilter } from '../../lib/schema.js'

/** A customer row with the primary email and phone, as every customer read returns it. */
export type CustomerRecord = CustomerRow & { primary_email: string | null; primary_phone: string | null }

const primaryOf = (eb: ExpressionBuilder<Database, 'customers'>, kind: 'email' | 'phone') =>
  eb
    .selectFrom('contact_points')
    .select('contact_points.value')
    .whereRef('contact_points.customer_id', '=', 'customers.id')
    .where('contact_points.kind', '=', kind)
    .where('contact_points.is_primary', '=', true)
    .limit(1)

const withPrimaries = (eb: ExpressionBuilder<Database, 'customers'>) => [
  primaryOf(eb, 'email').as('primary_email'),
  primaryOf(eb, 'phone').as('primary_phone'),
]

/** The one query of a customer read (bench/ runs the same SQL in its baselines). */
export const findCustomerQuery = (db: DbExecutor, id: string) =>
  db.selectFrom('customers').selectAll('customers').select(withPrimaries).where('customers.id', '=', id)

const findCustomerCompiled = compiledByKey(findCustomerQuery)

export async function findCustomer(db: DbExecutor, id: string): Promise<CustomerRecord | undefined> {
  return (await findCustomerCompiled(db, id))[0]
}

/** Whether a customer with this id exists; with `active`, only if it is also not archived. */
export async function customerExists(db: DbExecutor, id: string, opts: { active?: boolean } = {}): Promise<boolean> {
  return (await existingCustomers(db, [id], opts)).has(id)
}

/** The ids among `ids` of customers that exist (with active: and are not archived): one query for a batch. */
export async function existingCustomers(db: DbExecutor, ids: string[], opts: { active?: boolean } = {}): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db
    .selectFrom('customers')
    .select('id')
    .where('id', 'in', ids)
    .$if(opts.active === true, (qb) => qb.where('archived_at', 'is', null))
    .execute()
  return new Set(rows.map((r) => r.id))
}

export async function customerVersion(db: DbExecutor, id: string): Promise<number | undefined> {
  const row = await db.selectFrom('customers').select('version').where('id', '=', id).executeTakeFirst()
  return row?.version
}

export async function insertCustomer(db: DbExecutor, row: NewCustomerRow): Promise<string> {
  const { id } = await db.insertInto('customers').values(row).returning('id').executeTakeFirstOrThrow()
  return id
}

/**
 * Create-or-update by external_ref in one statement. Returns the id and whether it was created
 * (xmax = 0 only for a freshly inserted row).
 */
export async function upsertCustomerByExternalRef(db: DbExecutor, row: NewCustomerRow & { external_ref: string }, updateColumns: string[]) {
  return db
    .insertInto('customers')
    .values(row)
    .onConflict((oc) =>
      oc.column('external_ref').doUpdateSet((eb) => {
        const set: Record<string, Expression<unknown>> = {}
        for (const c of updateColumns) {
          set[c] = MERGED_JSON_COLUMNS.has(c)
            ? sql`crm_jsonb_merge_patch(${sql.ref(`customers.${c}`)}, ${sql.ref(`excluded.${c}`)})`
            : eb.ref(`excluded.${c}` as 'excluded.name')
        }
        return set
      }),
    )
    .returning(['id', sql<boolean>`(xmax = 0)`.as('inserted')])
    .executeTakeFirstOrThrow()
}

/** JSON columns are merged (RFC 7396) in SQL; everything else is replaced. */
export const MERGED_JSON_COLUMNS = new Set(['preferences', 'attributes', 'consent'])

/** Applies a merge patch; with expectedVersion only if the row still has that version. */
export async function updateCustomer(db: DbExecutor, id: string, changes: Record<string, unknown>, expectedVersion?: number): Promise<boolean> {
  const set: Record<string, unknown> = {}
  for (const [column, value] of Object.entries(changes)) {
    set[column] = MERGED_JSON_COLUMNS.has(column) ? sql`crm_jsonb_merge_patch(${sql.ref(column)}, ${JSON.stringify(value)}::jsonb)` : value
  }
  const result = await db
    .updateTable('customers')
    .set(set)
    .where('id', '=', id)
    .$if(expectedVersion !== undefined, (qb) => qb.where('version', '=', expectedVersion!))
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export async function setArchived(db: DbExecutor, id: string, archived: boolean, expectedVersion?: number): Promise<boolean> {
  const result = await db
    .updateTable('customers')
    .set({ archived_at: archived ? sql<string>`now()` : null } as never)
    .where('id', '=', id)
    .$if(expectedVersion !== undefined, (qb) => qb.where('version', '=', expectedVersion!))
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export interface CustomerFilters {
  q?: string
  /** Whether q also matches email and phone contact points (needs pii:read). */
  qContacts: boolean
  tags?: string[]
  lifecycle_stage?: string
  acquisition_source?: string
  created_after?: string
  created_before?: string
  archived: ArchivedFilter
}

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

const whereListFilters = (f: CustomerFilters) => sql<boolean>`${f.archived === 'all' ? sql`true` : sql`customers.archived_at ${f.archived === 'true' ? sql`is not` : sql`is`} null`}
  ${f.tags?.length ? sql`and customers.tags @> ${f.tags}::text[]` : sql``}
  ${f.lifecycle_stage ? sql`and customers.lifecycle_stage = ${f.lifecycle_stage}` : sql``}
  ${f.acquisition_source ? sql`and customers.acquisition_source = ${f.acquisition_source}` : sql``}
  ${f.created_after ? sql`and customers.created_at >= ${f.created_after}` : sql``}
  ${f.created_before ? sql`and customers.created_at < ${f.created_before}` : sql``}`


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
 * `walkRows` (default SEARCH_WALK_ROWS) is for tests, to take either path of a q search; 0 skips
 * the walk.
 */
export async function listCustomers(
  db: DbExecutor, f: CustomerFilters, page: PageRequest, walkRows = SEARCH_WALK_ROWS,
): Promise<CustomerRecord[]> {
  const { keys, after, limit } = page
  if (f.q) {
    const q = { ...f, q: f.q }
    if (walkRows > 0 && WALKED_SORTS.has(keys[0]!.field) && !(walkRows === SEARCH_WALK_ROWS && (await isRareTerm(db, q.q, q.qContacts)))) {
      const walked = await walkForPage(db, q, page, walkRows)
      if (walked) return walked
    }
    return gatherPage(db, q, page)
  }
  const shape: ListShape = {
    archived: f.archived, tags: !!f.tags?.length, lifecycle_stage: !!f.lifecycle_stage, acquisition_source: !!f.acquisition_source,
    created_after: !!f.created_after, created_before: !!f.created_before, keys, cursor: after?.length ?? 0,
  }
  const values: Record<string, unknown> = {
    tags: f.tags, lifecycle_stage: f.lifecycle_stage, acquisition_source: f.acquisition_source,
    created_after: f.created_after, created_before: f.created_before, take: limit + 1,
  }
  after?.forEach((v, i) => (values[`cursor${i}`] = v))
  return listCompiled(db, shape, values)
}

/** What decides the SQL of a list without a search term; the values only fill its parameters. */
interface ListShape {
  archived: ArchivedFilter
  tags: boolean
  lifecycle_stage: boolean
  acquisition_source: boolean
  created_after: boolean
  created_before: boolean
  keys: SortKey[]
  cursor: number
}

// The list without a search term, compiled once per shape: building and compiling the Kysely
// tree of this query was about a tenth of a list page's CPU.
const listCompiled = compiledByShape((db, s: ListShape, v: Record<string, unknown>) => {
  const f: CustomerFilters = { qContacts: false, archived: s.archived }
  if (s.tags) f.tags = v.tags as string[]
  if (s.lifecycle_stage) f.lifecycle_stage = v.lifecycle_stage as string
  if (s.acquisition_source) f.acquisition_source = v.acquisition_source as string
  if (s.created_after) f.created_after = v.created_after as string
  if (s.created_before) f.created_before = v.created_before as string
  const after = s.cursor > 0 ? Array.from({ length: s.cursor }, (_, i) => v[`cursor${i}`]) : undefined
  return listQuery(db, f, s.keys, after, v.take as number)
})

function listQuery(db: DbExecutor, f: CustomerFilters, keys: SortKey[], after: unknown[] | undefined, take: unknown) {
  const query = db.selectFrom('customers').selectAll('customers').select(withPrimaries).where(whereListFilters(f))
  return keysetOrder(query, { keys, after }, 'customers').limit(take as number)
}

/**
 * Customers matching a compiled filter (lib/filters), keyset-paginated like every list. Used by
 * search and by segments (members, preview, export), so they all page and present alike.
 */
export async function searchCustomers(db: DbExecutor, where: CustomerPredicate, page: PageRequest): Promise<CustomerRecord[]> {
  const query = db.selectFrom('customers').selectAll('customers').select(withPrimaries).where('customers.archived_at', 'is', null).where(where)
  return keysetPage(query, page, 'customers').execute()
}

export async function countCustomers(db: DbExecutor, where: CustomerPredicate): Promise<number> {
  const row = await db
    .selectFrom('customers')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('customers.archived_at', 'is', null)
    .where(where)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

// Contact points ---------------------------------------------------------------------------

export type NewContactPoint = Omit<ContactPointRow, 'id' | 'version' | 'created_at' | 'updated_at'>

export async function listContactPoints(db: DbExecutor, customerIds: string[]): Promise<ContactPointRow[]> {
  if (customerIds.length === 0) return []
  return db
    .selectFrom('contact_points')
    .selectAll()
    .where('customer_id', 'in', customerIds)
    .orderBy('customer_id')
    .orderBy('kind')
    .orderBy('is_primary', 'desc')
    .orderBy('created_at')
    .orderBy('id')
    .execute()
}

export async function findContactPoint(db: DbExecutor, customerId: string, id: string): Promise<ContactPointRow | undefined> {
  return db.selectFrom('contact_points').selectAll().where('id', '=', id).where('customer_id', '=', customerId).executeTakeFirst()
}

export async function findContactPointByValue(db: DbExecutor, customerId: string, kind: string, valueNormalized: string) {
  return db
    .selectFrom('contact_points')
    .selectAll()
    .where('customer_id', '=', customerId)
    .where('kind', '=', kind)
    .where('value_normalized', '=', valueNormalized)
    .executeTakeFirst()
}

export async function hasPrimary(db: DbExecutor, customerId: string, kind: string): Promise<boolean> {
  const row = await db
    .selectFrom('contact_points')
    .select('id')
    .where('customer_id', '=', customerId)
    .where('kind', '=', kind)
    .where('is_primary', '=', true)
    .executeTakeFirst()
  return !!row
}

/** Clears the current primary of a kind so another can take its place. */
export async function demotePrimary(db: DbExecutor, customerId: string, kind: string, exceptId?: string): Promise<void> {
  await db
    .updateTable('contact_points')
    .set({ is_primary: false })
    .where('customer_id', '=', customerId)
    .where('kind', '=', kind)
    .where('is_primary', '=', true)
    .$if(!!exceptId, (qb) => qb.where('id', '!=', exceptId!))
    .execute()
}

export async function insertContactPoint(db: DbExecutor, row: NewContactPoint): Promise<ContactPointRow> {
  return db
    .insertInto('contact_points')
    .values({ ...row, address: row.address === null ? null : JSON.stringify(row.address) })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function updateContactPoint(db: DbExecutor, id: string, changes: Partial<NewContactPoint>, expectedVersion?: number): Promise<ContactPointRow | undefined> {
  const set: Record<string, unknown> = { ...changes }
  if (changes.address !== undefined) set.address = changes.address === null ? null : JSON.stringify(changes.address)
  return db
    .updateTable('contact_points')
    .set(set)
    .where('id', '=', id)
    .$if(expectedVersion !== undefined, (qb) => qb.where('version', '=', expectedVersion!))
    .returningAll()
    .executeTakeFirst()
}

export async function deleteContactPoint(db: DbExecutor, id: string, expectedVersion?: number): Promise<ContactPointRow | undefined> {
  return db
    .deleteFrom('contact_points')
    .where('id', '=', id)
    .$if(expectedVersion !== undefined, (qb) => qb.where('version', '=', expectedVersion!))
    .returningAll()
    .executeTakeFirst()
}

/** After the primary of a kind is removed, the oldest remaining one of that kind becomes primary. */
export async function promoteOldest(db: DbExecutor, customerId: string, kind: string): Promise<void> {
  await db
    .updateTable('contact_points')
    .set({ is_primary: true })
    .where('id', '=', (eb) =>
      eb
        .selectFrom('contact_points')
        .select('id')
        .where('customer_id', '=', customerId)
        .where('kind', '=', kind)
        .orderBy('created_at')
        .orderBy('id')
        .limit(1),
    )
    .execute()
}

// Metrics ----------------------------------------------------------------------------------

export async function findMetrics(db: DbExecutor, customerIds: string[]) {
  if (customerIds.length === 0) return { metrics: [], spend: [] }
  const [metrics, spend] = await Promise.all([
    db.selectFrom('customer_metrics').selectAll().where('customer_id', 'in', customerIds).execute(),
    db
      .selectFrom('customer_spend')
      .select(['customer_id', 'currency', 'order_count', 'total_spent', sql<string>`round(total_spent / nullif(order_count, 0), 2)::text`.as('average_order_value')])
      .where('customer_id', 'in', customerIds)
      .orderBy('customer_id')
      .orderBy('currency')
      .execute(),
  ])
  return { metrics, spend }
}

/** Recomputes metrics and, unless pinned by hand, the lifecycle stage (see the metrics migration). */
/**
 * Metrics and the derived stage of customers touched in this transaction are refreshed at commit
 * (see the metrics_deferred migration); this runs that refresh now, for a handler that answers
 * with them.
 */
export async function flushPendingMetrics(db: DbExecutor): Promise<void> {
  await sql`select crm_flush_customer_metrics()`.execute(db)
}

export async function refreshMetrics(db: DbExecutor, customerId: string): Promise<void> {
  await sql`select crm_refresh_customer_metrics(array[${customerId}]::uuid[])`.execute(db)
}

/**
 * Applies the lifecycle rules to every customer whose stage is not pinned by hand: time alone
 * moves customers to at_risk and churned, with no write to trigger it. Returns how many changed.
 */
export async function refreshAllLifecycleStages(db: DbExecutor): Promise<number> {
  const { rows } = await sql<{ changed: number }>`select crm_refresh_lifecycle() as changed`.execute(db)
  return rows[0]?.changed ?? 0
}

// Merge ------------------------------------------------------------------------------------

/** Both customers of a merge, locked in id order (so two merges of the same pair cannot deadlock). */
export async function lockCustomers(db: DbExecutor, ids: string[]): Promise<CustomerRow[]> {
  return db.selectFrom('customers').selectAll().where('id', 'in', ids).orderBy('id').forUpdate().execute()
}

/** The customer holding an external_ref, locked, with where it was merged into (if it was). */
export async function lockByExternalRef(db: DbExecutor, externalRef: string) {
  return db.selectFrom('customers').select(['id', 'merged_into_id']).where('external_ref', '=', externalRef).forUpdate().executeTakeFirst()
}

/** The contact points of some customers, locked for the rest of the transaction. */
export async function lockContactPoints(db: DbExecutor, customerIds: string[]): Promise<ContactPointRow[]> {
  return db.selectFrom('contact_points').selectAll().where('customer_id', 'in', customerIds).orderBy('created_at').orderBy('id').forUpdate().execute()
}

/**
 * Moves a customer's orders, interactions and feedback to another (the metrics triggers
 * recompute both), and its static segment memberships: where both were members, the
 * duplicate's membership is dropped. Dynamic segments follow their filter on the next refresh.
 */
export async function moveActivity(db: DbExecutor, fromId: string, toId: string): Promise<void> {
  for (const table of ['orders', 'interactions', 'feedback'] as const) {
    await db.updateTable(table).set({ customer_id: toId }).where('customer_id', '=', fromId).execute()
  }
  await db
    .deleteFrom('segment_members')
    .where('customer_id', '=', fromId)
    .where('segment_id', 'in', (eb) => eb.selectFrom('segment_members').select('segment_id').where('customer_id', '=', toId))
    .execute()
  await db.updateTable('segment_members').set({ customer_id: toId }).where('customer_id', '=', fromId).execute()
}

/**
 * Applies the merged profile to the target in one UPDATE: the scalar values decided by the
 * service, tags and interests as the union (the target's first), the JSON documents deep-merged
 * with the preferred side winning key by key, and the loyalty points of both.
 */
export async function applyMergedProfile(db: DbExecutor, targetId: string, duplicateId: string, scalars: Record<string, unknown>, preferDuplicate: boolean): Promise<void> {
  const union = (column: 'tags' | 'interests') =>
    sql`t.${sql.ref(column)} || array(select x from unnest(d.${sql.ref(column)}) with ordinality u(x, n) where x <> all(t.${sql.ref(column)}) order by n)`
  const merged = (column: 'preferences' | 'attributes' | 'consent') =>
    preferDuplicate
      ? sql`crm_jsonb_merge_patch(t.${sql.ref(column)}, d.${sql.ref(column)})`
      : sql`crm_jsonb_merge_patch(d.${sql.ref(column)}, t.${sql.ref(column)})`
  await db
    .updateTable('customers as t')
    .from('customers as d')
    .set({
      ...(scalars as object),
      tags: union('tags'),
      interests: union('interests'),
      preferences: merged('preferences'),
      attributes: merged('attributes'),
      consent: merged('consent'),
      loyalty_points: sql`t.loyalty_points + d.loyalty_points`,
    } as never)
    .where('t.id', '=', targetId)
    .where('d.id', '=', duplicateId)
    .execute()
}

/**
 * Archives the duplicate as merged into the target (its loyalty points went to the target), and
 * repoints customers merged into the duplicate earlier, so merged_into_id is always one step.
 */
export async function markMerged(db: DbExecutor, duplicateId: string, targetId: string): Promise<void> {
  await db
    .updateTable('customers')
    .set({ merged_into_id: targetId, loyalty_points: 0, archived_at: sql<string>`coalesce(archived_at, now())` } as never)
    .where('id', '=', duplicateId)
    .execute()
  await db.updateTable('customers').set({ merged_into_id: targetId }).where('merged_into_id', '=', duplicateId).execute()
}
