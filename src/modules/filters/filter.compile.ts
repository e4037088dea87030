import { type Expression, type ExpressionBuilder, type RawBuilder, type SqlBool, sql } from 'kysely'
import type { Database } from '../../db/rows.js'
import { PURCHASE_STATUSES } from '../../lib/purchase-statuses.js'
import { type FieldAst, type FilterAst, type RelatedAst, type Scalar, type TimeBound } from './filter.parse.js'

/**
 * The customer filter compiler: one mechanism shared by POST /v1/customers/search and segments
 * (stored filters, members, counts, exports, refreshes), so a filter means exactly the same thing
 * everywhere. It lives in src/lib because several domains use it (STYLE.md: a mechanism used by
 * more than one domain exists once), and like lib/pagination's afterCursor it builds a Kysely
 * expression that repositories embed in their queries; it never runs a query itself.
 *
 * Every value is a bound parameter; identifiers come only from the parser's whitelist
 * (FILTER_FIELDS) through sql.ref. Related-record conditions are correlated EXISTS / capped COUNT
 * subqueries on the (customer_id, time) indexes of orders, interactions and feedback.
 *
 * Logic: a condition on a missing value is false (eq, gt, contains…), except ne / not_in / exists:false,
 * which hold for a missing value. `not` is `(…) is not true`, so SQL NULLs never leak three-valued
 * logic into results: the tree means what plain boolean logic says.
 */
export type CustomerPredicate = (eb: ExpressionBuilder<Database, 'customers'>) => Expression<SqlBool>

export function compileFilter(ast: FilterAst): CustomerPredicate {
  return (eb) => node(eb, ast)
}

function node(eb: ExpressionBuilder<Database, 'customers'>, ast: FilterAst): Expression<SqlBool> {
  switch (ast.kind) {
    case 'and':
      return eb.and(ast.children.map((c) => node(eb, c)))
    case 'or':
      return eb.or(ast.children.map((c) => node(eb, c)))
    case 'not':
      return sql<SqlBool>`((${node(eb, ast.child)}) is not true)`
    case 'field':
      return condition(ast)
    default:
      return related(ast)
  }
}

const customerId = sql.ref('customers.id')

export function timeBound(t: TimeBound): RawBuilder<string> {
  return 'days' in t ? sql<string>`(now() - make_interval(days => ${t.days}::int))` : sql<string>`${t.at}::timestamptz`
}

/** The SQL value a field condition tests. */
function operand(f: FieldAst): RawBuilder<unknown> {
  if (f.attribute !== undefined) return sql`(${sql.ref('customers.attributes')} -> ${f.attribute}::text)`
  if (f.spec.source === 'column') return sql`${sql.ref(`customers.${f.field}`)}`
  const fromMetrics = (expr: RawBuilder<unknown>) =>
    sql`(select ${expr} from customer_metrics m where m.customer_id = ${customerId})`
  switch (f.field) {
    case 'recency_days':
      return fromMetrics(sql`floor(extract(epoch from (now() - m.last_order_at)) / 86400)::int`)
    case 'lifetime_value':
      return spendAllTime(f.currency)
    case 'monetary':
      if (f.days === undefined) return spendAllTime(f.currency)
      return sql`coalesce((select sum(o.total - o.amount_refunded) from orders o
        where o.customer_id = ${customerId} and o.archived_at is null and o.status in (${sql.join([...PURCHASE_STATUSES])})
          and o.ordered_at >= now() - make_interval(days => ${f.days}::int)
          ${f.currency ? sql`and o.currency = ${f.currency}` : sql``}), 0)`
    default: {
      const value = fromMetrics(sql`${sql.ref(`m.${f.field}`)}`)
      return f.spec.missing === 0 ? sql`coalesce(${value}, 0)` : value
    }
  }
}

function spendAllTime(currency: string | undefined): RawBuilder<unknown> {
  return currency
    ? sql`coalesce((select s.total_spent from customer_spend s where s.customer_id = ${customerId} and s.currency = ${currency}), 0)`
    : sql`coalesce((select sum(s.total_spent) from customer_spend s where s.customer_id = ${customerId}), 0)`
}

