import { Rng, UuidV7 } from './random.js'
import * as D from './data.js'

/** The tables the seed fills, in COPY column order (columns not listed take their defaults). */
export const COLUMNS = {
  customers: ['id', 'external_ref', 'name', 'given_name', 'family_name', 'gender', 'birthday', 'occupation', 'marital_status', 'company',
    'job_title', 'preferred_channel', 'acquisition_source', 'tags', 'interests', 'preferences', 'attributes', 'lifecycle_stage', 'consent',
    'credit_limit', 'credit_currency', 'payment_terms_days', 'loyalty_points', 'created_at', 'updated_at'],
  contact_points: ['id', 'customer_id', 'kind', 'label', 'value', 'value_normalized', 'network', 'address', 'is_primary', 'verified', 'created_at', 'updated_at'],
  orders: ['id', 'external_ref', 'order_number', 'customer_id', 'status', 'channel', 'payment_method', 'currency', 'tax_rate', 'subtotal',
    'discount_total', 'tax_total', 'shipping_total', 'total', 'amount_paid', 'amount_refunded', 'due_date', 'ordered_at', 'notes', 'created_at', 'updated_at'],
  order_items: ['id', 'order_id', 'position', 'sku', 'product_name', 'category', 'quantity', 'unit_price', 'discount', 'line_total', 'created_at', 'updated_at'],
  order_payments: ['id', 'order_id', 'kind', 'amount', 'method', 'paid_at', 'reference', 'created_at', 'updated_at'],
  interactions: ['id', 'customer_id', 'channel', 'direction', 'subject', 'notes', 'occurred_at', 'duration_seconds', 'outcome', 'agent',
    'follow_up_on', 'follow_up_done', 'order_id', 'created_at', 'updated_at'],
  feedback: ['id', 'customer_id', 'kind', 'survey_type', 'score', 'subject', 'body', 'channel', 'order_id', 'interaction_id', 'status', 'priority', 'assignee',
    'sla_due_at', 'resolution_note', 'resolved_at', 'submitted_at', 'created_at', 'updated_at'],
} as const

export type SeedTable = keyof typeof COLUMNS
export const SEED_TABLES = Object.keys(COLUMNS) as SeedTable[]
export type Lines = Record<SeedTable, string[]>

const DAY = 86_400_000
const HISTORY_MS = 3 * 365 * DAY
/** Purchases that count for metrics and lifecycle (as in the customer_metrics migration). */
const COUNTED = new Set(['paid', 'fulfilled', 'partially_refunded'])
/** Price multiplier from the catalogue's base prices (roughly USD cents). */
const CURRENCY_FACTOR: Record<string, number> = { USD: 1, EUR: 1, CNY: 7, RUB: 90, AED: 4, JPY: 150, INR: 80 }

// COPY text format ---------------------------------------------------------------------------

const NEEDS_ESCAPE = /[\\\n\r\t]/
const ESCAPES = /[\\\n\r\t]/g
const ESCAPED: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/** One field in COPY text format: \N for null, backslash escapes for the rest. */
export function field(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '\\N'
  if (typeof v !== 'string') return String(v)
  return NEEDS_ESCAPE.test(v) ? v.replace(ESCAPES, (c) => ESCAPED[c]!) : v
}

function row(values: Array<string | number | boolean | null | undefined>): string {
  let line = field(values[0])
  for (let i = 1; i < values.length; i++) line += '\t' + field(values[i])
  return line
}
const iso = (ms: number) => new Date(ms).toISOString()
const date = (ms: number) => iso(ms).slice(0, 10)
/** Minor units as a numeric(14,2) literal. */
const money = (minor: number) => `${Math.floor(minor / 100)}.${String(minor % 100).padStart(2, '0')}`
const textArray = (items: string[]) => `{${items.join(',')}}`

function sample<T>(rng: Rng, items: readonly T[], n: number): T[] {
  const out = new Set<T>()
  for (let i = 0; i < n; i++) out.add(rng.pick(items))
  return [...out]
}

// The generator ------------------------------------------------------------------------------

export interface GeneratorOptions {
  seed: number
  /** Customers already in the database: seeded names, emails and refs continue after them. */
  startIndex: number
  /** How many customers this run creates (spreads sign-up dates over the history). */
  total: number
  /** The first order number to assign (order_number_seq continues after the run). */
  firstOrderNumber: number
  /** The day the data ends: the same seed, size and day give the same data. */
  asOfMs: number
}

export interface CustomerSummary {
  orders: number
  interactions: number
  feedback: number
}

