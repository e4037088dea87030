import { Type, type Static, type TObject, type TProperties, type TSchema } from 'typebox'
import { PageQuery } from '../../lib/pagination.js'
import { Currency, Money, Nullable, StringEnum, Timestamp, Uuid, ref } from '../../lib/schema.js'

export const RFM_SEGMENTS = [
  'champions', 'loyal', 'potential_loyalists', 'new_customers', 'promising',
  'need_attention', 'about_to_sleep', 'cant_lose', 'at_risk', 'hibernating',
] as const
export type RfmSegment = (typeof RFM_SEGMENTS)[number]

/** The documented R/F map: every (R, F) pair falls in exactly one segment. */
export const RFM_SEGMENT_RULES: Record<RfmSegment, string> = {
  champions: 'R 5, F 4–5',
  loyal: 'R 3–4, F 4–5',
  potential_loyalists: 'R 4–5, F 2–3',
  new_customers: 'R 5, F 1',
  promising: 'R 4, F 1',
  need_attention: 'R 3, F 3',
  about_to_sleep: 'R 3, F 1–2',
  cant_lose: 'R 1–2, F 5',
  at_risk: 'R 1–2, F 3–4',
  hibernating: 'R 1–2, F 1–2',
}

export const VALUE_TIERS = ['top_1', 'top_5', 'top_20', 'rest'] as const
export type ValueTier = (typeof VALUE_TIERS)[number]

export const LIFECYCLE_STAGES = ['lead', 'first_purchase', 'repeat', 'loyal', 'at_risk', 'churned'] as const

export const CHURN_BASES = ['median', 'mean'] as const
export type ChurnBasis = (typeof CHURN_BASES)[number]

/** A named schema's example, reused in the examples of the schemas that contain it. */
const ex = (schema: TSchema): unknown => (schema as { example?: unknown }).example

const Share = (description: string, example = 0.25) => Type.Number({ minimum: 0, maximum: 1, description, example })

// ---------------------------------------------------------------------------------------------
// Query strings

const asOf = Type.Optional(Timestamp({
  description: 'The instant the figures are computed at (default: now). Orders, feedback and customers after it are ignored; pin it for reproducible answers and stable pages',
  example: '2026-11-23T00:00:00Z',
}))
const windowDays = (description: string) =>
  Type.Optional(Type.Integer({ minimum: 1, maximum: 3650, description, example: 365 }))
const currency = Type.Optional(Currency({
  description: 'ISO 4217 currency of the money figures (amounts in different currencies are never added). Default: the currency with the most purchases in the window (for lifetime value: up to as_of; ties: alphabetical); method.currency states the one used',
}))
const Month = (description: string) =>
  Type.Optional(Type.String({ pattern: '^(19[89][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$', maxLength: 7, description: `${description}; years 1980 to 2999`, example: '2026-01' }))

const query = <P extends TProperties>(properties: P) => Type.Object(properties, { additionalProperties: false })