const likePattern = (term: string) => `%${term.replace(/[\\%_]/g, (c) => '\\' + c)}%`
const CMP = { gt: sql.raw('>'), gte: sql.raw('>='), lt: sql.raw('<'), lte: sql.raw('<=') } as const

/** Metrics read from customer_metrics, which has no row for a customer with no activity yet. */
const METRIC_COLUMNS = new Set(['order_count', 'interaction_count', 'open_complaints', 'latest_csat', 'latest_nps', 'first_order_at', 'last_order_at', 'last_interaction_at', 'recency_days'])

function condition(f: FieldAst): Expression<SqlBool> {
  if (f.spec.source === 'metric' && METRIC_COLUMNS.has(f.field)) return metricCondition(f)
  return test(f, operand(f))
}

/**
 * A metric condition as a semi-join rather than a scalar subquery per customer: customers whose
 * metrics row passes, or (when the condition holds for the no-activity value, a constant the
 * planner folds away otherwise) customers with no row at all.
 */
function metricCondition(f: FieldAst): Expression<SqlBool> {
  const column = f.field === 'recency_days' ? sql`floor(extract(epoch from (now() - m.last_order_at)) / 86400)::int` : sql`${sql.ref(`m.${f.field}`)}`
  const missing = f.spec.missing === 0 ? sql`0` : f.spec.type === 'timestamp' ? sql`null::timestamptz` : sql`null::int`
  return sql<SqlBool>`(exists (select 1 from customer_metrics m where m.customer_id = ${customerId} and ${test(f, column)})
    or (${test(f, missing)} and not exists (select 1 from customer_metrics m where m.customer_id = ${customerId})))`
}

function test(f: FieldAst, x: RawBuilder<unknown>): Expression<SqlBool> {
  if (f.op === 'exists') {
    if (f.spec.type === 'list') return f.value ? sql<SqlBool>`cardinality(${x}) > 0` : sql<SqlBool>`cardinality(${x}) = 0`
    if (f.attribute !== undefined) {
      const has = sql<SqlBool>`(${sql.ref('customers.attributes')} ? ${f.attribute}::text)`
      return f.value ? has : sql<SqlBool>`not ${has}`
    }
    return f.value ? sql<SqlBool>`${x} is not null` : sql<SqlBool>`${x} is null`
  }
  switch (f.spec.type) {
    case 'list': {
      const arr = sql`${f.value as string[]}::text[]`
      return f.op === 'has_any' ? sql<SqlBool>`${x} && ${arr}` : sql<SqlBool>`${x} @> ${arr}`
    }
    case 'timestamp':
      return sql<SqlBool>`${x} ${CMP[f.op as keyof typeof CMP]} ${timeBound(f.value as TimeBound)}`
    case 'json':
      return jsonCondition(f, x)
    default:
      return scalarCondition(f, x, (v) => (f.spec.type === 'money' ? sql`${v}::numeric` : sql`${v}`))
  }
}

function scalarCondition(f: FieldAst, x: RawBuilder<unknown>, bind: (v: Scalar) => RawBuilder<unknown>): Expression<SqlBool> {
  switch (f.op) {
    case 'eq':
      return sql<SqlBool>`${x} = ${bind(f.value as Scalar)}`
    case 'ne':
      return sql<SqlBool>`${x} is distinct from ${bind(f.value as Scalar)}`
    case 'in':
      return sql<SqlBool>`${x} in (${sql.join((f.value as Scalar[]).map(bind))})`
    case 'not_in':
      return sql<SqlBool>`((${x} in (${sql.join((f.value as Scalar[]).map(bind))})) is not true)`
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte':
      return sql<SqlBool>`${x} ${CMP[f.op]} ${bind(f.value as Scalar)}`
    case 'contains':
      return sql<SqlBool>`${x} ilike ${likePattern(f.value as string)}`
    case 'match': {
      // Every word of the query appears in the text, in any order and case.
      const terms = (f.value as string).split(/\s+/).filter(Boolean).slice(0, 20)
      return sql<SqlBool>`(${sql.join(terms.map((t) => sql`${x} ilike ${likePattern(t)}`), sql` and `)})`
    }
    default:
      throw new Error(`unsupported operator ${f.op}`)
  }
}

