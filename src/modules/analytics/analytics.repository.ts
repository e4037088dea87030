import { minorUnits } from '../../lib/currency.js'
import { PURCHASE_STATUSES } from '../../lib/purchase-statuses.js'
import { sql, type Kysely, type RawBuilder } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { Database } from '../../db/rows.js'
import { keysetSql, type PageRequest } from '../../lib/pagination.js'
import type { ChurnBasis, RfmSegment, ValueTier } from './analytics.schemas.js'

/**
 * All analytics SQL. Every figure is aggregated by PostgreSQL (CTEs, window functions, ntile,
 * percentile_cont, generate_series); Node only receives the aggregates or one page of rows.
 *
 * A purchase is what the customer-metrics migration counts: an order with status paid, fulfilled
 * or partially_refunded that is not archived; its net amount is total - amount_refunded. Archived
 * customers are left out everywhere. Nothing after as_of counts (statuses are the current ones).
 *
 * Per-customer figures come from the purchase history (migration purchase_history): each
 * customer's purchase times as a sorted array, with running net sums per currency. For any as_of
 * and window, width_bucket(t, ordered_at) (a binary search) counts the purchases at or before t,
 * so a customer's purchases within (start, end], their net sum and the last of them are read off
 * one short row: one row per customer instead of every order, exact, with no stale snapshot.
 * Only satisfaction counts orders per month from the orders themselves (on their purchase index).
 */

/** The inputs every analytics query shares. */
export interface Span {
  /** RFC 3339; nothing after it counts. */
  asOf: string
  /** Exclusive lower bound of the window; null means all history up to asOf. */
  windowStart: string | null
}

// Literals, not parameters: the planner proves the partial index orders_purchases_ordered_idx from them.
const PURCHASES = sql`(${sql.join(PURCHASE_STATUSES.map((s) => sql.lit(s)))})`

/**
 * Runs an answer's queries in one read-only repeatable-read transaction, so that figures computed
 * by several queries (the default currency and the scores, cohorts and their totals) come from one
 * snapshot. The per-customer aggregates are sorted several times (ntile, ties, percentiles): a
 * larger work_mem, local to the transaction, keeps those sorts in memory.
 */
export async function inSnapshot<T>(db: DbExecutor, fn: (trx: DbExecutor) => Promise<T>): Promise<T> {
  if (db.isTransaction) return fn(db)
  return (db as Kysely<Database>).transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(async (trx) => {
    await sql`set local work_mem = '32MB'`.execute(trx)
    return fn(trx)
  })
}

/** Archived customers are left out: an anti-join against the (small) index of archived ones. */
function active(alias: string): RawBuilder<unknown> {
  return sql`not exists (select 1 from customers x where x.id = ${sql.ref(`${alias}.customer_id`)} and x.archived_at is not null)`
}

/**
 * How many of a history's purchases (`alias`.ordered_at) happened at or before the instant:
 * 0 for a null instant (no lower bound), so `upTo(asOf) - upTo(windowStart)` counts the window.
 */
function upTo(alias: string, instant: string | null): RawBuilder<number> {
  return instant === null ? sql<number>`0` : sql<number>`width_bucket(${instant}::timestamptz, ${sql.ref(`${alias}.ordered_at`)})`
}

/**
 * One row per customer (with a purchase in the currency) and its window bounds: hi = purchases up
 * to as_of, lo = purchases up to the window start; the window's purchases are ordered_at[lo+1..hi]
 * and their net sum cum_net[hi + 1] - cum_net[lo + 1].
 */
function currencyHistory(span: Span, currency: string | null): RawBuilder<unknown> {
  return sql`
    select h.customer_id, h.currency, h.ordered_at, h.cum_net, b.hi, b.lo
    from customer_currency_purchases h
    cross join lateral (select ${upTo('h', span.asOf)} as hi, ${upTo('h', span.windowStart)} as lo) b
    where ${active('h')} ${currency ? sql`and h.currency = ${currency}` : sql``}`
}

/** The same over all currencies: customer_purchases, with its gap statistics. */
function history(span: Span): RawBuilder<unknown> {
  return sql`
    select p.customer_id, p.ordered_at, p.gap_median_days, p.gap_mean_days, b.hi, b.lo
    from customer_purchases p
    cross join lateral (select ${upTo('p', span.asOf)} as hi, ${upTo('p', span.windowStart)} as lo) b
    where ${active('p')}`
}