/**
 * Generates one customer at a time with all its rows, as COPY text lines. Orders per customer
 * follow a Pareto-like law (a fifth never buy, many buy once, a few buy hundreds of
 * times); interactions are skewed the same way; feedback averages one.
 */
export class SeedGenerator {
  private readonly rng: Rng
  private readonly ids: UuidV7
  private readonly locales: D.Locale[]
  private readonly localeWeights: number[]
  private orderNumber: number

  constructor(private readonly opts: GeneratorOptions) {
    this.rng = new Rng(opts.seed)
    this.ids = new UuidV7(new Rng(opts.seed ^ 0x5bd1e995), opts.asOfMs)
    this.locales = D.LOCALES
    this.localeWeights = D.LOCALES.map((l) => l.weight)
    this.orderNumber = opts.firstOrderNumber
  }

  /** The next order number to hand out (for setval on order_number_seq afterwards). */
  get nextOrderNumber(): number {
    return this.orderNumber
  }

  /**
   * Orders per customer, about 10 on average: a fifth never buy, almost half of the rest buy once,
   * the others follow a Pareto tail (the heavy buyers, up to 2,000 orders).
   */
  private orderCount(): number {
    const rng = this.rng
    if (rng.chance(0.2)) return 0
    if (rng.chance(0.45)) return 1
    return rng.pareto(4, 1.1, 2000)
  }

  customer(i: number, out: Lines): CustomerSummary {
    const rng = this.rng
    const n = this.opts.startIndex + i
    const asOf = this.opts.asOfMs
    const createdAt = Math.floor(asOf - HISTORY_MS + ((i + rng.next()) / this.opts.total) * HISTORY_MS * 0.98)
    // Some customers stop buying at some point (the at-risk and churned ones).
    const activeEnd = rng.chance(0.45) ? createdAt + (asOf - createdAt) * rng.next() : asOf
    const loc = rng.weighted(this.locales, this.localeWeights)
    const [given, givenLatin] = rng.pick(loc.given)
    const [family, familyLatin] = rng.pick(loc.family)
    const name = loc.familyFirst ? family + given : `${given} ${family}`
    const id = this.ids.next()
    const created = iso(createdAt)

    const orderCount = this.orderCount()
    const orders = this.orders(id, loc, orderCount, createdAt, activeEnd, out)
    const interactionCount = rng.chance(0.1) ? 0 : rng.pareto(5, 1.2, 2000)
    const interactionIds = this.interactions(id, interactionCount, createdAt, orders.ids, out)
    const feedbackCount = rng.geometric(1)
    this.feedback(id, feedbackCount, createdAt, orders.ids, interactionIds, out)

    const tags = sample(rng, D.TAGS, rng.geometric(1.2))
    if (orders.counted >= 20) tags.push('vip')
    const b2b = rng.chance(0.08)
    const email = `${givenLatin}.${familyLatin}.${n}@${rng.pick(D.EMAIL_DOMAINS)}`.toLowerCase()
    out.customers.push(row([
      id, rng.chance(0.4) ? `seed-c-${n}` : null, name, given, family, rng.weighted(D.GENDERS, D.GENDER_WEIGHTS),
      rng.chance(0.85) ? date(asOf - (18 + rng.int(0, 62)) * 365.25 * DAY - rng.int(0, 364) * DAY) : null,
      rng.chance(0.6) ? rng.pick(D.OCCUPATIONS) : null, rng.chance(0.5) ? rng.pick(D.MARITAL) : null,
      b2b ? rng.pick(D.COMPANIES) : null, b2b ? 'Purchasing' : null, rng.chance(0.7) ? rng.pick(D.PREFERRED_CHANNELS) : null,
      rng.weighted(D.ACQUISITION_SOURCES, D.ACQUISITION_WEIGHTS), textArray([...new Set(tags)]), textArray(sample(rng, D.INTERESTS, rng.geometric(1.5))),
      JSON.stringify({ language: loc.code, newsletter: rng.chance(0.4) }),
      JSON.stringify({ segment: b2b ? 'b2b' : rng.pick(['mass', 'mass', 'premium', 'student']), score: rng.int(0, 100), referral_code: `R${n.toString(36).toUpperCase()}` }),
      stage(orders.counted, orders.lastCountedAt, asOf),
      JSON.stringify({ email: { granted: rng.chance(0.6), at: created } }),
      b2b ? money(rng.int(10, 500) * 10_000) : null, b2b ? loc.currency : null, b2b ? rng.pick([15, 30, 45, 60]) : null,
      rng.chance(0.5) ? rng.int(0, 5000) : 0, created, created,
    ]))
    this.contacts(id, loc, email, createdAt, out)
    return { orders: orderCount, interactions: interactionCount, feedback: feedbackCount }
  }

