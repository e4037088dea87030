/**
 * The reference model for the filter property tests: a generated data set inserted straight into
 * the tables, read back as plain objects, and a brute-force evaluator of a parsed filter over it
 * written without SQL, so the compiler is checked against an independent reading of the rules.
 */
import { sql } from 'kysely'
import type { Db } from '../../../src/db/database.js'
import { type FieldAst, type FilterAst, type RelatedAst, type Scalar, type TimeBound } from '../../../src/modules/filters/filter.parse.js'
import { PURCHASE_STATUSES } from '../../../src/lib/purchase-statuses.js'
import { prng } from '../../helpers/seed.js'

const DAY = 86_400_000


export const POOLS = {
  names: ['Alice Zhang', 'Bob Li', 'Carol Wang', 'li na', 'Zhang Wei', 'Dana Smith', 'Eve 100%_off', 'Frank Zhang Li'],
  companies: ['Acme', 'Globex Trading', 'acme labs', 'Initech'],
  jobs: ['Engineer', 'Buyer', 'Head of purchasing'],
  tags: ['vip', 'new', 'wholesale', 'b2b', 'blocked'],
  interests: ['tea', 'running', 'books', 'Chess'],
  genders: ['female', 'male', 'non_binary', 'other', 'unknown'],
  sources: ['organic', 'referral', 'store', 'email'],
  stages: ['lead', 'first_purchase', 'repeat', 'loyal', 'at_risk', 'churned'],
  tiers: ['gold', 'silver', 'Gold'],
  categories: ['tea', 'cups', 'books'],
  skus: ['TEA-1', 'TEA-2', 'CUP-1', 'BK-1'],
  currencies: ['CNY', 'USD'],
  orderStatuses: ['pending', 'paid', 'fulfilled', 'cancelled', 'refunded', 'partially_refunded'],
  channels: ['phone', 'email', 'chat', 'visit'],
  directions: ['inbound', 'outbound', 'internal'],
  feedbackKinds: ['survey', 'complaint', 'suggestion', 'review', 'praise'],
  complaintStatuses: ['open', 'in_progress', 'resolved', 'closed'],
} as const

export interface Model {
  customers: Array<Record<string, unknown> & { id: string }>
  orders: Array<{ id: string; customer_id: string; status: string; currency: string; total: string; amount_refunded: string; ordered_at: string; archived_at: string | null }>
  items: Array<{ order_id: string; category: string | null; sku: string | null }>
  interactions: Array<{ customer_id: string; channel: string; direction: string; occurred_at: string; archived_at: string | null }>
  feedback: Array<{ id: string; customer_id: string; kind: string; survey_type: string | null; score: number | null; status: string | null; submitted_at: string; archived_at: string | null }>
}

/** Times sit half a day off whole-day offsets from `base`, so "now minus N days" never ties with them. */
const ago = (base: number, days: number) => new Date(base - (days + 0.5) * DAY).toISOString()