export const RfmQuery = query({
  as_of: asOf,
  window_days: windowDays('Purchases within the last window_days before as_of are scored (default 365)'),
  currency,
})
export const RfmCustomersQuery = query({
  as_of: asOf,
  window_days: windowDays('Purchases within the last window_days before as_of are scored (default 365)'),
  currency,
  segment: Type.Optional(StringEnum(RFM_SEGMENTS, { description: 'Only customers in this segment' })),
  ...PageQuery,
})
export const ValueTiersQuery = query({
  as_of: asOf,
  window_days: windowDays('Window for the purchase frequency of the predictive CLV (default 365)'),
  currency,
  lifespan_years: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, description: 'Expected customer lifespan of the predictive CLV, in years (default 3)', example: 3 })),
})
export const ValueCustomersQuery = query({
  as_of: asOf,
  window_days: windowDays('Window for the purchase frequency of the predictive CLV (default 365)'),
  currency,
  lifespan_years: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, description: 'Expected customer lifespan of the predictive CLV, in years (default 3)', example: 3 })),
  tier: Type.Optional(StringEnum(VALUE_TIERS, { description: 'Only customers in this tier' })),
  ...PageQuery,
})
export const LifecycleQuery = query({ as_of: asOf })
export const AcquisitionQuery = query({
  as_of: asOf,
  window_days: windowDays('Customers created within the last window_days before as_of, and their purchases in that window (default 365)'),
  currency,
})
export const ChurnRiskQuery = query({
  as_of: asOf,
  window_days: windowDays('Only purchases within the last window_days before as_of (default: all purchases up to as_of)'),
  k: Type.Optional(Type.Number({ minimum: 1, maximum: 100, description: 'At risk when days since the last purchase > k × the typical interval (default 2)', example: 2 })),
  basis: Type.Optional(StringEnum(CHURN_BASES, { description: 'Typical interval: median (default) or mean of the customer\'s intervals between purchases' })),
  ...PageQuery,
})
export const CohortsQuery = query({
  as_of: asOf,
  from: Month('First cohort month, YYYY-MM, UTC (default: 11 months before to)'),
  to: Month('Last cohort month, YYYY-MM, UTC (default: the month of as_of); at most 36 months after from'),
})
export const SatisfactionQuery = query({
  as_of: asOf,
  from: Month('First month, YYYY-MM, UTC (default: 11 months before to)'),
  to: Month('Last month, YYYY-MM, UTC (default: the month of as_of); at most 36 months after from'),
})

export type RfmQueryT = Static<typeof RfmQuery>
export type RfmCustomersQueryT = Static<typeof RfmCustomersQuery>
export type ValueTiersQueryT = Static<typeof ValueTiersQuery>
export type ValueCustomersQueryT = Static<typeof ValueCustomersQuery>
export type AcquisitionQueryT = Static<typeof AcquisitionQuery>
export type ChurnRiskQueryT = Static<typeof ChurnRiskQuery>
export type MonthRangeQueryT = Static<typeof CohortsQuery>

// ---------------------------------------------------------------------------------------------
// Answers

export const AnalyticsMethod = Type.Object(
  {
    description: Type.String({ description: 'How the figures were computed: population, formulas, tie and rounding rules' }),
    as_of: Timestamp({ description: 'The instant the figures are computed at' }),
    window_start: Nullable(Timestamp(), { description: 'Start of the window; null when all history up to as_of counts. Windows of days exclude it, month ranges include it', example: '2025-11-23T00:00:00.000Z' }),
    window_end: Timestamp({ description: 'End of the window (inclusive): as_of' }),
    currency: Nullable(Currency(), { description: 'Currency of the money figures; null when the answer has none (or no purchase exists to choose one)', example: 'CNY' }),
    parameters: Type.Object({}, { additionalProperties: true, description: 'The other parameters in effect, defaults filled in', example: { window_days: 365 } }),
  },
  {
    $id: 'AnalyticsMethod',
    description: 'How an analytics answer was computed and over which window',
    example: {
      description: 'RFM over purchases (status paid, fulfilled or partially_refunded, not archived) …',
      as_of: '2026-11-23T00:00:00.000Z', window_start: '2025-11-23T00:00:00.000Z', window_end: '2026-11-23T00:00:00.000Z', currency: 'CNY',
      parameters: { window_days: 365 },
    },
  },
)

const withMethod = <P extends TProperties>(properties: P) => ({ method: ref(AnalyticsMethod), ...properties })

export const RfmSegmentCount = Type.Object(
  {
    segment: StringEnum(RFM_SEGMENTS),
    rule: Type.String({ description: 'The R and F scores that make the segment', example: 'R 5, F 4–5' }),
    customers: Type.Integer({ minimum: 0, example: 42 }),
    share: Share('customers / all scored customers, rounded to 4 decimals'),
  },
  { $id: 'RfmSegmentCount', description: 'How many scored customers fall in one RFM segment', example: { segment: 'champions', rule: 'R 5, F 4–5', customers: 42, share: 0.084 } },
)