/** The currency with the most purchases in the span (ties: alphabetical); undefined when none. */
export async function dominantCurrency(db: DbExecutor, span: Span): Promise<string | undefined> {
  const r = await sql<{ currency: string }>`
    select h.currency from (${currencyHistory(span, null)}) h
    group by h.currency having sum(h.hi - h.lo) > 0 order by sum(h.hi - h.lo) desc, h.currency limit 1`.execute(db)
  return r.rows[0]?.currency
}

/**
 * Money figures are rounded to the currency's minor units (JPY 0, CNY 2, KWD 3), a literal so
 * the text has that scale. With no currency (nothing was purchased) there is no figure but zero.
 */
const decimals = (currency: string | null) => sql.lit(currency === null ? 2 : minorUnits(currency))

// ---------------------------------------------------------------------------------------------
// RFM

/**
 * One row per customer with a purchase in the window and currency, scored by quintiles.
 * ntile(5) orders by recency days descending (oldest first, so the most recent get 5),
 * frequency ascending and monetary ascending, ties broken by customer id; then every customer
 * takes the lowest score any customer with the same value got, so equal values share a score.
 *
 * Computed without sorting the rows six times (three ntiles, three partitions): ntile(5) over n
 * rows starts bucket k after s_k = (k-1)·floor(n/5) + least(k-1, n mod 5) rows, and the lowest
 * bucket any row of value v lands in is the one of its first row, which follows the c rows that
 * come before v. So score(v) = 1 + #{k in 2..5 : s_k ≤ c} = 1 + #{k : the s_k-th value in that
 * order comes before v}: four thresholds per dimension, read off one sorted array each.
 * The steps are materialized: inlined, PostgreSQL would sort again for every threshold, walk the
 * long numeric array for every row, and recompute the scores in every branch of the segment CASE.
 */
function rfmScored(span: Span, currency: string): RawBuilder<unknown> {
  const score = (column: string, thresholds: string, before: '<' | '>') =>
    sql.raw(`(1 + ${[1, 2, 3, 4].map((i) => `(th.${thresholds}[${i}] ${before} agg.${column})::int`).join(' + ')})`)
  return sql`
    with agg as materialized (
      select h.customer_id as id, h.ordered_at[h.hi] as last_purchase_at,
             floor(extract(epoch from (${span.asOf}::timestamptz - h.ordered_at[h.hi])) / 86400)::int as recency_days,
             (h.hi - h.lo)::int as frequency, h.cum_net[h.hi + 1] - h.cum_net[h.lo + 1] as monetary,
             -- Amounts have at most three decimals (crm_money): whole thousandths order exactly like the amounts and sort faster.
             ((h.cum_net[h.hi + 1] - h.cum_net[h.lo + 1]) * 1000)::bigint as monetary_cents
      from (${currencyHistory(span, currency)}) h where h.hi > h.lo
    ),
    starts as (
      select array_agg((k - 1) * (c.n / 5) + least(k - 1, c.n % 5) order by k) as s
      from (select count(*)::int as n from agg) c cross join generate_series(2, 5) as k
    ),
    sorted as materialized (
      select (select array_agg(recency_days order by recency_days desc) from agg) as r,
             (select array_agg(frequency order by frequency) from agg) as f,
             (select array_agg(monetary_cents order by monetary_cents) from agg) as m
    ),
    th as materialized (
      select array[r[s[1]], r[s[2]], r[s[3]], r[s[4]]] as r_t, array[f[s[1]], f[s[2]], f[s[3]], f[s[4]]] as f_t,
             array[m[s[1]], m[s[2]], m[s[3]], m[s[4]]] as m_t
      from starts cross join sorted
    ),
    scored as materialized (
      select agg.*, sc.*, sc.r_score * 100 + sc.f_score * 10 + sc.m_score as rfm_score,
        case
          when sc.r_score = 5 and sc.f_score >= 4 then 'champions'
          when sc.r_score in (3, 4) and sc.f_score >= 4 then 'loyal'
          when sc.r_score >= 4 and sc.f_score in (2, 3) then 'potential_loyalists'
          when sc.r_score = 5 and sc.f_score = 1 then 'new_customers'
          when sc.r_score = 4 and sc.f_score = 1 then 'promising'
          when sc.r_score = 3 and sc.f_score = 3 then 'need_attention'
          when sc.r_score = 3 and sc.f_score <= 2 then 'about_to_sleep'
          when sc.f_score = 5 then 'cant_lose'
          when sc.f_score in (3, 4) then 'at_risk'
          else 'hibernating'
        end as segment
      from agg cross join th
      -- offset 0 keeps this a subquery evaluated once per row, not inlined into every CASE branch.
      cross join lateral (
        select ${score('recency_days', 'r_t', '>')} as r_score, ${score('frequency', 'f_t', '<')} as f_score,
               ${score('monetary_cents', 'm_t', '<')} as m_score
        offset 0
      ) sc
    )
    select * from scored`
}

