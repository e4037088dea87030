import { minorUnits } from '../../lib/currency.js'
import { addMoney, formatMoney, moneyFromColumn } from '../../lib/money.js'
import type { DbExecutor } from '../../db/database.js'
import { cursorContext, pageRequest, toPage, type CursorContext, type SortKey } from '../../lib/pagination.js'
import { problem, pointer } from '../../lib/problem.js'
import * as repo from './analytics.repository.js'
import {
  LIFECYCLE_STAGES, RFM_SEGMENTS, RFM_SEGMENT_RULES, VALUE_TIERS, type ChurnBasis, type RfmSegment, type ValueTier,
  type AcquisitionQueryT, type ChurnRiskQueryT, type MethodDto, type MonthRangeQueryT, type RfmCustomersQueryT, type RfmQueryT,
  type ValueCustomersQueryT, type ValueTiersQueryT,
} from './analytics.schemas.js'

/**
 * Parameter defaults, windows and the `method` statement of every answer. The figures themselves
 * come from the repository, aggregated by PostgreSQL; this file only shapes them.
 */

const DAY_MS = 86_400_000
export const DEFAULT_WINDOW_DAYS = 365
export const DEFAULT_LIFESPAN_YEARS = 3
export const DEFAULT_K = 2
const MAX_MONTH_SPAN = 36
// Windows reach up to 3650 days back: as_of keeps them within years PostgreSQL and Date agree on.
const EARLIEST_AS_OF = Date.UTC(1980, 0, 1)
const LATEST_AS_OF = Date.UTC(2999, 11, 31, 23, 59, 59, 999)

const PURCHASE =
  'A purchase is an order with status paid, fulfilled or partially_refunded that is not archived, ordered at or before as_of; its net amount is total - amount_refunded. ' +
  'Archived customers are left out. Statuses are the current ones.'

const RFM_METHOD =
  `RFM over the purchases in the currency within (window_start, as_of]. ${PURCHASE} ` +
  'Per customer: recency = whole days from the last purchase to as_of (floor), frequency = number of purchases, monetary = sum of net amounts. ' +
  'Scores are quintiles by ntile(5): recency ordered by days descending (so the most recent customers score 5), frequency and monetary ascending, ' +
  'rows ordered by customer id within equal values; ties: every customer takes the lowest score given to any customer with the same value, ' +
  'so equal values always share one score (a large tie can leave a score unused). ' +
  'Segments from R and F: ' + RFM_SEGMENTS.map((s) => `${s} = ${RFM_SEGMENT_RULES[s]}`).join('; ') + '.'

const VALUE_METHOD =
  `Lifetime value per customer in the currency. ${PURCHASE} ` +
  'historical_clv = sum of net amounts of all purchases up to as_of (window_start does not limit it). ' +
  'predicted_clv = avg order value × purchase frequency × expected lifespan = historical_clv / purchases × (purchases within (window_start, as_of] × 365 / window_days) × lifespan_years, ' +
  'rounded half away from zero to the currency minor unit once, at the end. ' +
  'Tiers by percentile_cont over all customers\' historical_clv (as float8): top_1 when historical_clv ≥ the 99th percentile, top_5 when ≥ the 95th, ' +
  'top_20 when ≥ the 80th, else rest; equal values always share a tier. Only customers with a purchase in the currency are valued.'

const LIFECYCLE_METHOD =
  'Non-archived customers created at or before as_of, by lifecycle stage as of as_of: the rules of the customer metrics (no purchase → lead; ' +
  'last purchase over 180 days before as_of → churned; over 90 days → at_risk; 5 or more purchases → loyal; 2–4 → repeat; 1 → first_purchase) ' +
  `applied to purchases up to as_of in any currency; a stage set by hand (lifecycle_stage_manual) is taken as stored. ${PURCHASE}`

const ACQUISITION_METHOD =
  'Customers created within (window_start, as_of], grouped by acquisition_source (unknown when none). ' +
  `purchasers = those with a purchase within the window in any currency; conversion_rate = purchasers / customers; revenue = their net purchases within the window in the currency. ${PURCHASE}`