export const RfmScoreBand = Type.Object(
  {
    score: Type.Integer({ minimum: 1, maximum: 5, example: 5 }),
    customers: Type.Integer({ minimum: 1, example: 100 }),
    share: Share('customers / all scored customers, rounded to 4 decimals', 0.2),
    min: Type.String({ maxLength: 20, description: 'Smallest value with this score, as a decimal string (days, purchases or money)', example: '0' }),
    max: Type.String({ maxLength: 20, description: 'Largest value with this score', example: '17' }),
  },
  { $id: 'RfmScoreBand', description: 'The customers and the range of values of one quintile score', example: { score: 5, customers: 100, share: 0.2, min: '0', max: '17' } },
)

const bands = (what: string) =>
  Type.Array(ref(RfmScoreBand), { maxItems: 5, description: `${what}: the scores given, lowest first (a score no customer got because of ties is left out)` })

export const RfmSummary = Type.Object(
  withMethod({
    customers: Type.Integer({ minimum: 0, description: 'Customers scored (at least one purchase in the window and currency)', example: 500 }),
    segments: Type.Array(ref(RfmSegmentCount), { maxItems: RFM_SEGMENTS.length, description: 'Every segment, in a fixed order, zero counts included' }),
    scores: Type.Object(
      { recency: bands('Recency in days'), frequency: bands('Frequency in purchases'), monetary: bands('Monetary in the currency') },
      { description: 'The quintile cut points: per score, its customers and value range' },
    ),
  }),
  {
    $id: 'RfmSummary', description: 'The distribution of customers over RFM segments and quintile scores',
    example: {
      method: ex(AnalyticsMethod), customers: 500, segments: [{ segment: 'champions', rule: 'R 5, F 4–5', customers: 42, share: 0.084 }],
      scores: { recency: [ex(RfmScoreBand)], frequency: [], monetary: [] },
    },
  },
)

const score = (what: string) => Type.Integer({ minimum: 1, maximum: 5, description: `${what} quintile score, 5 best`, example: 4 })

export const RfmCustomer = Type.Object(
  {
    customer_id: Uuid(),
    recency_days: Type.Integer({ minimum: 0, description: 'Whole days from the last purchase in the window to as_of', example: 12 }),
    frequency: Type.Integer({ minimum: 1, description: 'Purchases in the window and currency', example: 4 }),
    monetary: Money({ description: 'Net spend in the window and currency: sum of total - amount_refunded' }),
    last_purchase_at: Timestamp(),
    r_score: score('Recency'),
    f_score: score('Frequency'),
    m_score: score('Monetary'),
    rfm: Type.String({ pattern: '^[1-5]{3}$', description: 'The three scores as one code', example: '454' }),
    segment: StringEnum(RFM_SEGMENTS),
  },
  {
    $id: 'RfmCustomer', description: 'One customer\'s RFM values and scores',
    example: {
      customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', recency_days: 12, frequency: 4, monetary: '1290.00', last_purchase_at: '2026-11-11T08:00:00.000Z',
      r_score: 4, f_score: 5, m_score: 4, rfm: '454', segment: 'loyal',
    },
  },
)

const page = <T extends TObject>(item: T, $id: string, description: string) =>
  Type.Object(
    withMethod({
      data: Type.Array(ref(item), { maxItems: 200 }),
      next_cursor: Nullable(Type.String(), { description: 'Pass as ?cursor= for the next page (the same parameters are then used); null on the last page', example: null }),
    }),
    { $id, description, example: { method: ex(AnalyticsMethod), data: [ex(item)], next_cursor: null } },
  )

export const RfmCustomerPage = page(RfmCustomer, 'RfmCustomerPage', 'Scored customers, highest RFM code first (r, f, m scores as a number; then customer id descending)')

