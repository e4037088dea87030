import { type ExpressionBuilder, type Expression, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import { compiledByKey } from '../../db/compiled.js'
import type { ContactPointRow, CustomerRow, Database, NewCustomerRow } from '../../db/schema.js'
import { afterCursor, type SortKey } from '../../lib/pagination.js'
import type { CustomerPredicate } from '../../lib/filters/filter.compile.js'

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
  const row = await db
    .selectFrom('customers')
    .select('id')
    .where('id', '=', id)
    .$if(opts.active === true, (qb) => qb.where('archived_at', 'is', null))
    .executeTakeFirst()
  return row !== undefined
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
  archived: boolean
}

const likePattern = (term: string) => `%${term.replace(/[\\%_]/g, (c) => '\\' + c)}%`

/** Terms of this length have no trigram: the bigram indexes of the search migration serve them. */
const BIGRAM_LENGTH = 2

/** Ids of the customers whose name (or, with qContacts, email or phone) contains the term. */
function matchingIds(q: string, qContacts: boolean) {
  const contactTerm = q.toLowerCase().replace(/[\s().-]/g, '')
  const byName = sql`
    select m.id from customers m
    where m.name ilike ${likePattern(q)}
    ${[...q].length === BIGRAM_LENGTH ? sql`and crm_bigrams(lower(m.name)) @> array[${q.toLowerCase()}]::text[]` : sql``}`
  if (!qContacts) return byName
  return sql`${byName}
    union
    select cp.customer_id from contact_points cp
    where cp.kind in ('email', 'phone') and cp.value_normalized like ${likePattern(contactTerm)}
    ${[...contactTerm].length === BIGRAM_LENGTH ? sql`and crm_bigrams(cp.value_normalized) @> array[${contactTerm}]::text[]` : sql``}`
}

export async function listCustomers(db: DbExecutor, f: CustomerFilters, keys: SortKey[], after: unknown[] | undefined, limit: number): Promise<CustomerRecord[]> {
  let query = db
    .selectFrom('customers')
    .selectAll('customers')
    .select(withPrimaries)
    .where('customers.archived_at', f.archived ? 'is not' : 'is', null)
    .$if(!!f.tags?.length, (qb) => qb.where('customers.tags', '@>', sql<string[]>`${f.tags}::text[]`))
    .$if(!!f.lifecycle_stage, (qb) => qb.where('customers.lifecycle_stage', '=', f.lifecycle_stage!))
    .$if(!!f.acquisition_source, (qb) => qb.where('customers.acquisition_source', '=', f.acquisition_source!))
    .$if(!!f.created_after, (qb) => qb.where('customers.created_at', '>=', f.created_after!))
    .$if(!!f.created_before, (qb) => qb.where('customers.created_at', '<', f.created_before!))

  if (f.q) {
    // The matching ids are gathered first, from the trigram (or, for two-character terms, bigram)
    // indexes, into an array: the customers are then fetched by primary key and the page sorted
    // from those few rows. A plain IN (subquery) let the planner misjudge how many match and
    // hash-join a sequential scan of all customers, or walk the sort index hoping to meet matches.
    query = query.where(sql<boolean>`customers.id = any(array(${matchingIds(f.q, f.qContacts)}))`)
  }
  if (after) {
    query = query.where((eb) => afterCursor(eb, keys, after, (field) => sql.ref(`customers.${field}`), sql.ref('customers.id')))
  }
  for (const k of keys) query = query.orderBy(sql.ref(`customers.${k.field}`), k.desc ? 'desc' : 'asc')
  const last = keys[keys.length - 1]
  return query.orderBy('customers.id', last?.desc ? 'desc' : 'asc').limit(limit + 1).execute()
}

/**
 * Customers matching a compiled filter (lib/filters), keyset-paginated like every list. Used by
 * search and by segments (members, preview, export), so they all page and present alike.
 */
export async function searchCustomers(db: DbExecutor, where: CustomerPredicate, keys: SortKey[], after: unknown[] | undefined, limit: number): Promise<CustomerRecord[]> {
  let query = db.selectFrom('customers').selectAll('customers').select(withPrimaries).where('customers.archived_at', 'is', null).where(where)
  if (after) {
    query = query.where((eb) => afterCursor(eb, keys, after, (field) => sql.ref(`customers.${field}`), sql.ref('customers.id')))
  }
  for (const k of keys) query = query.orderBy(sql.ref(`customers.${k.field}`), k.desc ? 'desc' : 'asc')
  const last = keys[keys.length - 1]
  return query.orderBy('customers.id', last?.desc ? 'desc' : 'asc').limit(limit + 1).execute()
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