export async function seed(db: Db, seedValue: number, count: number): Promise<void> {
  const r = prng(seedValue)
  const base = Date.now()
  const customers = Array.from({ length: count }, () => {
    const attributes: Record<string, unknown> = {}
    if (r.next() < 0.6) attributes.shoe_size = r.int(35, 45)
    if (r.next() < 0.5) attributes.tier = r.pick(POOLS.tiers)
    if (r.next() < 0.4) attributes.vip = r.next() < 0.5
    if (r.next() < 0.4) attributes.score = r.next() < 0.5 ? r.int(1, 10) : String(r.int(1, 10))
    return {
      name: r.pick(POOLS.names),
      company: r.maybe(0.6, () => r.pick(POOLS.companies)),
      job_title: r.maybe(0.5, () => r.pick(POOLS.jobs)),
      external_ref: r.maybe(0.3, () => `ext-${r.int(1, 1e9)}`),
      gender: r.maybe(0.8, () => r.pick(POOLS.genders)),
      acquisition_source: r.maybe(0.7, () => r.pick(POOLS.sources)),
      tags: r.subset(POOLS.tags),
      interests: r.subset(POOLS.interests),
      attributes: JSON.stringify(attributes),
      loyalty_points: r.int(0, 5) * 100,
      payment_terms_days: r.maybe(0.5, () => r.pick([0, 30, 60])),
      credit_limit: r.maybe(0.5, () => r.pick(['0.00', '500.00', '1000.50'])),
      credit_currency: null as string | null,
      lifecycle_stage: r.pick(POOLS.stages),
      lifecycle_stage_manual: r.next() < 0.3,
      created_at: ago(base, r.int(0, 400)),
      archived_at: r.next() < 0.05 ? ago(base, 1) : null,
    }
  }).map((c) => ({ ...c, credit_currency: c.credit_limit ? 'CNY' : null }))
  const ids = (await db.insertInto('customers').values(customers as never).returning('id').execute()).map((x) => x.id)

  const orders = [] as Record<string, unknown>[]
  for (const customer_id of ids) {
    for (let i = r.int(0, 5); i > 0; i--) {
      const status = r.pick(POOLS.orderStatuses)
      const total = r.int(1, 500) * 10 + r.pick([0, 50])
      const paid = status === 'pending' || status === 'cancelled' ? 0 : total
      const refunded = status === 'partially_refunded' ? 500 : status === 'refunded' ? paid : 0
      const cents = (n: number) => (n / 100).toFixed(2)
      orders.push({
        customer_id, status, currency: r.pick(POOLS.currencies), subtotal: cents(total), total: cents(total),
        amount_paid: cents(paid), amount_refunded: cents(Math.min(refunded, paid)), ordered_at: ago(base, r.int(0, 300)),
        archived_at: r.next() < 0.07 ? ago(base, 0) : null,
      })
    }
  }
  const orderIds = orders.length ? (await db.insertInto('orders').values(orders as never).returning('id').execute()).map((x) => x.id) : []
  const items = orderIds.flatMap((order_id) =>
    Array.from({ length: r.int(1, 3) }, (_, position) => ({
      order_id, position, product_name: 'Thing', category: r.maybe(0.85, () => r.pick(POOLS.categories)), sku: r.maybe(0.85, () => r.pick(POOLS.skus)),
      quantity: 1, unit_price: '1.00', line_total: '1.00',
    })),
  )
  if (items.length) await db.insertInto('order_items').values(items as never).execute()

  const interactions = ids.flatMap((customer_id) =>
    Array.from({ length: r.int(0, 4) }, () => ({
      customer_id, channel: r.pick(POOLS.channels), direction: r.pick(POOLS.directions), occurred_at: ago(base, r.int(0, 300)),
      archived_at: r.next() < 0.07 ? ago(base, 0) : null,
    })),
  )
  if (interactions.length) await db.insertInto('interactions').values(interactions as never).execute()

  const feedback = ids.flatMap((customer_id) =>
    Array.from({ length: r.int(0, 3) }, () => {
      const kind = r.pick(POOLS.feedbackKinds)
      const survey_type = kind === 'survey' ? r.pick(['csat', 'nps']) : null
      return {
        customer_id, kind, survey_type,
        score: survey_type === 'csat' ? r.int(1, 5) : survey_type === 'nps' ? r.int(0, 10) : kind === 'review' ? r.int(1, 5) : null,
        status: kind === 'complaint' ? r.pick(POOLS.complaintStatuses) : null,
        submitted_at: ago(base, r.int(0, 300)),
        archived_at: r.next() < 0.07 ? ago(base, 0) : null,
      }
    }),
  )
  if (feedback.length) await db.insertInto('feedback').values(feedback as never).execute()
}

export async function load(db: Db): Promise<Model> {
  return {
    customers: (await db.selectFrom('customers').selectAll().execute()) as unknown as Model['customers'],
    orders: await db.selectFrom('orders').select(['id', 'customer_id', 'status', 'currency', 'total', 'amount_refunded', 'ordered_at', 'archived_at']).execute(),
    items: await db.selectFrom('order_items').select(['order_id', 'category', 'sku']).execute(),
    interactions: await db.selectFrom('interactions').select(['customer_id', 'channel', 'direction', 'occurred_at', 'archived_at']).execute(),
    feedback: await db.selectFrom('feedback').select(['id', 'customer_id', 'kind', 'survey_type', 'score', 'status', 'submitted_at', 'archived_at']).execute(),
  }
}