export const ValueTierSummary = Type.Object(
  {
    tier: StringEnum(VALUE_TIERS),
    threshold: Nullable(Money(), { description: 'The percentile a CLV must reach for the tier (99th, 95th, 80th; percentile_cont, rounded to the currency minor unit for display); null for rest', example: '5230.50' }),
    customers: Type.Integer({ minimum: 0, example: 5 }),
    min_clv: Nullable(Money(), { description: 'Smallest historical CLV in the tier', example: '5310.00' }),
    max_clv: Nullable(Money(), { description: 'Largest historical CLV in the tier', example: '12990.00' }),
    total_clv: Money({ description: 'Sum of historical CLV in the tier', example: '38200.00' }),
    revenue_share: Share('total_clv / the total of all tiers, rounded to 4 decimals', 0.18),
  },
  {
    $id: 'ValueTierSummary', description: 'One value tier',
    example: { tier: 'top_1', threshold: '5230.50', customers: 5, min_clv: '5310.00', max_clv: '12990.00', total_clv: '38200.00', revenue_share: 0.18 },
  },
)

export const ValueTiers = Type.Object(
  withMethod({
    customers: Type.Integer({ minimum: 0, description: 'Customers with at least one purchase in the currency up to as_of', example: 500 }),
    total_clv: Money({ description: 'Sum of historical CLV of all customers', example: '212000.00' }),
    tiers: Type.Array(ref(ValueTierSummary), { maxItems: VALUE_TIERS.length, description: 'top_1, top_5, top_20, rest' }),
  }),
  { $id: 'ValueTiers', description: 'Customers in value tiers by historical lifetime value', example: { method: ex(AnalyticsMethod), customers: 500, total_clv: '212000.00', tiers: [ex(ValueTierSummary)] } },
)

export const CustomerValue = Type.Object(
  {
    customer_id: Uuid(),
    purchases: Type.Integer({ minimum: 1, description: 'Purchases in the currency up to as_of', example: 7 }),
    historical_clv: Money({ description: 'Net spend in the currency up to as_of: sum of total - amount_refunded' }),
    avg_order_value: Money({ description: 'historical_clv / purchases, rounded half away from zero to the currency minor unit', example: '184.29' }),
    purchases_per_year: Type.Number({ minimum: 0, description: 'Purchases in the window × 365 / window_days, rounded to 4 decimals', example: 3 }),
    predicted_clv: Money({ description: 'historical_clv / purchases × purchases in the window × 365 / window_days × lifespan_years, rounded once, to the currency minor unit', example: '1658.61' }),
    tier: StringEnum(VALUE_TIERS),
    first_purchase_at: Timestamp(),
    last_purchase_at: Timestamp(),
  },
  {
    $id: 'CustomerValue', description: 'One customer\'s lifetime value and tier',
    example: {
      customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', purchases: 7, historical_clv: '1290.00', avg_order_value: '184.29', purchases_per_year: 3,
      predicted_clv: '1658.57', tier: 'top_20', first_purchase_at: '2025-01-05T10:00:00.000Z', last_purchase_at: '2026-11-11T08:00:00.000Z',
    },
  },
)

export const CustomerValuePage = page(CustomerValue, 'CustomerValuePage', 'Customers by historical CLV, highest first (then customer id descending)')

const StageCount = Type.Object(
  {
    stage: StringEnum(LIFECYCLE_STAGES),
    customers: Type.Integer({ minimum: 0, example: 120 }),
    manual: Type.Integer({ minimum: 0, description: 'Of which the stage was set by hand', example: 3 }),
    share: Share('customers / all customers, rounded to 4 decimals'),
  },
  { $id: 'LifecycleStageCount', description: 'Customers in one lifecycle stage', example: { stage: 'repeat', customers: 120, manual: 3, share: 0.24 } },
)
export const LifecycleStageCount = StageCount

export const LifecycleDistribution = Type.Object(
  withMethod({
    customers: Type.Integer({ minimum: 0, example: 500 }),
    stages: Type.Array(ref(StageCount), { maxItems: LIFECYCLE_STAGES.length, description: 'Every stage, zero counts included' }),
  }),
  { $id: 'LifecycleDistribution', description: 'Customers by lifecycle stage as of as_of', example: { method: ex(AnalyticsMethod), customers: 500, stages: [ex(StageCount)] } },
)