const churnMethod = (k: number, basis: string) =>
  `Customers with 2 or more purchases (any currency) in the window whose days since the last purchase (fractional) exceed ${k} × their ${basis} interval ` +
  'between consecutive purchases (fractional days). Customers whose typical interval is 0 are left out. Ranked by risk_ratio = days since last purchase / typical interval, ' +
  `highest first. ${PURCHASE}`

const COHORT_METHOD =
  `Cohort = month (UTC) of a customer's first purchase up to as_of, any currency. ${PURCHASE} ` +
  'Retention at offset k = cohort customers with a purchase in calendar month cohort + k, / cohort size (offset 0 is the cohort month itself, so 1); ' +
  'a month that starts after as_of is not observed (null), the month containing as_of counts up to as_of. ' +
  'Repeat-purchase rate = cohort customers with 2 or more purchases up to as_of / cohort size. Rates are rounded to 4 decimals.'

const SATISFACTION_METHOD =
  'Feedback of non-archived customers, not archived, submitted within the months (UTC) of the range and at or before as_of. ' +
  'CSAT = surveys of type csat (1–5): average score, and percent satisfied = share scoring 4 or 5. ' +
  'NPS = surveys of type nps (0–10): (promoters 9–10 - detractors 0–6) / responses × 100. ' +
  `Complaint rate = complaints submitted per 100 purchases placed in the same month (orders, not customers). ${PURCHASE} ` +
  'open_complaints counts complaints submitted up to as_of whose current status is open or in_progress. Rounding: half away from zero.'

// ---------------------------------------------------------------------------------------------
// Parameters

function resolveAsOf(given: string | undefined): string {
  if (given === undefined) return new Date().toISOString()
  const t = Date.parse(given)
  if (Number.isNaN(t)) throw problem('validation-failed', 'as_of is not a valid time.', [{ pointer: pointer('as_of'), message: 'must be an RFC 3339 date-time' }])
  if (t < EARLIEST_AS_OF || t > LATEST_AS_OF) {
    throw problem('validation-failed', 'as_of is out of range.', [{ pointer: pointer('as_of'), message: 'must be between 1980-01-01 and 2999-12-31' }])
  }
  return new Date(t).toISOString()
}

const windowStart = (asOf: string, days: number) => new Date(Date.parse(asOf) - days * DAY_MS).toISOString()

function method(description: string, asOf: string, start: string | null, currency: string | null, parameters: Record<string, unknown>): MethodDto {
  return { description, as_of: asOf, window_start: start, window_end: asOf, currency, parameters }
}

/**
 * A list's cursor carries the parameters it was computed with: a parameter a next page leaves out
 * is taken from the cursor (so paging with the default as_of = now stays on one snapshot), and a
 * parameter it sends must equal the cursor's, else the cursor is refused (400).
 */
function fromCursor(cursor: string | undefined) {
  const x = (cursor ? cursorContext(cursor) : undefined) ?? {}
  return {
    str: <T extends string>(key: string): T | undefined => (typeof x[key] === 'string' ? (x[key] as T) : undefined),
    /** A number the query string would have accepted too; anything else is ignored (and then the cursor does not match: 400). */
    num: (key: string, min: number, max: number): number | undefined => {
      const v = x[key]
      return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? v : undefined
    },
  }
}

async function currencyFor(db: DbExecutor, given: string | undefined, span: repo.Span): Promise<string | null> {
  return given ?? (await repo.dominantCurrency(db, span)) ?? null
}

function monthOf(iso: string): string {
  return iso.slice(0, 7)
}

function addMonths(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number) as [number, number]
  const total = y * 12 + (m - 1) + n
  return `${String(Math.floor(total / 12)).padStart(4, '0')}-${String((total % 12) + 1).padStart(2, '0')}`
}

