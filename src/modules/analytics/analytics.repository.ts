import { expressionBuilder, sql, type Kysely, type RawBuilder } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { Database } from '../../db/schema.js'
import { afterCursor, type SortKey } from '../../lib/pagination.js'
import type { ChurnBasis, RfmSegment, ValueTier } from './analytics.schemas.js'

/**
 * All analytics SQL. Every figure is aggregated by PostgreSQL (CTEs, window functions, ntile,
 * percentile_cont, generate_series); Node only receives the aggregates or one page of rows.
 *
 * A purchase is what the customer-metrics migration counts: an order with status paid, fulfilled
 * or partially_refunded that is not archived; its net amount is total - amount_refunded. Archived
 * customers are left out everywhere. Nothing after as_of counts (statuses are the current ones).
 */

/** The inputs every analytics query shares. */
export interface Span {
  /** RFC 3339; nothing after it counts. */
  asOf: string
  /** Exclusive lower bound of the window; null means all history up to asOf. */
  windowStart: string | null
}

const PURCHASE_STATUSES = sql`('paid', 'fulfilled', 'partially_refunded')`

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

function purchases(span: Span, currency?: string | null): RawBuilder<unknown> {
  return sql`
    select o.id as order_id, o.customer_id, o.ordered_at, o.currency, o.total - o.amount_refunded as net
    from orders o join customers c on c.id = o.customer_id
    where c.archived_at is null and o.archived_at is null and o.status in ${PURCHASE_STATUSES}
      and o.ordered_at <= ${span.asOf}::timestamptz
      ${span.windowStart ? sql`and o.ordered_at > ${span.windowStart}::timestamptz` : sql``}
      ${currency ? sql`and o.currency = ${currency}` : sql``}`
}

/** The currency with the most purchases in the span (ties: alphabetical); undefined when none. */
export async function dominantCurrency(db: DbExecutor, span: Span): Promise<string | undefined> {
  const r = await sql<{ currency: string }>`
    select p.currency from (${purchases(span)}) p
    group by p.currency order by count(*) desc, p.currency limit 1`.execute(db)
  return r.rows[0]?.currency
}

/** Rows after a keyset cursor, for lists computed in a CTE aliased `s` with an `id` column. */
function cursorWhere(keys: SortKey[], after: unknown[] | undefined) {
  if (!after) return sql`true`
  const eb = expressionBuilder<Database, never>()
  return afterCursor(eb, keys, after, (f) => sql.ref(`s.${f}`), sql.ref('s.id'))
}

function orderBy(keys: SortKey[]) {
  const last = keys[keys.length - 1]?.desc ? sql`desc` : sql`asc`
  return sql.join([...keys.map((k) => sql`${sql.ref(`s.${k.field}`)} ${k.desc ? sql`desc` : sql`asc`}`), sql`s.id ${last}`])
}

// ---------------------------------------------------------------------------------------------
// RFM

/**
 * One row per customer with a purchase in the window and currency, scored by quintiles.
 * ntile(5) orders by recency days descending (oldest first, so the most recent get 5),
 * frequency ascending and monetary ascending, ties broken by customer id; then every customer
 * takes the lowest score any customer with the same value got, so equal values share a score.
 */