/** The database clock, which relative dates are measured from. */
export async function dbNow(db: Db): Promise<number> {
  const r = await sql<{ now: string }>`select now()::text as now`.execute(db)
  return Date.parse(r.rows[0]!.now.replace(' ', 'T').replace(/\+00$/, 'Z'))
}

const cents = (s: string | number) => {
  const [i, f = ''] = String(s).split('.')
  const neg = i!.startsWith('-')
  const v = Math.abs(Number(i)) * 100 + Number((f + '00').slice(0, 2))
  return neg ? -v : v
}

/** Brute-force evaluation of a parsed filter: which non-archived customers match. */
export function evaluate(model: Model, ast: FilterAst, now: number): Set<string> {
  const ctx = new Ctx(model, now)
  return new Set(model.customers.filter((c) => c.archived_at === null && ctx.test(ast, c)).map((c) => c.id))
}

class Ctx {
  constructor(private m: Model, private now: number) {}

  time(t: TimeBound) {
    return 'days' in t ? this.now - t.days * DAY : Date.parse(t.at)
  }

  test(ast: FilterAst, c: Model['customers'][number]): boolean {
    switch (ast.kind) {
      case 'and':
        return ast.children.every((x) => this.test(x, c))
      case 'or':
        return ast.children.some((x) => this.test(x, c))
      case 'not':
        return !this.test(ast.child, c)
      case 'field':
        return this.field(ast, c)
      default:
        return this.related(ast, c.id)
    }
  }

  purchases(id: string) {
    return this.m.orders.filter((o) => o.customer_id === id && o.archived_at === null && (PURCHASE_STATUSES as readonly string[]).includes(o.status))
  }

  value(f: FieldAst, c: Model['customers'][number]): unknown {
    if (f.spec.source === 'column') return c[f.field] ?? null
    const id = c.id
    const buys = this.purchases(id)
    const times = buys.map((o) => Date.parse(o.ordered_at))
    const inter = this.m.interactions.filter((i) => i.customer_id === id && i.archived_at === null)
    const fb = this.m.feedback.filter((x) => x.customer_id === id && x.archived_at === null)
    const latest = (type: string) => {
      const s = fb.filter((x) => x.survey_type === type).sort((a, b) => b.submitted_at.localeCompare(a.submitted_at) || b.id.localeCompare(a.id))
      return s[0]?.score ?? null
    }
    const spend = (currency?: string, days?: number) =>
      buys
        .filter((o) => (!currency || o.currency === currency) && (days === undefined || Date.parse(o.ordered_at) >= this.now - days * DAY))
        .reduce((sum, o) => sum + cents(o.total) - cents(o.amount_refunded), 0)
    switch (f.field) {
      case 'order_count': return buys.length
      case 'first_order_at': return times.length ? Math.min(...times) : null
      case 'last_order_at': return times.length ? Math.max(...times) : null
      case 'recency_days': return times.length ? Math.floor((this.now - Math.max(...times)) / DAY) : null
      case 'interaction_count': return inter.length
      case 'last_interaction_at': return inter.length ? Math.max(...inter.map((i) => Date.parse(i.occurred_at))) : null
      case 'open_complaints': return fb.filter((x) => x.kind === 'complaint' && (x.status === 'open' || x.status === 'in_progress')).length
      case 'latest_csat': return latest('csat')
      case 'latest_nps': return latest('nps')
      case 'lifetime_value': return spend(f.currency)
      case 'monetary': return spend(f.currency, f.days)
    }
    throw new Error(`no model for ${f.field}`)
  }

