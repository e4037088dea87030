import { type ExpressionBuilder, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import { compiledByKey, compiledByShape } from '../../db/compiled.js'
import type { CustomerRow, Database, NewCustomerRow } from '../../db/rows.js'
import { externalRefTable } from '../../db/versioned.js'
import { keysetOrder, keysetPage, type PageRequest, type SortKey } from '../../lib/pagination.js'
import type { ArchivedFilter } from '../../lib/schema.js'
import type { CustomerPredicate } from '../filters/filter.compile.js'

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

export const withPrimaries = (eb: ExpressionBuilder<Database, 'customers'>) => [
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

/**
 * The customers among `ids` that exist and are not archived, with the terms a credit sale
 * defaults to: one query for a batch. With `lock`, they are locked FOR SHARE until the end of the
 * transaction (in id order, so two batches cannot deadlock): a merge, which archives the duplicate
 * under FOR UPDATE, then either waits for this transaction (and moves what it attached) or has
 * committed first, and the archived duplicate is not returned. Without the lock, a create racing
 * a merge could attach its row to the duplicate after the merge moved everything else.
 */
export async function activeCustomers(db: DbExecutor, ids: string[], opts: { lock?: boolean } = {}) {
  if (ids.length === 0) return new Map<string, ActiveCustomer>()
  const rows = await db
    .selectFrom('customers')
    .select(['id', 'payment_terms_days'])
    .where('id', 'in', [...new Set(ids)])
    .where('archived_at', 'is', null)
    .orderBy('id')
    .$if(opts.lock === true, (qb) => qb.forShare())
    .execute()
  return new Map(rows.map((r) => [r.id, r]))
}

export interface ActiveCustomer {
  id: string
  payment_terms_days: number | null
}

/** Whether a customer with this id exists, archived or not. */
export async function customerExists(db: DbExecutor, id: string): Promise<boolean> {
  return (await customerVersion(db, id)) !== undefined
}

/** The customer table's versioned-record operations: lock, archive and restore, upsert by external_ref. */
export const customers = externalRefTable('customers', 'customer')

export const customerVersion = customers.version

/** Inserts a customer without external_ref (with one: customers.upsert). */
export async function insertCustomer(db: DbExecutor, row: NewCustomerRow): Promise<string> {
  const { id } = await db.insertInto('customers').values(row).returning('id').executeTakeFirstOrThrow()
  return id
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


export const whereListFilters = (f: CustomerFilters) => sql<boolean>`${f.archived === 'all' ? sql`true` : sql`customers.archived_at ${f.archived === 'true' ? sql`is not` : sql`is`} null`}
  ${f.tags?.length ? sql`and customers.tags @> ${f.tags}::text[]` : sql``}
  ${f.lifecycle_stage ? sql`and customers.lifecycle_stage = ${f.lifecycle_stage}` : sql``}
  ${f.acquisition_source ? sql`and customers.acquisition_source = ${f.acquisition_source}` : sql``}
  ${f.created_after ? sql`and customers.created_at >= ${f.created_after}` : sql``}
  ${f.created_before ? sql`and customers.created_at < ${f.created_before}` : sql``}`

/**
 * A page of customers in the list's order, after the cursor, without a search term (f.q is the
 * search engine's, customers.search.repository.ts): the query is compiled once per shape.
 */
export async function listCustomers(db: DbExecutor, f: CustomerFilters, { keys, after, limit }: PageRequest): Promise<CustomerRecord[]> {
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

function listQuery(db: DbExecutor, f: CustomerFilters, keys: SortKey[], after: unknown[] | undefined, take: number) {
  const query = db.selectFrom('customers').selectAll('customers').select(withPrimaries).where(whereListFilters(f))
  return keysetOrder(query, { keys, after }, 'customers').limit(take)
}

/**
 * Customers matching a compiled filter (modules/filters), keyset-paginated like every list. Used by
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

// Merge ------------------------------------------------------------------------------------

/** Both customers of a merge, locked in id order (so two merges of the same pair cannot deadlock). */
export async function lockCustomers(db: DbExecutor, ids: string[]): Promise<CustomerRow[]> {
  return db.selectFrom('customers').selectAll().where('id', 'in', ids).orderBy('id').forUpdate().execute()
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