function rfmScored(span: Span, currency: string): RawBuilder<unknown> {
  return sql`
    with p as (${purchases(span, currency)}),
    agg as (
      select p.customer_id as id, max(p.ordered_at) as last_purchase_at,
             floor(extract(epoch from (${span.asOf}::timestamptz - max(p.ordered_at))) / 86400)::int as recency_days,
             count(*)::int as frequency, sum(p.net) as monetary
      from p group by p.customer_id
    ),
    nt as (
      select agg.*,
             ntile(5) over (order by recency_days desc, id) as r_nt,
             ntile(5) over (order by frequency, id) as f_nt,
             ntile(5) over (order by monetary, id) as m_nt
      from agg
    ),
    scored as (
      select id, last_purchase_at, recency_days, frequency, monetary,
             min(r_nt) over (partition by recency_days)::int as r_score,
             min(f_nt) over (partition by frequency)::int as f_score,
             min(m_nt) over (partition by monetary)::int as m_score
      from nt
    )
    select scored.*, r_score * 100 + f_score * 10 + m_score as rfm_score,
      case
        when r_score = 5 and f_score >= 4 then 'champions'
        when r_score in (3, 4) and f_score >= 4 then 'loyal'
        when r_score >= 4 and f_score in (2, 3) then 'potential_loyalists'
        when r_score = 5 and f_score = 1 then 'new_customers'
        when r_score = 4 and f_score = 1 then 'promising'
        when r_score = 3 and f_score = 3 then 'need_attention'
        when r_score = 3 and f_score <= 2 then 'about_to_sleep'
        when f_score = 5 then 'cant_lose'
        when f_score in (3, 4) then 'at_risk'
        else 'hibernating'
      end as segment
    from scored`
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
  const r = await sql<RfmGroupRow>`
    with s as (${rfmScored(span, currency)}),
    n as (select count(*)::numeric as total from s),
    g as (
      select 'segment' as kind, segment, null::int as score, count(*)::int as customers, null::text as min, null::text as max from s group by segment
      union all
      select 'recency', null, r_score, count(*)::int, min(recency_days)::text, max(recency_days)::text from s group by r_score
      union all
      select 'frequency', null, f_score, count(*)::int, min(frequency)::text, max(frequency)::text from s group by f_score
      union all
      select 'monetary', null, m_score, count(*)::int, round(min(monetary), 2)::text, round(max(monetary), 2)::text from s group by m_score
    )
    select g.*, round(g.customers / n.total, 4)::float8 as share from g cross join n
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

export async function rfmCustomers(db: DbExecutor, span: Span, currency: string, segment: RfmSegment | undefined, keys: SortKey[], after: unknown[] | undefined, limit: number) {
  const r = await sql<RfmRow>`
    select s.id, s.last_purchase_at, s.recency_days, s.frequency, round(s.monetary, 2)::text as monetary,
           s.r_score, s.f_score, s.m_score, s.rfm_score, s.segment
    from (${rfmScored(span, currency)}) s
    where ${segment ? sql`s.segment = ${segment}` : sql`true`} and ${cursorWhere(keys, after)}
    order by ${orderBy(keys)}
    limit ${limit + 1}`.execute(db)
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
  return sql`
    with p as (${purchases(all, p.currency)}),
    clv as (
      select p.customer_id as id, count(*)::int as purchases, sum(p.net) as historical_clv,
             count(*) filter (where p.ordered_at > ${span.windowStart}::timestamptz)::int as window_purchases,
             min(p.ordered_at) as first_purchase_at, max(p.ordered_at) as last_purchase_at
      from p group by p.customer_id
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
      round(clv.historical_clv / clv.purchases, 2) as avg_order_value,
      round(clv.window_purchases * 365.0 / ${p.windowDays}::int, 4)::float8 as purchases_per_year,
      round(clv.historical_clv * clv.window_purchases * 365 * ${p.lifespanYears}::int / (clv.purchases * ${p.windowDays}::int), 2) as predicted_clv
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
  const r = await sql<TierRow>`
    select s.tier,
           round(min(s.p99)::numeric, 2)::text as p99, round(min(s.p95)::numeric, 2)::text as p95, round(min(s.p80)::numeric, 2)::text as p80,
           count(*)::int as customers, round(min(s.historical_clv), 2)::text as min_clv, round(max(s.historical_clv), 2)::text as max_clv,
           round(sum(s.historical_clv), 2)::text as total_clv,
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

export async function valueCustomers(db: DbExecutor, span: Span, p: ValueParams, tier: ValueTier | undefined, keys: SortKey[], after: unknown[] | undefined, limit: number) {
  const r = await sql<ValueRow>`
    select s.id, s.purchases, round(s.historical_clv, 2)::text as historical_clv, s.avg_order_value::text as avg_order_value,
           s.purchases_per_year, s.predicted_clv::text as predicted_clv, s.tier, s.first_purchase_at, s.last_purchase_at
    from (${valued(span, p)}) s
    where ${tier ? sql`s.tier = ${tier}` : sql`true`} and ${cursorWhere(keys, after)}
    order by ${orderBy(keys)}
    limit ${limit + 1}`.execute(db)
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
    with p as (${purchases({ asOf, windowStart: null })}),
    agg as (select p.customer_id, count(*)::int as n, max(p.ordered_at) as last_at from p group by p.customer_id),
    st as (
      select c.lifecycle_stage_manual as manual,
             case when c.lifecycle_stage_manual then c.lifecycle_stage
                  else crm_lifecycle_stage(coalesce(a.n, 0), a.last_at, ${asOf}::timestamptz) end as stage
      from customers c left join agg a on a.customer_id = c.id
      where c.archived_at is null and c.created_at <= ${asOf}::timestamptz
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
      select p.customer_id, coalesce(sum(p.net) filter (where p.currency = ${currency}), 0) as revenue
      from (${purchases(span)}) p where p.customer_id in (select id from cs) group by p.customer_id
    )
    select cs.source, count(*)::int as customers, count(pc.customer_id)::int as purchasers,
           round(count(pc.customer_id)::numeric / count(*), 4)::float8 as conversion_rate,
           round(coalesce(sum(pc.revenue), 0), 2)::text as revenue,
           round(coalesce(sum(pc.revenue), 0) / count(*), 2)::text as revenue_per_customer
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
export async function churnRisk(db: DbExecutor, span: Span, p: ChurnParams, keys: SortKey[], after: unknown[] | undefined, limit: number) {
  const r = await sql<ChurnRow>`
    with p as (${purchases(span)}),
    gaps as (
      select p.customer_id, p.ordered_at,
             extract(epoch from (p.ordered_at - lag(p.ordered_at) over (partition by p.customer_id order by p.ordered_at, p.order_id)))::float8 / 86400 as gap_days
      from p
    ),
    per as (
      select customer_id as id, count(*)::int as purchases, max(ordered_at) as last_purchase_at,
             extract(epoch from (${span.asOf}::timestamptz - max(ordered_at)))::float8 / 86400 as days_since,
             ${p.basis === 'mean'
               ? sql`avg(gap_days)`
               : sql`percentile_cont(0.5) within group (order by gap_days) filter (where gap_days is not null)`} as typical
      from gaps group by customer_id having count(*) >= 2
    ),
    s as (
      select per.*, round((days_since / typical)::numeric, 4) as risk_ratio from per
      where typical > 0 and days_since > ${p.k}::float8 * typical
    )
    select s.id, s.purchases, s.last_purchase_at, round(s.days_since::numeric, 2)::float8 as days_since_last_purchase,
           round(s.typical::numeric, 2)::float8 as typical_interval_days, s.risk_ratio::text as risk_ratio
    from s
    where ${cursorWhere(keys, after)}
    order by ${orderBy(keys)}
    limit ${limit + 1}`.execute(db)
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
 * A customer's cohort is the month of their first purchase ever (up to as_of). Offset k counts
 * the cohort's customers with a purchase in calendar month cohort + k; months that start after
 * as_of are not observed (null).
 */
export async function cohortCells(db: DbExecutor, asOf: string, from: string, to: string) {
  const r = await sql<CohortCell>`
    with p as (${purchases({ asOf, windowStart: null })}),
    firsts as (
      select p.customer_id, date_trunc('month', min(p.ordered_at) at time zone 'UTC') as cohort, count(*) as n
      from p group by p.customer_id
    ),
    c as (select * from firsts where cohort between ${from + '-01'}::timestamp and ${to + '-01'}::timestamp),
    sizes as (select cohort, count(*)::int as customers, count(*) filter (where n >= 2)::int as repeat_customers from c group by cohort),
    active as (
      select c.cohort, date_trunc('month', p.ordered_at at time zone 'UTC') as month, count(distinct p.customer_id)::int as retained
      from p join c on c.customer_id = p.customer_id group by 1, 2
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
    with p as (${purchases({ asOf, windowStart: null })}),
    firsts as (
      select date_trunc('month', min(p.ordered_at) at time zone 'UTC') as cohort, count(*) as n
      from p group by p.customer_id
    )
    select count(*)::int as customers, count(*) filter (where n >= 2)::int as repeat_customers,
           round((count(*) filter (where n >= 2))::numeric / nullif(count(*), 0), 4)::float8 as repeat_purchase_rate
    from firsts where cohort between ${from + '-01'}::timestamp and ${to + '-01'}::timestamp`.execute(db)
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
  const start = sql`${from + '-01'}::timestamp at time zone 'UTC'`
  const end = sql`(${to + '-01'}::timestamp + interval '1 month') at time zone 'UTC'`
  const r = await sql<SatisfactionRow>`
    with months as (
      select m from generate_series(${from + '-01'}::timestamp, ${to + '-01'}::timestamp, interval '1 month') as g(m)
      union all select null::timestamp
    ),
    f as (
      select date_trunc('month', f.submitted_at at time zone 'UTC') as m, f.kind, f.survey_type, f.score
      from feedback f join customers c on c.id = f.customer_id
      where c.archived_at is null and f.archived_at is null and f.submitted_at <= ${asOf}::timestamptz
        and f.submitted_at >= ${start} and f.submitted_at < ${end}
    ),
    fm as (
      select m,
             count(*) filter (where survey_type = 'csat')::int as csat_responses,
             avg(score) filter (where survey_type = 'csat') as csat_avg,
             count(*) filter (where survey_type = 'csat' and score >= 4)::int as csat_satisfied,
             count(*) filter (where survey_type = 'nps')::int as nps_responses,
             count(*) filter (where survey_type = 'nps' and score >= 9)::int as promoters,
             count(*) filter (where survey_type = 'nps' and score between 7 and 8)::int as passives,
             count(*) filter (where survey_type = 'nps' and score <= 6)::int as detractors,
             count(*) filter (where kind = 'complaint')::int as complaints
      from f group by grouping sets ((m), ())
    ),
    om as (
      select pm.m, count(*)::int as purchases
      from (
        select date_trunc('month', p.ordered_at at time zone 'UTC') as m
        from (${purchases({ asOf, windowStart: null })}) p
        where p.ordered_at >= ${start} and p.ordered_at < ${end}
      ) pm
      group by grouping sets ((pm.m), ())
    )
    select to_char(months.m, 'YYYY-MM') as month,
           coalesce(fm.csat_responses, 0) as csat_responses,
           round(fm.csat_avg, 2)::float8 as csat_average,
           round(100.0 * fm.csat_satisfied / nullif(fm.csat_responses, 0), 1)::float8 as csat_satisfied_pct,
           coalesce(fm.nps_responses, 0) as nps_responses, coalesce(fm.promoters, 0) as promoters,
           coalesce(fm.passives, 0) as passives, coalesce(fm.detractors, 0) as detractors,
           round(100.0 * (fm.promoters - fm.detractors) / nullif(fm.nps_responses, 0), 1)::float8 as nps,
           coalesce(fm.complaints, 0) as complaints, coalesce(om.purchases, 0) as purchases,
           round(100.0 * coalesce(fm.complaints, 0) / nullif(om.purchases, 0), 2)::float8 as complaints_per_100_orders
    from months
    left join fm on fm.m is not distinct from months.m
    left join om on om.m is not distinct from months.m
    order by months.m nulls last`.execute(db)
  return r.rows
}

export async function openComplaints(db: DbExecutor, asOf: string): Promise<number> {
  const r = await sql<{ n: number }>`
    select count(*)::int as n from feedback f join customers c on c.id = f.customer_id
    where c.archived_at is null and f.archived_at is null and f.kind = 'complaint' and f.status in ('open', 'in_progress')
      and f.submitted_at <= ${asOf}::timestamptz`.execute(db)
  return r.rows[0]?.n ?? 0
}
