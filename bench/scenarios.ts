/**
 * The table of benchmark scenarios. To add one, fill in
 * its row: the paths it requests (built from the fixtures of each database size), the variants
 * it runs against, its load profile and its target from issue 5. `pending` rows are listed in
 * the report as not measured yet.
 */
import { encodeCursor, type SortKey } from '../src/lib/pagination.js'

/** What one database size offers the scenarios: sampled ids, cursors and search terms. */
export interface Fixtures {
  size: number
  customerIds: string[]
  /** Customers for the timeline: a uniform sample plus the heaviest (most orders and interactions). */
  timelineIds: string[]
  /** created_at/id pairs of sampled customers, to start list pages anywhere in the keyset. */
  listStarts: Array<{ created_at: string; id: string }>
  qTerms: string[]
  /** Dynamic segments made for the bench (see BENCH_SEGMENTS), by id; empty until the service is up. */
  segmentIds: string[]
}

/** full: the service (`npm start` code); minimal: bench/baseline/minimal-server.ts; pgbench: the SQL alone. */
export type Variant = 'full' | 'minimal' | 'pgbench'

export interface Scenario {
  name: string
  what: string
  variants: Variant[]
  /**
   * throughput: many connections, for ratios between variants; latency: few, for p99 targets;
   * sequential: one connection, one request at a time, for heavy reads that last up to seconds.
   */
  load: 'throughput' | 'latency' | 'sequential'
  paths?: (f: Fixtures, variant: Variant) => string[]
  /** p99Ms is an upper bound (p99 ≤); p99BelowMs a strict one (p99 <). */
  target?: { p99Ms?: number; p99BelowMs?: number; maxMs?: number; ratioToMinimal?: number; growth?: number }
  /** Not measured yet: who adds it and where. */
  pending?: string
}

const LIST_KEYS: SortKey[] = [{ field: 'created_at', desc: true, type: 'timestamp' }]

/**
 * The dynamic segments segment_count counts, created through the API in each bench database
 * (bench/fixtures.ts, ensureSegments) the first time and reused after: realistic rules, one on
 * the customer and their orders, one on their feedback.
 */
export const BENCH_SEGMENTS = [
  {
    name: 'bench: repeat or loyal, 3+ orders in 90 days',
    filter: { and: [{ field: 'lifecycle_stage', op: 'in', value: ['repeat', 'loyal'] }, { orders: { min_count: 3, since: { last_n_days: 90 } } }] },
  },
  {
    name: 'bench: open feedback',
    filter: { feedback: { open: true } },
  },
]

export const SCENARIOS: Scenario[] = [
  {
    name: 'get_customer',
    what: 'GET /v1/customers/{id} (random ids) vs the same SQL behind a bare fastify+pg route and in pgbench -M extended',
    variants: ['full', 'minimal', 'pgbench'],
    load: 'throughput',
    paths: (f, v) => f.customerIds.map((id) => (v === 'minimal' ? `/customers/${id}` : `/v1/customers/${id}`)),
    target: { ratioToMinimal: 0.85, growth: 1.5 },
  },
  {
    name: 'list_page',
    what: 'GET /v1/customers?limit=50, newest first: the first page and pages after random cursors',
    variants: ['full'],
    load: 'latency',
    paths: (f) => [
      '/v1/customers?limit=50',
      ...f.listStarts.map((r) => `/v1/customers?limit=50&cursor=${encodeCursor(LIST_KEYS, r)}`),
    ],
    target: { p99Ms: 12, growth: 1.5 },
  },
  {
    name: 'search_q',
    what: 'GET /v1/customers?q=<term>&limit=50: names in several scripts, email and phone fragments',
    variants: ['full'],
    load: 'latency',
    paths: (f) => f.qTerms.map((q) => `/v1/customers?limit=50&q=${encodeURIComponent(q)}`),
    target: { p99BelowMs: 150, maxMs: 500 },
  },
  {
    name: 'timeline_page',
    what: 'GET /v1/customers/{id}/timeline?limit=50 (uniform customers plus the heaviest)',
    variants: ['full'],
    load: 'latency',
    paths: (f) => f.timelineIds.map((id) => `/v1/customers/${id}/timeline?limit=50`),
    target: { p99Ms: 15, growth: 1.5 },
  },
  {
    name: 'segment_count',
    what: 'GET /v1/segments/{id}/count of dynamic segments (BENCH_SEGMENTS), evaluated at request time',
    variants: ['full'],
    load: 'sequential',
    paths: (f) => f.segmentIds.map((id) => `/v1/segments/${id}/count`),
    target: { p99BelowMs: 1000 },
  },
  {
    name: 'analytics_rfm',
    what: 'GET /v1/analytics/rfm: RFM quintiles and segment sizes over every customer\'s purchases of the last 365 days',
    variants: ['full'],
    load: 'sequential',
    paths: () => ['/v1/analytics/rfm'],
    target: { p99BelowMs: 1000 },
  },
]

/** A compiled query whose parameter `idIndex` (0-based) is the customer id; the others are constants. */
export interface KeyedSql {
  sql: string
  parameters: unknown[]
  idIndex: number
}

const literal = (v: unknown) => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : `'${String(v).replace(/'/g, "''")}'`)

/** The SQL of one get_customer request for pgbench: an id picked at random, then the same query. */
export function pgbenchGetScript(q: KeyedSql, idCount: number): string {
  const text = q.sql.replace(/\$(\d+)\b/g, (_, n: string) => (Number(n) - 1 === q.idIndex ? ':cid' : literal(q.parameters[Number(n) - 1])))
  return [`\\set n random(1, ${idCount})`, 'select id as cid from bench_ids where n = :n \\gset', `${text};`, ''].join('\n')
}