export const AcquisitionSource = Type.Object(
  {
    source: Type.String({ maxLength: 50, description: 'acquisition_source, or unknown when the customer has none', example: 'referral' }),
    customers: Type.Integer({ minimum: 0, description: 'Customers created in the window', example: 80 }),
    purchasers: Type.Integer({ minimum: 0, description: 'Of those, customers with at least one purchase (any currency) in the window', example: 36 }),
    conversion_rate: Share('purchasers / customers, rounded to 4 decimals', 0.45),
    revenue: Money({ description: 'Net spend of those customers in the window, in the currency', example: '9120.00' }),
    revenue_per_customer: Money({ description: 'revenue / customers, rounded to the currency minor unit', example: '114.00' }),
  },
  {
    $id: 'AcquisitionSource', description: 'Conversion and revenue of the customers acquired through one source',
    example: { source: 'referral', customers: 80, purchasers: 36, conversion_rate: 0.45, revenue: '9120.00', revenue_per_customer: '114.00' },
  },
)

export const AcquisitionSources = Type.Object(
  withMethod({ sources: Type.Array(ref(AcquisitionSource), { maxItems: 20, description: 'Most customers first, then by source name' }) }),
  { $id: 'AcquisitionSources', description: 'Customers, purchasers, conversion and revenue by acquisition source', example: { method: ex(AnalyticsMethod), sources: [ex(AcquisitionSource)] } },
)

export const ChurnRiskCustomer = Type.Object(
  {
    customer_id: Uuid(),
    purchases: Type.Integer({ minimum: 2, example: 6 }),
    last_purchase_at: Timestamp(),
    days_since_last_purchase: Type.Number({ minimum: 0, description: 'Days (fractional) from the last purchase to as_of, rounded to 2 decimals', example: 95.5 }),
    typical_interval_days: Type.Number({ minimum: 0, description: 'Median (or mean) days between consecutive purchases, rounded to 2 decimals', example: 30 }),
    risk_ratio: Type.Number({ minimum: 0, description: 'days_since_last_purchase / typical_interval_days, rounded to 4 decimals; the list is ranked by it', example: 3.1833 }),
  },
  {
    $id: 'ChurnRiskCustomer', description: 'A customer whose silence is long for their own purchase rhythm',
    example: { customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', purchases: 6, last_purchase_at: '2026-08-20T08:00:00.000Z', days_since_last_purchase: 95.5, typical_interval_days: 30, risk_ratio: 3.1833 },
  },
)

export const ChurnRiskPage = page(ChurnRiskCustomer, 'ChurnRiskPage', 'Customers at churn risk, highest risk_ratio first (then customer id descending)')

const rate = (description: string) => Nullable(Type.Number({ minimum: 0, maximum: 1 }), { description, example: 0.35 })

export const CohortMonth = Type.Object(
  {
    offset: Type.Integer({ minimum: 0, maximum: 11, description: 'Months after the cohort month (0 = the cohort month)', example: 1 }),
    month: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}$', maxLength: 7, example: '2026-02' }),
    customers: Nullable(Type.Integer({ minimum: 0 }), { description: 'Cohort customers with a purchase in that month; null when the month starts after as_of', example: 14 }),
    rate: rate('customers / cohort size, rounded to 4 decimals; null when not observed or the cohort is empty'),
  },
  { $id: 'CohortMonth', description: 'Retention of a cohort in one month after its first', example: { offset: 1, month: '2026-02', customers: 14, rate: 0.35 } },
)

export const Cohort = Type.Object(
  {
    cohort: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}$', maxLength: 7, description: 'Month of the first purchase (UTC)', example: '2026-01' }),
    customers: Type.Integer({ minimum: 0, description: 'Customers whose first purchase falls in that month', example: 40 }),
    repeat_customers: Type.Integer({ minimum: 0, description: 'Of those, customers with 2 or more purchases up to as_of', example: 18 }),
    repeat_purchase_rate: rate('repeat_customers / customers, rounded to 4 decimals; null for an empty cohort'),
    retention: Type.Array(ref(CohortMonth), { maxItems: 12, description: 'Offsets 0 to 11' }),
  },
  { $id: 'Cohort', description: 'One first-purchase cohort', example: { cohort: '2026-01', customers: 40, repeat_customers: 18, repeat_purchase_rate: 0.45, retention: [ex(CohortMonth)] } },
)