  private contacts(customerId: string, loc: D.Locale, email: string, createdAt: number, out: Lines): void {
    const rng = this.rng
    const at = iso(createdAt)
    const add = (kind: string, label: string | null, value: string, normalized: string, network: string | null, address: string | null, primary: boolean) =>
      out.contact_points.push(row([this.ids.next(), customerId, kind, label, value, normalized, network, address, primary, rng.chance(0.5), at, at]))
    add('email', rng.pick(['home', 'work', null]), email, email, null, null, true)
    if (rng.chance(0.8)) {
      let digits = String(rng.int(1, 9))
      for (let d = 1; d < loc.phoneDigits; d++) digits += String(rng.int(0, 9))
      add('phone', 'mobile', `${loc.phonePrefix} ${digits}`, loc.phonePrefix + digits, null, null, true)
    }
    if (rng.chance(0.3)) {
      const a = { line1: `${rng.int(1, 999)} ${rng.pick(['Main St', 'Park Ave', '人民路', 'Ленина ул.', 'شارع الشيخ زايد'])}`, city: rng.pick(loc.cities), postal_code: String(rng.int(10000, 99999)), country: loc.country }
      const text = `${a.line1}, ${a.postal_code} ${a.city}, ${a.country}`
      add('address', rng.pick(['home', 'shipping', 'billing']), text, text.toLowerCase(), null, JSON.stringify(a), true)
    }
    if (rng.chance(0.1)) {
      const handle = `${email.split('@')[0]}`
      add('social', null, handle, handle, rng.pick(D.SOCIAL_NETWORKS), null, false)
    }
  }

  private orders(customerId: string, loc: D.Locale, count: number, from: number, to: number, out: Lines) {
    const rng = this.rng
    const times: number[] = []
    for (let k = 0; k < count; k++) times.push(Math.floor(from + (to - from) * rng.next()))
    times.sort((a, b) => a - b)
    const ids: string[] = []
    let counted = 0
    let lastCountedAt: number | null = null
    const method = rng.weighted(D.PAYMENT_METHODS, D.PAYMENT_WEIGHTS)
    const factor = CURRENCY_FACTOR[loc.currency] ?? 1
    for (const t of times) {
      const id = this.ids.next()
      ids.push(id)
      const at = iso(t)
      const status = rng.weighted(D.ORDER_STATUSES, D.ORDER_STATUS_WEIGHTS)
      const items = 1 + Math.min(rng.geometric(1.2), 7)
      let subtotal = 0
      let discountTotal = 0
      for (let p = 0; p < items; p++) {
        const product = rng.pick(D.PRODUCTS)
        const qty = 1 + Math.min(rng.geometric(0.4), 9)
        const unit = loc.currency === 'JPY' ? Math.round((product.price * factor) / 100) * 100 : product.price * factor
        const discount = rng.chance(0.15) ? Math.floor((unit * qty) / 10) : 0
        subtotal += unit * qty
        discountTotal += discount
        out.order_items.push(row([this.ids.next(), id, p, product.sku, product.name, product.category, qty, money(unit), money(discount), money(unit * qty - discount), at, at]))
      }
      // tax_rate % of (subtotal - discount), rounded half up to the cent, as orders.service prices it.
      const tax = Math.floor(((subtotal - discountTotal) * loc.taxRate + 50) / 100)
      const shipping = rng.chance(0.6) ? 0 : 500 * factor
      const total = subtotal - discountTotal + tax + shipping
      const settled = status !== 'pending' && status !== 'cancelled'
      const refunded = status === 'refunded' ? total : status === 'partially_refunded' ? Math.max(1, Math.floor(total * 0.3)) : 0
      const orderMethod = status === 'pending' && rng.chance(0.3) ? 'credit' : method
      const paidAt = iso(t + 60_000)
      if (settled) out.order_payments.push(row([this.ids.next(), id, 'payment', money(total), orderMethod, paidAt, `PAY-${rng.u32().toString(36)}`, paidAt, paidAt]))
      if (refunded > 0) {
        const refundAt = iso(t + 5 * DAY)
        out.order_payments.push(row([this.ids.next(), id, 'refund', money(refunded), orderMethod, refundAt, null, refundAt, refundAt]))
      }
      const number = this.orderNumber++
      out.orders.push(row([
        id, rng.chance(0.3) ? `seed-o-${number}` : null, `ORD-${String(number).padStart(8, '0')}`, customerId, status,
        rng.weighted(D.ORDER_CHANNELS, D.ORDER_CHANNEL_WEIGHTS), orderMethod, loc.currency, loc.taxRate, money(subtotal), money(discountTotal),
        money(tax), money(shipping), money(total), money(settled ? total : 0), money(refunded),
        orderMethod === 'credit' ? date(t + 30 * DAY) : null, at, rng.chance(0.05) ? 'Gift wrap, please.\nLeave at the door.' : null, at, at,
      ]))
      if (COUNTED.has(status)) {
        counted++
        lastCountedAt = t
      }
    }
    return { ids, counted, lastCountedAt }
  }