function monthDiff(from: string, to: string): number {
  const [fy, fm] = from.split('-').map(Number) as [number, number]
  const [ty, tm] = to.split('-').map(Number) as [number, number]
  return ty * 12 + tm - (fy * 12 + fm)
}

function monthRange(q: MonthRangeQueryT, asOf: string): { from: string; to: string } {
  const to = q.to ?? monthOf(asOf)
  const from = q.from ?? addMonths(to, -11)
  const diff = monthDiff(from, to)
  if (diff < 0) throw problem('invalid-date-range', 'from is after to.', [{ pointer: pointer(q.from ? 'from' : 'to'), message: 'from must not be after to' }])
  if (diff > MAX_MONTH_SPAN) {
    throw problem('invalid-date-range', `The range is longer than ${MAX_MONTH_SPAN + 1} months.`, [{ pointer: pointer('to'), message: `must be at most ${MAX_MONTH_SPAN} months after from` }])
  }
  return { from, to }
}

// ---------------------------------------------------------------------------------------------
// RFM

const SCORE_KEYS: SortKey[] = [{ field: 'rfm_score', desc: true, type: 'integer' }]

export async function rfmSummary(db: DbExecutor, q: RfmQueryT) {
  const asOf = resolveAsOf(q.as_of)
  const days = q.window_days ?? DEFAULT_WINDOW_DAYS
  const span = { asOf, windowStart: windowStart(asOf, days) }
  const currency = await currencyFor(db, q.currency, span)
  const groups = currency ? await repo.rfmDistribution(db, span, currency) : []
  const counts = groups.filter((g) => g.kind === 'segment')
  const byName = new Map(counts.map((c) => [c.segment, c]))
  const bands = (kind: repo.RfmGroupRow['kind']) =>
    groups.filter((g) => g.kind === kind).map((g) => ({ score: g.score!, customers: g.customers, share: g.share, min: g.min!, max: g.max! }))
  return {
    method: method(RFM_METHOD, asOf, span.windowStart, currency, { window_days: days }),
    customers: counts.reduce((n, c) => n + c.customers, 0),
    segments: RFM_SEGMENTS.map((segment) => ({
      segment, rule: RFM_SEGMENT_RULES[segment], customers: byName.get(segment)?.customers ?? 0, share: byName.get(segment)?.share ?? 0,
    })),
    scores: { recency: bands('recency'), frequency: bands('frequency'), monetary: bands('monetary') },
  }
}

export async function rfmCustomers(db: DbExecutor, q: RfmCustomersQueryT) {
  const prior = fromCursor(q.cursor)
  const asOf = resolveAsOf(q.as_of ?? prior.str('as_of'))
  const days = q.window_days ?? prior.num('window_days', 1, 3650) ?? DEFAULT_WINDOW_DAYS
  const segment = q.segment ?? prior.str<RfmSegment>('segment')
  const span = { asOf, windowStart: windowStart(asOf, days) }
  const currency = await currencyFor(db, q.currency ?? prior.str('currency'), span)
  const context: CursorContext = { as_of: asOf, window_days: days, currency, segment: segment ?? null }
  const wanted = pageRequest(q, SCORE_KEYS, { context })
  const rows = currency ? await repo.rfmCustomers(db, span, currency, segment, wanted) : []
  const page = toPage(rows as unknown as Array<repo.RfmRow & Record<string, unknown>>, wanted, (r) => ({
    customer_id: r.id, recency_days: r.recency_days, frequency: r.frequency, monetary: r.monetary, last_purchase_at: r.last_purchase_at,
    r_score: r.r_score, f_score: r.f_score, m_score: r.m_score, rfm: String(r.rfm_score), segment: r.segment,
  }), context)
  return { method: method(RFM_METHOD, asOf, span.windowStart, currency, { window_days: days, segment: segment ?? null }), ...page }
}

// ---------------------------------------------------------------------------------------------
// Lifetime value

const CLV_KEYS: SortKey[] = [{ field: 'historical_clv', desc: true, type: 'decimal' }]