export const CohortRetention = Type.Object(
  withMethod({
    customers: Type.Integer({ minimum: 0, description: 'Customers in all cohorts of the range', example: 400 }),
    repeat_customers: Type.Integer({ minimum: 0, example: 150 }),
    repeat_purchase_rate: rate('repeat_customers / customers over all cohorts of the range, rounded to 4 decimals'),
    cohorts: Type.Array(ref(Cohort), { maxItems: 37 }),
  }),
  { $id: 'CohortRetention', description: 'Repeat-purchase rate and monthly retention by first-purchase cohort', example: { method: ex(AnalyticsMethod), customers: 40, repeat_customers: 18, repeat_purchase_rate: 0.45, cohorts: [ex(Cohort)] } },
)

const nnum = (description: string, example: number) => Nullable(Type.Number(), { description, example })

export const SatisfactionFigures = Type.Object(
  {
    month: Nullable(Type.String({ pattern: '^[0-9]{4}-[0-9]{2}$', maxLength: 7 }), { description: 'The month (UTC); null for the totals of the whole range', example: '2026-10' }),
    csat_responses: Type.Integer({ minimum: 0, example: 31 }),
    csat_average: nnum('Mean CSAT score (1–5), rounded to 2 decimals; null without responses', 4.13),
    csat_satisfied_pct: nnum('Percent of CSAT responses scoring 4 or 5, rounded to 1 decimal', 77.4),
    nps_responses: Type.Integer({ minimum: 0, example: 25 }),
    promoters: Type.Integer({ minimum: 0, description: 'NPS scores 9–10', example: 12 }),
    passives: Type.Integer({ minimum: 0, description: 'NPS scores 7–8', example: 8 }),
    detractors: Type.Integer({ minimum: 0, description: 'NPS scores 0–6', example: 5 }),
    nps: nnum('(promoters - detractors) / responses × 100, rounded to 1 decimal (-100 to 100)', 28),
    complaints: Type.Integer({ minimum: 0, description: 'Complaints submitted', example: 4 }),
    purchases: Type.Integer({ minimum: 0, description: 'Purchases (orders) placed, any currency', example: 260 }),
    complaints_per_100_orders: nnum('complaints / purchases × 100, rounded to 2 decimals; null without purchases', 1.54),
  },
  {
    $id: 'SatisfactionFigures', description: 'CSAT, NPS and complaints of one month (or of the whole range)',
    example: {
      month: '2026-10', csat_responses: 31, csat_average: 4.13, csat_satisfied_pct: 77.4, nps_responses: 25, promoters: 12, passives: 8, detractors: 5, nps: 28,
      complaints: 4, purchases: 260, complaints_per_100_orders: 1.54,
    },
  },
)

export const Satisfaction = Type.Object(
  withMethod({
    totals: ref(SatisfactionFigures),
    months: Type.Array(ref(SatisfactionFigures), { maxItems: 37, description: 'Every month of the range, oldest first, empty months included' }),
    open_complaints: Type.Integer({ minimum: 0, description: 'Complaints submitted up to as_of whose current status is open or in_progress', example: 3 }),
  }),
  { $id: 'Satisfaction', description: 'CSAT and NPS trends and complaint rates by month', example: { method: ex(AnalyticsMethod), totals: ex(SatisfactionFigures), months: [ex(SatisfactionFigures)], open_complaints: 3 } },
)

export type MethodDto = Static<typeof AnalyticsMethod>

export const analyticsSchemas = [
  AnalyticsMethod, RfmSegmentCount, RfmScoreBand, RfmSummary, RfmCustomer, RfmCustomerPage, ValueTierSummary, ValueTiers, CustomerValue, CustomerValuePage,
  LifecycleStageCount, LifecycleDistribution, AcquisitionSource, AcquisitionSources, ChurnRiskCustomer, ChurnRiskPage, CohortMonth, Cohort, CohortRetention,
  SatisfactionFigures, Satisfaction,
]