export interface RfmGroupRow {
  kind: 'segment' | 'recency' | 'frequency' | 'monetary'
  segment: RfmSegment | null
  score: number | null
  customers: number
  share: number
  min: string | null
  max: string | null
}

/**
 * The distribution in one query over one scoring: customers per segment, and per score of each
 * dimension the number of customers and the range of values that got it.
 */
export async function rfmDistribution(db: DbExecutor, span: Span, currency: string) {
  const units = decimals(currency)
  const r = await sql<RfmGroupRow>`
    with s as materialized (${rfmScored(span, currency)}),
    g as (
      select case when grouping(segment) = 0 then 'segment' when grouping(r_score) = 0 then 'recency'
                  when grouping(f_score) = 0 then 'frequency' else 'monetary' end as kind,
             segment, coalesce(r_score, f_score, m_score) as score, count(*)::int as customers,
             case when grouping(r_score) = 0 then min(recency_days)::text when grouping(f_score) = 0 then min(frequency)::text
                  when grouping(m_score) = 0 then round(min(monetary), ${units})::text end as min,
             case when grouping(r_score) = 0 then max(recency_days)::text when grouping(f_score) = 0 then max(frequency)::text
                  when grouping(m_score) = 0 then round(max(monetary), ${units})::text end as max
      from s group by grouping sets ((segment), (r_score), (f_score), (m_score))
    )
    select g.*, round(g.customers::numeric / sum(g.customers) over (partition by g.kind), 4)::float8 as share from g
    order by g.kind, g.score`.execute(db)
  return r.rows
}

export interface RfmRow {
  id: string
  last_purchase_at: string
  recency_days: number
  frequency: number
  monetary: string
  r_score: number
  f_score: number
  m_score: number
  rfm_score: number
  segment: RfmSegment
}

export async function rfmCustomers(db: DbExecutor, span: Span, currency: string, segment: RfmSegment | undefined, page: PageRequest) {
  const keyset = keysetSql(page, 's')
  const r = await sql<RfmRow>`
    select s.id, s.last_purchase_at, s.recency_days, s.frequency, round(s.monetary, ${decimals(currency)})::text as monetary,
           s.r_score, s.f_score, s.m_score, s.rfm_score, s.segment
    from (${rfmScored(span, currency)}) s
    where ${segment ? sql`s.segment = ${segment}` : sql`true`} and ${keyset.where}
    order by ${keyset.orderBy}
    limit ${page.limit + 1}`.execute(db)
  return r.rows
}

// ---------------------------------------------------------------------------------------------
// Lifetime value and tiers

export interface ValueParams {
  currency: string
  windowDays: number
  lifespanYears: number
}

/**
 * Historical CLV per customer (net spend in the currency up to as_of), the simple predictive CLV,
 * and the tier: top_1 when the CLV is at least the 99th percentile (percentile_cont, on float8)
 * of all customers' CLV, top_5 at least the 95th, top_20 at least the 80th, else rest.
 */