function valueParams(q: ValueTiersQueryT, asOf: string, prior = fromCursor(undefined)) {
  const days = q.window_days ?? prior.num('window_days', 1, 3650) ?? DEFAULT_WINDOW_DAYS
  const lifespan = q.lifespan_years ?? prior.num('lifespan_years', 1, 50) ?? DEFAULT_LIFESPAN_YEARS
  return { days, lifespan, span: { asOf, windowStart: windowStart(asOf, days) } }
}

export async function valueTiers(db: DbExecutor, q: ValueTiersQueryT) {
  const asOf = resolveAsOf(q.as_of)
  const { days, lifespan, span } = valueParams(q, asOf)
  const currency = await currencyFor(db, q.currency, { asOf, windowStart: null })
  const rows = currency ? await repo.valueTiers(db, span, { currency, windowDays: days, lifespanYears: lifespan }) : []
  const byTier = new Map(rows.map((r) => [r.tier, r]))
  const units = currency ? minorUnits(currency) : 2
  const any = rows[0]
  const thresholds: Partial<Record<string, string>> = any ? { top_1: any.p99, top_5: any.p95, top_20: any.p80 } : {}
  return {
    method: method(VALUE_METHOD, asOf, span.windowStart, currency, { window_days: days, lifespan_years: lifespan }),
    customers: rows.reduce((n, r) => n + r.customers, 0),
    total_clv: sumMoney(rows.map((r) => r.total_clv), units),
    tiers: VALUE_TIERS.map((tier) => {
      const r = byTier.get(tier)
      return {
        tier, threshold: thresholds[tier] ?? null,
        customers: r?.customers ?? 0, min_clv: r?.min_clv ?? null, max_clv: r?.max_clv ?? null, total_clv: r?.total_clv ?? formatMoney(0n, units), revenue_share: r?.revenue_share ?? 0,
      }
    }),
  }
}

/** Adds the tiers' sums exactly, in the currency's minor units. */
function sumMoney(values: string[], units: number): string {
  return formatMoney(addMoney(...values.map((v) => moneyFromColumn(v, units))), units)
}

