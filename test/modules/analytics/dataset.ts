import type { Db } from '../../../src/db/database.js'
import { prng } from '../../helpers/seed.js'

/**
 * A generated data set for the analytics tests, written straight to the database, and kept in
 * memory so the tests can recompute every figure independently. All times are whole seconds
 * relative to a pinned AS_OF; a seeded PRNG makes it the same on every run.
 */
export const AS_OF = '2026-11-15T12:00:00.000Z'
export const AS_OF_MS = Date.parse(AS_OF)
export const DAY = 86_400_000

export const SOURCES = ['organic', 'referral', 'paid_search', 'email', 'store', null] as const
export const PURCHASE_STATUSES = new Set(['paid', 'fulfilled', 'partially_refunded'])

export interface GenCustomer {
  id: string
  created_ms: number
  source: string | null
  archived: boolean
  manual_stage: string | null
}

export interface GenOrder {
  id: string
  customer_id: string
  ordered_ms: number
  status: string
  currency: string
  total_cents: number
  refunded_cents: number
  archived: boolean
}

export interface GenFeedback {
  customer_id: string
  kind: string
  survey_type: string | null
  score: number | null
  status: string | null
  submitted_ms: number
  archived: boolean
}

export interface DataSet {
  customers: GenCustomer[]
  orders: GenOrder[]
  feedback: GenFeedback[]
}

const iso = (ms: number) => new Date(ms).toISOString()
const money = (cents: number) => `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`

/** A time `days` (fractional allowed) before AS_OF, on a whole second. */
const before = (days: number) => AS_OF_MS - Math.round(days * 86_400) * 1000

export async function generate(db: Db, seed = 20261115, n = 320): Promise<DataSet> {
  const r = prng(seed)
  const customers: GenCustomer[] = []
  const orders: GenOrder[] = []
  const feedback: GenFeedback[] = []

  const rows = Array.from({ length: n }, (_, i) => {
    const created_ms = before(r.int(0, 900) + r.next())
    const manual = i % 40 === 7 ? 'loyal' : null
    return {
      name: `Analytics customer ${i}`,
      acquisition_source: r.pick(SOURCES),
      created_at: iso(created_ms),
      archived_at: i % 53 === 11 ? iso(AS_OF_MS - DAY) : null,
      lifecycle_stage: manual ?? 'lead',
      lifecycle_stage_manual: manual !== null,
    }
  })
  const inserted = await db.insertInto('customers').values(rows).returning(['id']).execute()
  inserted.forEach((row, i) => {
    const src = rows[i]!
    customers.push({ id: row.id, created_ms: Date.parse(src.created_at), source: src.acquisition_source, archived: src.archived_at !== null, manual_stage: src.lifecycle_stage_manual ? src.lifecycle_stage : null })
  })

  // Orders: a rhythm per customer (some buy every few weeks, some rarely), statuses mostly
  // purchases, a few in USD, archived, or after AS_OF; a handful of prices repeat to make ties.
  const orderRows: Array<Record<string, unknown>> = []
  const pending: Array<Omit<GenOrder, 'id'>> = []
  for (const c of customers) {
    const count = r.chance(0.15) ? 0 : r.int(1, 9)
    const rhythm = r.pick([7, 14, 30, 45, 90, 120])
    let t = before(r.int(0, 420) + r.next())
    for (let k = 0; k < count; k++) {
      const status = r.chance(0.82) ? r.pick(['paid', 'fulfilled', 'fulfilled', 'partially_refunded']) : r.pick(['pending', 'cancelled', 'refunded'])
      const currency = r.chance(0.8) ? 'CNY' : 'USD'
      const total = r.chance(0.15) ? r.pick([9900, 19900, 4990]) : r.int(500, 90_000)
      const paid = status === 'pending' || status === 'cancelled' ? 0 : total
      const refunded = status === 'refunded' ? total : status === 'partially_refunded' ? r.int(1, total - 1) : 0
      const o = {
        customer_id: c.id, ordered_ms: k === 0 && r.chance(0.03) ? AS_OF_MS + 5 * DAY : t, status, currency,
        total_cents: total, refunded_cents: refunded, archived: r.chance(0.03),
      }
      pending.push(o)
      orderRows.push({
        customer_id: o.customer_id, status, currency, subtotal: money(total), total: money(total), amount_paid: money(paid), amount_refunded: money(refunded),
        ordered_at: iso(o.ordered_ms), archived_at: o.archived ? iso(AS_OF_MS) : null, channel: 'online',
      })
      t -= Math.round((rhythm * (0.5 + r.next())) * 86_400) * 1000
    }
  }
  for (let i = 0; i < orderRows.length; i += 500) {
    const ids = await db.insertInto('orders').values(orderRows.slice(i, i + 500) as never).returning(['id']).execute()
    ids.forEach((row, j) => orders.push({ id: row.id, ...pending[i + j]! }))
  }

  // Feedback over the last 14 months (and a few after AS_OF).
  const fbRows: Array<Record<string, unknown>> = []
  for (const c of customers) {
    const count = r.int(0, 4)
    for (let k = 0; k < count; k++) {
      const kind = r.pick(['survey', 'survey', 'survey', 'complaint', 'praise'])
      const survey_type = kind === 'survey' ? r.pick(['csat', 'nps']) : null
      const score = survey_type === 'csat' ? r.int(1, 5) : survey_type === 'nps' ? r.int(0, 10) : null
      const status = kind === 'complaint' ? r.pick(['open', 'in_progress', 'resolved', 'closed']) : null
      const submitted_ms = r.chance(0.03) ? AS_OF_MS + 3 * DAY : before(r.int(0, 430) + r.next())
      const f = { customer_id: c.id, kind, survey_type, score, status, submitted_ms, archived: r.chance(0.04) }
      feedback.push(f)
      fbRows.push({
        customer_id: c.id, kind, survey_type, score, status, submitted_at: iso(submitted_ms), archived_at: f.archived ? iso(AS_OF_MS) : null,
      })
    }
  }
  for (let i = 0; i < fbRows.length; i += 500) await db.insertInto('feedback').values(fbRows.slice(i, i + 500) as never).execute()

  return { customers, orders, feedback }
}