function jsonCondition(f: FieldAst, x: RawBuilder<unknown>): Expression<SqlBool> {
  const text = sql`(${sql.ref('customers.attributes')} ->> ${f.attribute!}::text)`
  switch (f.op) {
    case 'gt':
    case 'gte':
    case 'lt':
    case 'lte': {
      // The cast only ever sees numbers: other JSON types compare as missing.
      const num = sql`(case when jsonb_typeof(${x}) = 'number' then ${text}::numeric end)`
      return sql<SqlBool>`${num} ${CMP[f.op]} ${String(f.value)}::numeric`
    }
    case 'contains':
      return sql<SqlBool>`(case when jsonb_typeof(${x}) = 'string' then ${text} end) ilike ${likePattern(f.value as string)}`
    default:
      return scalarCondition(f, x, (v) => sql`${JSON.stringify(v)}::jsonb`)
  }
}

/**
 * The customer is not among a set of customer ids (a query selecting customer_id). NOT EXISTS,
 * not NOT IN: PostgreSQL runs NOT IN (subquery) as a hashed subplan only when the whole set fits
 * in work_mem, and otherwise rescans the subquery for every customer; NOT EXISTS plans as an
 * anti-join, which can hash in batches.
 */
function notAmong(ids: RawBuilder<unknown>): Expression<SqlBool> {
  return sql<SqlBool>`not exists (select 1 from (${ids}) as x where x.customer_id = ${customerId})`
}

function related(r: RelatedAst): Expression<SqlBool> {
  const latest = latestActivity(r)
  if (latest && ((r.min === 1 && r.max === undefined) || r.max === 0)) return activitySince(r, latest)
  if (r.max === undefined) {
    if (r.min === 0) return sql<SqlBool>`true`
    if (r.min === 1) return sql<SqlBool>`exists (${relatedRows(r, true)})`
  }
  if (r.max === 0) return sql<SqlBool>`not exists (${relatedRows(r, true)})`
  if (fromPurchaseHistory(r)) return purchaseCount(r)
  // Other counts: one grouped pass over the matching rows (on the status/kind/time indexes),
  // hashed against the customers, rather than a count per customer.
  const counted = sql`select m.customer_id from (${relatedRows(r, false)}) m group by m.customer_id`
  if (r.min === 0) return notAmong(sql`${counted} having count(*) > ${r.max!}`)
  const upper = r.max === undefined ? sql`` : sql`and count(*) <= ${r.max}`
  return sql<SqlBool>`${customerId} in (${counted} having count(*) >= ${r.min} ${upper})`
}

/**
 * "Any purchase / interaction (since t)" and "none (since t)" are what the customer metrics
 * already hold: last_order_at (the latest purchase) and last_interaction_at (the latest
 * interaction, archived ones left out). One hashed set of customers from customer_metrics instead
 * of probing the orders or interactions of every customer: at a million customers, "no
 * interaction since June" went from a million index probes to one scan of the metrics.
 * Only for conditions with no other restriction (statuses, currency, items, channels,
 * directions, before).
 */
function latestActivity(r: RelatedAst): 'last_order_at' | 'last_interaction_at' | undefined {
  if (r.before !== undefined) return undefined
  if (r.kind === 'orders' && fromPurchaseHistory(r) && r.currency === undefined) return 'last_order_at'
  if (r.kind === 'interactions' && r.values === undefined && r.directions === undefined) return 'last_interaction_at'
  return undefined
}