export async function valueCustomers(db: DbExecutor, q: ValueCustomersQueryT) {
  const prior = fromCursor(q.cursor)
  const asOf = resolveAsOf(q.as_of ?? prior.str('as_of'))
  const { days, lifespan, span } = valueParams(q, asOf, prior)
  const tier = q.tier ?? prior.str<ValueTier>('tier')
  const currency = await currencyFor(db, q.currency ?? prior.str('currency'), { asOf, windowStart: null })
  const context: CursorContext = { as_of: asOf, window_days: days, lifespan_years: lifespan, currency, tier: tier ?? null }
  const wanted = pageRequest(q, CLV_KEYS, { context })
  const rows = currency ? await repo.valueCustomers(db, span, { currency, windowDays: days, lifespanYears: lifespan }, tier, wanted) : []
  const page = toPage(rows as unknown as Array<repo.ValueRow & Record<string, unknown>>, wanted, (r) => ({
    customer_id: r.id, purchases: r.purchases, historical_clv: r.historical_clv, avg_order_value: r.avg_order_value, purchases_per_year: r.purchases_per_year,
    predicted_clv: r.predicted_clv, tier: r.tier, first_purchase_at: r.first_purchase_at, last_purchase_at: r.last_purchase_at,
  }), context)
  return { method: method(VALUE_METHOD, asOf, span.windowStart, currency, { window_days: days, lifespan_years: lifespan, tier: tier ?? null }), ...page }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle, acquisition

export async function lifecycle(db: DbExecutor, q: { as_of?: string | undefined }) {
  const asOf = resolveAsOf(q.as_of)
  const rows = await repo.lifecycleCounts(db, asOf)
  const byStage = new Map(rows.map((r) => [r.stage, r]))
  return {
    method: method(LIFECYCLE_METHOD, asOf, null, null, {}),
    customers: rows.reduce((n, r) => n + r.customers, 0),
    stages: LIFECYCLE_STAGES.map((stage) => ({
      stage, customers: byStage.get(stage)?.customers ?? 0, manual: byStage.get(stage)?.manual ?? 0, share: byStage.get(stage)?.share ?? 0,
    })),
  }
}

export async function acquisition(db: DbExecutor, q: AcquisitionQueryT) {
  const asOf = resolveAsOf(q.as_of)
  const days = q.window_days ?? DEFAULT_WINDOW_DAYS
  const span = { asOf, windowStart: windowStart(asOf, days) }
  const currency = await currencyFor(db, q.currency, span)
  return {
    method: method(ACQUISITION_METHOD, asOf, span.windowStart, currency, { window_days: days }),
    sources: await repo.acquisitionSources(db, span, currency),
  }
}

// ---------------------------------------------------------------------------------------------
// Churn risk

const RISK_KEYS: SortKey[] = [{ field: 'risk_ratio', desc: true, type: 'decimal' }]

export async function churnRisk(db: DbExecutor, q: ChurnRiskQueryT) {
  const prior = fromCursor(q.cursor)
  const asOf = resolveAsOf(q.as_of ?? prior.str('as_of'))
  const days = q.window_days ?? prior.num('window_days', 1, 3650) ?? null
  const span = { asOf, windowStart: days === null ? null : windowStart(asOf, days) }
  const k = q.k ?? prior.num('k', 1, 100) ?? DEFAULT_K
  const basis = q.basis ?? prior.str<ChurnBasis>('basis') ?? 'median'
  const context: CursorContext = { as_of: asOf, window_days: days, k, basis }
  const wanted = pageRequest(q, RISK_KEYS, { context })
  const rows = await repo.churnRisk(db, span, { k, basis }, wanted)
  const page = toPage(rows as unknown as Array<repo.ChurnRow & Record<string, unknown>>, wanted, (r) => ({
    customer_id: r.id, purchases: r.purchases, last_purchase_at: r.last_purchase_at, days_since_last_purchase: r.days_since_last_purchase,
    typical_interval_days: r.typical_interval_days, risk_ratio: Number(r.risk_ratio),
  }), context)
  return { method: method(churnMethod(k, basis), asOf, span.windowStart, null, { window_days: days, k, basis }), ...page }
}

// ---------------------------------------------------------------------------------------------
// Cohorts, satisfaction

export async function cohorts(db: DbExecutor, q: MonthRangeQueryT) {
  const asOf = resolveAsOf(q.as_of)
  const { from, to } = monthRange(q, asOf)
  const cells = await repo.cohortCells(db, asOf, from, to)
  const out: Array<{ cohort: string; customers: number; repeat_customers: number; repeat_purchase_rate: number | null; retention: Array<{ offset: number; month: string; customers: number | null; rate: number | null }> }> = []
  for (const c of cells) {
    let cohort = out[out.length - 1]
    if (!cohort || cohort.cohort !== c.cohort) {
      cohort = { cohort: c.cohort, customers: c.customers, repeat_customers: c.repeat_customers, repeat_purchase_rate: c.repeat_purchase_rate, retention: [] }
      out.push(cohort)
    }
    cohort.retention.push({ offset: c.offset, month: c.month, customers: c.retained, rate: c.rate })
  }
  const totals = await repo.cohortTotals(db, asOf, from, to)
  return {
    method: method(COHORT_METHOD, asOf, `${from}-01T00:00:00.000Z`, null, { from, to }),
    ...totals,
    cohorts: out,
  }
}

export async function satisfaction(db: DbExecutor, q: MonthRangeQueryT) {
  const asOf = resolveAsOf(q.as_of)
  const { from, to } = monthRange(q, asOf)
  const rows = await repo.satisfaction(db, asOf, from, to)
  const totals = rows.find((r) => r.month === null)!
  return {
    method: method(SATISFACTION_METHOD, asOf, `${from}-01T00:00:00.000Z`, null, { from, to }),
    totals,
    months: rows.filter((r) => r.month !== null),
    open_complaints: await repo.openComplaints(db, asOf),
  }
}