function valued(span: Span, p: ValueParams): RawBuilder<unknown> {
  const all: Span = { asOf: span.asOf, windowStart: null }
  const units = decimals(p.currency)
  return sql`
    with clv as (
      select h.customer_id as id, h.hi::int as purchases, h.cum_net[h.hi + 1] as historical_clv,
             (h.hi - ${span.windowStart === null ? sql`h.hi` : upTo('h', span.windowStart)})::int as window_purchases,
             h.ordered_at[1] as first_purchase_at, h.ordered_at[h.hi] as last_purchase_at
      from (${currencyHistory(all, p.currency)}) h where h.hi > 0
    ),
    th as (
      select percentile_cont(0.99) within group (order by historical_clv::float8) as p99,
             percentile_cont(0.95) within group (order by historical_clv::float8) as p95,
             percentile_cont(0.80) within group (order by historical_clv::float8) as p80
      from clv
    )
    select clv.*, th.p99, th.p95, th.p80,
      case
        when clv.historical_clv::float8 >= th.p99 then 'top_1'
        when clv.historical_clv::float8 >= th.p95 then 'top_5'
        when clv.historical_clv::float8 >= th.p80 then 'top_20'
        else 'rest'
      end as tier,
      round(clv.historical_clv / clv.purchases, ${units}) as avg_order_value,
      round(clv.window_purchases * 365.0 / ${p.windowDays}::int, 4)::float8 as purchases_per_year,
      round(clv.historical_clv * clv.window_purchases * 365 * ${p.lifespanYears}::int / (clv.purchases * ${p.windowDays}::int), ${units}) as predicted_clv
    from clv cross join th`
}

export interface TierRow {
  tier: ValueTier
  p99: string
  p95: string
  p80: string
  customers: number
  min_clv: string
  max_clv: string
  total_clv: string
  revenue_share: number
}

export async function valueTiers(db: DbExecutor, span: Span, p: ValueParams) {
  const units = decimals(p.currency)
  const r = await sql<TierRow>`
    select s.tier,
           round(min(s.p99)::numeric, ${units})::text as p99, round(min(s.p95)::numeric, ${units})::text as p95, round(min(s.p80)::numeric, ${units})::text as p80,
           count(*)::int as customers, round(min(s.historical_clv), ${units})::text as min_clv, round(max(s.historical_clv), ${units})::text as max_clv,
           round(sum(s.historical_clv), ${units})::text as total_clv,
           coalesce(round(sum(s.historical_clv) / nullif(sum(sum(s.historical_clv)) over (), 0), 4), 0)::float8 as revenue_share
    from (${valued(span, p)}) s group by s.tier`.execute(db)
  return r.rows
}

export interface ValueRow {
  id: string
  purchases: number
  historical_clv: string
  avg_order_value: string
  purchases_per_year: number
  predicted_clv: string
  tier: ValueTier
  first_purchase_at: string
  last_purchase_at: string
}