function activitySince(r: RelatedAst, column: 'last_order_at' | 'last_interaction_at'): Expression<SqlBool> {
  const recent = sql`select m.customer_id from customer_metrics m
    where ${r.since ? sql`${sql.ref(`m.${column}`)} >= ${timeBound(r.since)}` : sql`${sql.ref(`m.${column}`)} is not null`}`
  return r.max === 0 ? notAmong(recent) : sql<SqlBool>`${customerId} in (${recent})`
}

/**
 * Counts of purchases (orders in the purchase statuses, the default, with no item condition) are
 * read off the purchase history (migration purchase_history) — one short row per customer with
 * sorted purchase times — instead of grouping the orders: the cost no longer grows with the
 * window. width_bucket(t, ordered_at) counts the purchases at or before t, so the purchases in
 * [since, before) number width_bucket(before - 1 µs) - width_bucket(since - 1 µs) (timestamps
 * have microsecond resolution); without `before`, all of them (cardinality).
 */
function fromPurchaseHistory(r: RelatedAst): boolean {
  return r.kind === 'orders' && r.values === undefined && r.category === undefined && r.sku === undefined
}

function purchaseCount(r: RelatedAst): Expression<SqlBool> {
  const below = (t: TimeBound) => sql`width_bucket(${timeBound(t)} - interval '1 microsecond', p.ordered_at)`
  const n = sql`(${r.before ? below(r.before) : sql`cardinality(p.ordered_at)`} - ${r.since ? below(r.since) : sql`0`})`
  const rows = (test: RawBuilder<unknown>) => r.currency
    ? sql`select p.customer_id from customer_currency_purchases p where p.currency = ${r.currency} and ${test}`
    : sql`select p.customer_id from customer_purchases p where ${test}`
  if (r.min === 0) return notAmong(rows(sql`${n} > ${r.max!}`))
  const upper = r.max === undefined ? sql`` : sql`and ${n} <= ${r.max}`
  return sql<SqlBool>`${customerId} in (${rows(sql`${n} >= ${r.min} ${upper}`)})`
}

/**
 * `select customer_id from <related> where …`: correlated with the outer customer (for EXISTS, on
 * the customer+time indexes) or not (for grouped counts).
 */
function relatedRows(r: RelatedAst, correlated: boolean): RawBuilder<unknown> {
  const owner = (alias: string) => (correlated ? sql`and ${sql.ref(`${alias}.customer_id`)} = ${customerId}` : sql``)
  const window = (column: RawBuilder<unknown>) => sql`
    ${r.since ? sql`and ${column} >= ${timeBound(r.since)}` : sql``}
    ${r.before ? sql`and ${column} < ${timeBound(r.before)}` : sql``}`
  switch (r.kind) {
    case 'orders': {
      const statuses = r.values ?? [...PURCHASE_STATUSES]
      const item = (column: 'category' | 'sku', value: string | undefined) =>
        value === undefined ? sql`` : sql`and exists (select 1 from order_items i where i.order_id = o.id and ${sql.ref(`i.${column}`)} = ${value})`
      return sql`select o.customer_id from orders o where o.archived_at is null ${owner('o')}
        and o.status in (${sql.join(statuses)})
        ${r.currency ? sql`and o.currency = ${r.currency}` : sql``}
        ${window(sql`o.ordered_at`)} ${item('category', r.category)} ${item('sku', r.sku)}`
    }
    case 'interactions':
      return sql`select x.customer_id from interactions x where x.archived_at is null ${owner('x')}
        ${r.values ? sql`and x.channel in (${sql.join(r.values)})` : sql``}
        ${r.directions ? sql`and x.direction in (${sql.join(r.directions)})` : sql``}
        ${window(sql`x.occurred_at`)}`
    case 'feedback': {
      const open = r.open === undefined ? sql`` : r.open ? sql`and f.status in ('open', 'in_progress')` : sql`and f.status in ('resolved', 'closed')`
      return sql`select f.customer_id from feedback f where f.archived_at is null ${owner('f')}
        ${r.values ? sql`and f.kind in (${sql.join(r.values)})` : sql``} ${open}
        ${window(sql`f.submitted_at`)}`
    }
  }
}