  private interactions(customerId: string, count: number, from: number, orderIds: string[], out: Lines): string[] {
    const rng = this.rng
    const asOf = this.opts.asOfMs
    const ids: string[] = []
    for (let k = 0; k < count; k++) {
      const id = this.ids.next()
      ids.push(id)
      const t = Math.floor(from + (asOf - from) * rng.next())
      const at = iso(t)
      const channel = rng.weighted(D.INTERACTION_CHANNELS, D.INTERACTION_CHANNEL_WEIGHTS)
      const followUp = rng.chance(0.05) ? t + rng.int(1, 14) * DAY : null
      out.interactions.push(row([
        id, customerId, channel, rng.weighted(D.DIRECTIONS, [55, 40, 5]), rng.pick(D.SUBJECTS),
        rng.chance(0.3) ? 'Customer asked about delivery times.\tFollowed up by email.' : null, at,
        channel === 'phone' || channel === 'meeting' ? rng.int(30, 3600) : null, rng.pick(D.OUTCOMES), rng.pick(D.AGENTS),
        followUp === null ? null : date(followUp), followUp !== null && followUp < asOf && rng.chance(0.8),
        orderIds.length > 0 && rng.chance(0.2) ? rng.pick(orderIds) : null, at, at,
      ]))
    }
    return ids
  }

  private feedback(customerId: string, count: number, from: number, orderIds: string[], interactionIds: string[], out: Lines): void {
    const rng = this.rng
    const asOf = this.opts.asOfMs
    for (let k = 0; k < count; k++) {
      const t = Math.floor(from + (asOf - from) * rng.next())
      const at = iso(t)
      const kind = rng.weighted(D.FEEDBACK_KINDS, D.FEEDBACK_KIND_WEIGHTS)
      const surveyType = kind === 'survey' ? (rng.chance(0.6) ? 'csat' : 'nps') : null
      const score = surveyType === 'csat' ? rng.weighted([1, 2, 3, 4, 5], [5, 7, 15, 35, 38]) : surveyType === 'nps' ? rng.int(0, 10)
        : kind === 'review' && rng.chance(0.9) ? rng.int(1, 5) : null
      const complaint = kind === 'complaint'
      const status = complaint ? rng.weighted(D.COMPLAINT_STATUSES, D.COMPLAINT_STATUS_WEIGHTS) : null
      const resolved = status === 'resolved' || status === 'closed'
      out.feedback.push(row([
        this.ids.next(), customerId, kind, surveyType, score,
        complaint ? rng.pick(['Late delivery', 'Damaged item', 'Wrong size', '商品破损', 'Не тот цвет']) : rng.chance(0.5) ? 'Thanks!' : null,
        rng.chance(0.6) ? 'Ordered twice, great quality. 值得购买 — отлично!' : null, rng.pick(D.FEEDBACK_CHANNELS),
        orderIds.length > 0 && rng.chance(0.5) ? rng.pick(orderIds) : null,
        interactionIds.length > 0 && rng.chance(0.2) ? rng.pick(interactionIds) : null,
        status, complaint ? rng.pick(D.PRIORITIES) : null, complaint ? rng.pick(D.AGENTS) : null,
        complaint ? iso(t + 2 * DAY) : null, complaint && resolved ? 'Replacement sent.' : null, complaint && resolved ? iso(t + DAY) : null,
        at, at, at,
      ]))
    }
  }
}

/** The derived lifecycle stage as crm_lifecycle_stage() computes it (the SQL pass after the load has the last word). */
function stage(counted: number, last: number | null, asOf: number): string {
  if (counted === 0 || last === null) return 'lead'
  if (last < asOf - 180 * DAY) return 'churned'
  if (last < asOf - 90 * DAY) return 'at_risk'
  if (counted >= 5) return 'loyal'
  if (counted >= 2) return 'repeat'
  return 'first_purchase'
}