  field(f: FieldAst, c: Model['customers'][number]): boolean {
    if (f.attribute !== undefined) return this.attribute(f, (c.attributes as Record<string, unknown>))
    const v = this.value(f, c)
    if (f.op === 'exists') {
      const present = f.spec.type === 'list' ? (v as unknown[]).length > 0 : v !== null
      return present === f.value
    }
    switch (f.spec.type) {
      case 'list': {
        const have = v as string[]
        const want = f.value as string[]
        return f.op === 'has_any' ? want.some((x) => have.includes(x)) : want.every((x) => have.includes(x))
      }
      case 'timestamp': {
        if (v === null) return false
        const t = typeof v === 'number' ? v : Date.parse(v as string)
        return compare(f.op, t, this.time(f.value as TimeBound))
      }
      case 'money': {
        // Metrics are computed in cents already; columns arrive as decimal strings.
        const norm = v === null ? null : typeof v === 'number' ? v : cents(v as string)
        return scalar(f, norm, (x) => cents(x as string))
      }
      default:
        return scalar(f, v as Scalar | null, (x) => x)
    }
  }

  attribute(f: FieldAst, attrs: Record<string, unknown>): boolean {
    const key = f.attribute!
    if (f.op === 'exists') return (key in attrs) === f.value
    const v = key in attrs ? (attrs[key] as Scalar) : null
    if (f.op === 'gt' || f.op === 'gte' || f.op === 'lt' || f.op === 'lte') return typeof v === 'number' && compare(f.op, v, f.value as number)
    if (f.op === 'contains') return typeof v === 'string' && v.toLowerCase().includes((f.value as string).toLowerCase())
    return scalar(f, v, (x) => x)
  }

  related(r: RelatedAst, id: string): boolean {
    const since = r.since ? this.time(r.since) : -Infinity
    const before = r.before ? this.time(r.before) : Infinity
    const within = (t: string) => Date.parse(t) >= since && Date.parse(t) < before
    let n: number
    if (r.kind === 'orders') {
      const statuses = r.values ?? [...PURCHASE_STATUSES]
      n = this.m.orders.filter((o) =>
        o.customer_id === id && o.archived_at === null && statuses.includes(o.status) && within(o.ordered_at) &&
        (!r.currency || o.currency === r.currency) &&
        (r.category === undefined || this.m.items.some((i) => i.order_id === o.id && i.category === r.category)) &&
        (r.sku === undefined || this.m.items.some((i) => i.order_id === o.id && i.sku === r.sku)),
      ).length
    } else if (r.kind === 'interactions') {
      n = this.m.interactions.filter((i) =>
        i.customer_id === id && i.archived_at === null && within(i.occurred_at) &&
        (!r.values || r.values.includes(i.channel)) && (!r.directions || r.directions.includes(i.direction)),
      ).length
    } else {
      n = this.m.feedback.filter((x) =>
        x.customer_id === id && x.archived_at === null && within(x.submitted_at) && (!r.values || r.values.includes(x.kind)) &&
        (r.open === undefined || (r.open ? ['open', 'in_progress'] : ['resolved', 'closed']).includes(x.status ?? '')),
      ).length
    }
    return n >= r.min && (r.max === undefined || n <= r.max)
  }
}

function compare(op: string, a: number | string, b: number | string): boolean {
  switch (op) {
    case 'gt': return a > b
    case 'gte': return a >= b
    case 'lt': return a < b
    case 'lte': return a <= b
  }
  throw new Error(op)
}

/** eq/ne/in/not_in/ranges/contains/match on a possibly missing scalar; ne and not_in hold for a missing one. */
function scalar(f: FieldAst, v: Scalar | null, norm: (x: Scalar) => Scalar): boolean {
  const same = (x: Scalar) => v !== null && v === norm(x)
  switch (f.op) {
    case 'eq': return same(f.value as Scalar)
    case 'ne': return !same(f.value as Scalar)
    case 'in': return (f.value as Scalar[]).some(same)
    case 'not_in': return !(f.value as Scalar[]).some(same)
    case 'contains': return typeof v === 'string' && v.toLowerCase().includes((f.value as string).toLowerCase())
    case 'match': return typeof v === 'string' && (f.value as string).split(/\s+/).filter(Boolean).every((t) => (v).toLowerCase().includes(t.toLowerCase()))
    default: return v !== null && compare(f.op, v as number, norm(f.value as Scalar) as number)
  }
}