// ---------------------------------------------------------------------------------------------
// Independent arithmetic for the recomputations

/** num / den rounded half away from zero to `decimals`, as the double PostgreSQL's numeric round yields. */
export function roundRatio(num: bigint, den: bigint, decimals: number): number {
  const scale = 10n ** BigInt(decimals)
  let n = num * scale
  let d = den
  if (d < 0n) {
    n = -n
    d = -d
  }
  const neg = n < 0n
  const a = neg ? -n : n
  let q = a / d
  if ((a % d) * 2n >= d) q += 1n
  return Number(neg ? -q : q) / Number(scale)
}

export const centsToMoney = (cents: bigint | number): string => {
  const c = BigInt(cents)
  const neg = c < 0n
  const a = neg ? -c : c
  return `${neg ? '-' : ''}${a / 100n}.${String(a % 100n).padStart(2, '0')}`
}

/** PostgreSQL's ntile(buckets) over rows already in order: the first N % buckets get one row more. */
export function ntile(count: number, buckets: number): number[] {
  const out: number[] = []
  const base = Math.floor(count / buckets)
  const extra = count % buckets
  let bucket = 1
  let inBucket = 0
  for (let i = 0; i < count; i++) {
    const size = base + (bucket <= extra ? 1 : 0)
    if (inBucket >= size) {
      bucket++
      inBucket = 0
    }
    out.push(bucket)
    inBucket++
  }
  return out
}

/** percentile_cont over ascending doubles: linear interpolation at fraction × (N - 1). */
export function percentileCont(sorted: number[], fraction: number): number {
  const pos = fraction * (sorted.length - 1)
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  const a = sorted[lo]!
  const b = sorted[hi]!
  return lo === hi ? a : a + (b - a) * (pos - lo)
}

/** The purchases the API counts: purchase statuses, not archived, customer not archived, at or before AS_OF. */
export function purchasesOf(data: DataSet): GenOrder[] {
  const archived = new Set(data.customers.filter((c) => c.archived).map((c) => c.id))
  return data.orders.filter((o) => PURCHASE_STATUSES.has(o.status) && !o.archived && !archived.has(o.customer_id) && o.ordered_ms <= AS_OF_MS)
}

export const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7)