export async function valueCustomers(db: DbExecutor, span: Span, p: ValueParams, tier: ValueTier | undefined, page: PageRequest) {
  const keyset = keysetSql(page, 's')
  const r = await sql<ValueRow>`
    select s.id, s.purchases, round(s.historical_clv, ${decimals(p.currency)})::text as historical_clv, s.avg_order_value::text as avg_order_value,
           s.purchases_per_year, s.predicted_clv::text as predicted_clv, s.tier, s.first_purchase_at, s.last_purchase_at
    from (${valued(span, p)}) s
    where ${tier ? sql`s.tier = ${tier}` : sql`true`} and ${keyset.where}
    order by ${keyset.orderBy}
    limit ${page.limit + 1}`.execute(db)
  return r.rows
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and acquisition

/**
 * Stages as of as_of: the lifecycle rules of the metrics migration (crm_lifecycle_stage) applied
 * to purchases up to as_of; stages set by hand are taken as stored.
 */
export async function lifecycleCounts(db: DbExecutor, asOf: string) {
  const r = await sql<{ stage: string; customers: number; manual: number; share: number }>`
    with pc as (
      -- offset 0: n and last_at stay plain columns, so crm_lifecycle_stage (used with each argument
      -- more than once) is inlined instead of called through the SQL function executor per row.
      select p.customer_id, b.n, p.ordered_at[b.n] as last_at
      from customer_purchases p cross join lateral (select ${upTo('p', asOf)} as n) b
      offset 0
    ),
    st as (
      select c.lifecycle_stage_manual as manual,
             case when c.lifecycle_stage_manual then c.lifecycle_stage
                  else crm_lifecycle_stage(coalesce(pc.n, 0), pc.last_at, ${asOf}::timestamptz) end as stage
      from customers c left join pc on pc.customer_id = c.id
      where c.archived_at is null and c.created_at <= ${asOf}::timestamptz
      offset 0
    )
    select stage, count(*)::int as customers, count(*) filter (where manual)::int as manual,
           round(count(*)::numeric / sum(count(*)) over (), 4)::float8 as share
    from st group by stage`.execute(db)
  return r.rows
}

export interface SourceRow {
  source: string
  customers: number
  purchasers: number
  conversion_rate: number
  revenue: string
  revenue_per_customer: string
}

export async function acquisitionSources(db: DbExecutor, span: Span, currency: string | null) {
  const r = await sql<SourceRow>`
    with cs as (
      select c.id, coalesce(c.acquisition_source, 'unknown') as source from customers c
      where c.archived_at is null and c.created_at <= ${span.asOf}::timestamptz and c.created_at > ${span.windowStart}::timestamptz
    ),
    pc as (
      select cs.id as customer_id, coalesce(h.cum_net[${upTo('h', span.asOf)} + 1] - h.cum_net[${upTo('h', span.windowStart)} + 1], 0) as revenue
      from cs
      join customer_purchases p on p.customer_id = cs.id and ${upTo('p', span.asOf)} > ${upTo('p', span.windowStart)}
      left join customer_currency_purchases h on h.customer_id = cs.id and h.currency = ${currency}
    )
    select cs.source, count(*)::int as customers, count(pc.customer_id)::int as purchasers,
           round(count(pc.customer_id)::numeric / count(*), 4)::float8 as conversion_rate,
           round(coalesce(sum(pc.revenue), 0), ${decimals(currency)})::text as revenue,
           round(coalesce(sum(pc.revenue), 0) / count(*), ${decimals(currency)})::text as revenue_per_customer
    from cs left join pc on pc.customer_id = cs.id
    group by cs.source order by customers desc, cs.source`.execute(db)
  return r.rows
}

// ---------------------------------------------------------------------------------------------
// Churn risk

export interface ChurnParams {
  k: number
  basis: ChurnBasis
}

export interface ChurnRow {
  id: string
  purchases: number
  last_purchase_at: string
  days_since_last_purchase: number
  typical_interval_days: number
  risk_ratio: string
}

/**
 * Customers with 2 or more purchases whose days since the last purchase exceed k × their typical
 * interval (median or mean of the days between consecutive purchases, in fractional days).
 * Customers whose typical interval is 0 (every purchase at one instant) have no rhythm and are
 * left out.
 */
export async function churnRisk(db: DbExecutor, span: Span, p: ChurnParams, page: PageRequest) {
  const keyset = keysetSql(page, 's')
  const r = await sql<ChurnRow>`
    with per as (
      select h.customer_id as id, (h.hi - h.lo)::int as purchases, h.ordered_at[h.hi] as last_purchase_at,
             extract(epoch from (${span.asOf}::timestamptz - h.ordered_at[h.hi]))::float8 / 86400 as days_since,
             case when h.lo = 0 and h.hi = cardinality(h.ordered_at) then ${p.basis === 'mean' ? sql`h.gap_mean_days` : sql`h.gap_median_days`}
                  else (select ${p.basis === 'mean' ? sql`avg(g.gap_days)` : sql`percentile_cont(0.5) within group (order by g.gap_days)`}
                        from (select extract(epoch from (h.ordered_at[i] - h.ordered_at[i - 1]))::float8 / 86400 as gap_days
                              from generate_series(h.lo + 2, h.hi) as i) g)
             end as typical
      from (${history(span)}) h where h.hi - h.lo >= 2
    ),
    s as (
      select per.*, round((days_since / typical)::numeric, 4) as risk_ratio from per
      where typical > 0 and days_since > ${p.k}::float8 * typical
    )
    select s.id, s.purchases, s.last_purchase_at, round(s.days_since::numeric, 2)::float8 as days_since_last_purchase,
           round(s.typical::numeric, 2)::float8 as typical_interval_days, s.risk_ratio::text as risk_ratio
    from s
    where ${keyset.where}
    order by ${keyset.orderBy}
    limit ${page.limit + 1}`.execute(db)
  return r.rows
}

// ---------------------------------------------------------------------------------------------
// Cohorts and satisfaction (month ranges are 'YYYY-MM', in UTC)

export interface CohortCell {
  cohort: string
  offset: number
  month: string
  customers: number
  repeat_customers: number
  repeat_purchase_rate: number | null
  retained: number | null
  rate: number | null
}

/**
 * The customers whose first purchase (up to as_of, any currency) falls in a month of the range:
 * cohort = that month (UTC, as a timestamp), n = their purchases up to as_of, and their history.
 */
function cohortMembers(asOf: string, from: string, to: string): RawBuilder<unknown> {
  return sql`
    select h.customer_id, h.ordered_at, h.hi as n, date_trunc('month', h.ordered_at[1] at time zone 'UTC') as cohort
    from (${history({ asOf, windowStart: null })}) h
    where h.hi >= 1
      and date_trunc('month', h.ordered_at[1] at time zone 'UTC') between ${from + '-01'}::timestamp and ${to + '-01'}::timestamp`
}

/**
 * A customer's cohort is the month of their first purchase ever (up to as_of). Offset k counts
 * the cohort's customers with a purchase in calendar month cohort + k; months that start after
 * as_of are not observed (null).
 */
export async function cohortCells(db: DbExecutor, asOf: string, from: string, to: string) {
  const r = await sql<CohortCell>`
    with c as (${cohortMembers(asOf, from, to)}),
    sizes as (select cohort, count(*)::int as customers, count(*) filter (where n >= 2)::int as repeat_customers from c group by cohort),
    active as (
      select c.cohort, m.month, count(*)::int as retained
      from c cross join lateral (
        select distinct date_trunc('month', t at time zone 'UTC') as month from unnest(c.ordered_at[1:c.n]) as t
      ) m
      where m.month < c.cohort + interval '12 months'
      group by 1, 2
    ),
    grid as (
      select m.cohort, k.k as "offset", m.cohort + make_interval(months => k.k) as month
      from generate_series(${from + '-01'}::timestamp, ${to + '-01'}::timestamp, interval '1 month') as m(cohort)
      cross join generate_series(0, 11) as k(k)
    )
    select to_char(g.cohort, 'YYYY-MM') as cohort, g."offset", to_char(g.month, 'YYYY-MM') as month,
           coalesce(s.customers, 0) as customers, coalesce(s.repeat_customers, 0) as repeat_customers,
           round(s.repeat_customers::numeric / nullif(s.customers, 0), 4)::float8 as repeat_purchase_rate,
           case when g.month > ${asOf}::timestamptz at time zone 'UTC' then null else coalesce(a.retained, 0) end as retained,
           case when g.month > ${asOf}::timestamptz at time zone 'UTC' then null
                else round(coalesce(a.retained, 0)::numeric / nullif(s.customers, 0), 4)::float8 end as rate
    from grid g
    left join sizes s on s.cohort = g.cohort
    left join active a on a.cohort = g.cohort and a.month = g.month
    order by g.cohort, g."offset"`.execute(db)
  return r.rows
}

export async function cohortTotals(db: DbExecutor, asOf: string, from: string, to: string) {
  const r = await sql<{ customers: number; repeat_customers: number; repeat_purchase_rate: number | null }>`
    select count(*)::int as customers, count(*) filter (where n >= 2)::int as repeat_customers,
           round((count(*) filter (where n >= 2))::numeric / nullif(count(*), 0), 4)::float8 as repeat_purchase_rate
    from (${cohortMembers(asOf, from, to)}) c`.execute(db)
  return r.rows[0]!
}

export interface SatisfactionRow {
  month: string | null
  csat_responses: number
  csat_average: number | null
  csat_satisfied_pct: number | null
  nps_responses: number
  promoters: number
  passives: number
  detractors: number
  nps: number | null
  complaints: number
  purchases: number
  complaints_per_100_orders: number | null
}

/**
 * Per month of the range plus one totals row (month null). Feedback counts by submitted_at,
 * purchases by ordered_at; survey scores are the CSAT (1–5) and NPS (0–10) survey responses.
 */
export async function satisfaction(db: DbExecutor, asOf: string, from: string, to: string) {
  // Per month, hash-grouped (12–37 groups), and the totals row summed from the months: grouping
  // sets would sort every row (4.8M purchases in a year at 1M customers) to group them.
  // Purchases per month are counted on the purchases index, month by month, minus those of
  // archived customers (few, found through their own index), rather than joining every order.
  const r = await sql<SatisfactionRow>`
    with months as (
      select g.m, g.m at time zone 'UTC' as lo, (g.m + interval '1 month') at time zone 'UTC' as hi
      from generate_series(${from + '-01'}::timestamp, ${to + '-01'}::timestamp, interval '1 month') as g(m)
    ),
    f as (
      select date_trunc('month', f.submitted_at at time zone 'UTC') as m, f.kind, f.survey_type, f.score
      from feedback f
      where ${active('f')} and f.archived_at is null and f.submitted_at <= ${asOf}::timestamptz
        and f.submitted_at >= (select min(lo) from months) and f.submitted_at < (select max(hi) from months)
    ),
    fm as (
      select m,
             count(*) filter (where survey_type = 'csat')::int as csat_responses,
             sum(score) filter (where survey_type = 'csat') as csat_sum,
             count(*) filter (where survey_type = 'csat' and score >= 4)::int as csat_satisfied,
             count(*) filter (where survey_type = 'nps')::int as nps_responses,
             count(*) filter (where survey_type = 'nps' and score >= 9)::int as promoters,
             count(*) filter (where survey_type = 'nps' and score between 7 and 8)::int as passives,
             count(*) filter (where survey_type = 'nps' and score <= 6)::int as detractors,
             count(*) filter (where kind = 'complaint')::int as complaints
      from f group by m
    ),
    om as (
      select months.m,
             (select count(*) from orders o
               where o.archived_at is null and o.status in ${PURCHASES}
                 and o.ordered_at >= months.lo and o.ordered_at < months.hi and o.ordered_at <= ${asOf}::timestamptz)
           - (select count(*) from customers x join orders o on o.customer_id = x.id
               where x.archived_at is not null and o.archived_at is null and o.status in ${PURCHASES}
                 and o.ordered_at >= months.lo and o.ordered_at < months.hi and o.ordered_at <= ${asOf}::timestamptz) as purchases
      from months
    ),
    per_month as (
      select months.m, coalesce(fm.csat_responses, 0) as csat_responses, fm.csat_sum, coalesce(fm.csat_satisfied, 0) as csat_satisfied,
             coalesce(fm.nps_responses, 0) as nps_responses, coalesce(fm.promoters, 0) as promoters, coalesce(fm.passives, 0) as passives,
             coalesce(fm.detractors, 0) as detractors, coalesce(fm.complaints, 0) as complaints, om.purchases::int as purchases
      from months left join fm on fm.m = months.m join om on om.m = months.m
    ),
    rows as (
      select * from per_month
      union all
      select null, sum(csat_responses)::int, sum(csat_sum), sum(csat_satisfied)::int, sum(nps_responses)::int, sum(promoters)::int,
             sum(passives)::int, sum(detractors)::int, sum(complaints)::int, sum(purchases)::int
      from per_month
    )
    select to_char(m, 'YYYY-MM') as month, csat_responses,
           round(csat_sum::numeric / nullif(csat_responses, 0), 2)::float8 as csat_average,
           round(100.0 * csat_satisfied / nullif(csat_responses, 0), 1)::float8 as csat_satisfied_pct,
           nps_responses, promoters, passives, detractors,
           round(100.0 * (promoters - detractors) / nullif(nps_responses, 0), 1)::float8 as nps,
           complaints, purchases,
           round(100.0 * complaints / nullif(purchases, 0), 2)::float8 as complaints_per_100_orders
    from rows
    order by m nulls last`.execute(db)
  return r.rows
}

export async function openComplaints(db: DbExecutor, asOf: string): Promise<number> {
  const r = await sql<{ n: number }>`
    select count(*)::int as n from feedback f
    where ${active('f')} and f.archived_at is null and f.kind = 'complaint' and f.status in ('open', 'in_progress')
      and f.submitted_at <= ${asOf}::timestamptz`.execute(db)
  return r.rows[0]?.n ?? 0
}
