import t from 'tap'
import { setup } from '../../helpers/app.js'
import { AS_OF, AS_OF_MS, DAY, centsToMoney, generate, ntile, percentileCont, purchasesOf, roundRatio, type DataSet } from './dataset.js'

/**
 * RFM scores and value tiers against an independent recomputation in TypeScript of the
 * documented rules, over a generated data set.
 */
const ctx = await setup()
const reader = await ctx.auth('analytics:read')
const data: DataSet = await generate(ctx.db)

async function get(url: string) {
  const res = await ctx.app.inject({ method: 'GET', url, headers: reader })
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** Every page of a list; later pages send only the cursor (and the limit), so the cursor must carry as_of and currency. */
async function all(url: string): Promise<{ first: Record<string, unknown>; rows: Array<Record<string, unknown>>; pages: number }> {
  const first = await get(url)
  const rows = [...first.data]
  let cursor = first.next_cursor as string | null
  let pages = 1
  while (cursor) {
    const next = await get(`${url.split('?')[0]}?limit=${new URL(url, 'http://x').searchParams.get('limit') ?? 50}&cursor=${cursor}`)
    rows.push(...next.data)
    cursor = next.next_cursor
    pages++
  }
  return { first, rows, pages }
}

interface Agg { id: string; last: number; first: number; n: number; cents: number; windowN: number }

function aggregate(currency: string | null, windowStart: number | null): Map<string, Agg> {
  const out = new Map<string, Agg>()
  for (const o of purchasesOf(data)) {
    if (currency && o.currency !== currency) continue
    if (windowStart !== null && o.ordered_ms <= windowStart) continue
    const a = out.get(o.customer_id) ?? { id: o.customer_id, last: -Infinity, first: Infinity, n: 0, cents: 0, windowN: 0 }
    a.last = Math.max(a.last, o.ordered_ms)
    a.first = Math.min(a.first, o.ordered_ms)
    a.n++
    a.cents += o.total_cents - o.refunded_cents
    out.set(o.customer_id, a)
  }
  return out
}

/** Quintile scores: ntile(5) in the given order, then ties take the lowest score of their value. */
function quintiles<T extends { id: string }>(rows: T[], value: (r: T) => number, descending: boolean): Map<string, number> {
  const sorted = [...rows].sort((a, b) => (descending ? value(b) - value(a) : value(a) - value(b)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const nt = ntile(sorted.length, 5)
  const lowest = new Map<number, number>()
  sorted.forEach((r, i) => lowest.set(value(r), Math.min(lowest.get(value(r)) ?? 99, nt[i]!)))
  return new Map(sorted.map((r) => [r.id, lowest.get(value(r))!]))
}

function segmentOf(r: number, f: number): string {
  if (r === 5) return f === 1 ? 'new_customers' : f <= 3 ? 'potential_loyalists' : 'champions'
  if (r === 4) return f === 1 ? 'promising' : f <= 3 ? 'potential_loyalists' : 'loyal'
  if (r === 3) return f <= 2 ? 'about_to_sleep' : f === 3 ? 'need_attention' : 'loyal'
  return f <= 2 ? 'hibernating' : f <= 4 ? 'at_risk' : 'cant_lose'
}

function expectedRfm(currency: string, windowDays: number) {
  const aggs = [...aggregate(currency, AS_OF_MS - windowDays * DAY).values()].map((a) => ({ ...a, recency: Math.floor((AS_OF_MS - a.last) / DAY) }))
  const r = quintiles(aggs, (a) => a.recency, true)
  const f = quintiles(aggs, (a) => a.n, false)
  const m = quintiles(aggs, (a) => a.cents, false)
  return new Map(aggs.map((a) => [a.id, {
    customer_id: a.id, recency_days: a.recency, frequency: a.n, monetary: centsToMoney(a.cents), last_purchase_at: new Date(a.last).toISOString(),
    r_score: r.get(a.id)!, f_score: f.get(a.id)!, m_score: m.get(a.id)!, rfm: `${r.get(a.id)}${f.get(a.id)}${m.get(a.id)}`, segment: segmentOf(r.get(a.id)!, f.get(a.id)!),
  }]))
}

function mostCommonCurrency(windowStart: number | null): string {
  const counts = new Map<string, number>()
  for (const o of purchasesOf(data)) if (windowStart === null || o.ordered_ms > windowStart) counts.set(o.currency, (counts.get(o.currency) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0]
}

for (const [currency, windowDays, limit] of [[null, 365, 37], ['USD', 240, 9]] as const) {
  t.test(`RFM scores per customer and segment counts (${currency ?? 'default currency'}, ${windowDays} days)`, async (t) => {
    const cur = currency ?? mostCommonCurrency(AS_OF_MS - windowDays * DAY)
    const expected = expectedRfm(cur, windowDays)
    t.ok(expected.size > 20, `enough customers scored (${expected.size})`)
    const qs = `as_of=${AS_OF}&window_days=${windowDays}${currency ? `&currency=${currency}` : ''}`
    const { first, rows, pages } = await all(`/v1/analytics/rfm/customers?${qs}&limit=${limit}`)
    t.ok(pages > 1, 'the list spans several pages')
    t.equal((first.method as { currency: string }).currency, cur, 'the default currency is the one with the most purchases in the window')
    t.equal(rows.length, expected.size, 'every scored customer listed once')
    t.equal(new Set(rows.map((r) => r.customer_id)).size, rows.length, 'no duplicates across pages')
    let mismatches = 0
    for (const row of rows) {
      const want = expected.get(row.customer_id as string)
      if (!want || JSON.stringify(row) !== JSON.stringify(want)) {
        if (mismatches++ < 3) t.same(row, want, `customer ${row.customer_id as string}`)
      }
    }
    t.equal(mismatches, 0, 'recency, frequency, monetary, scores and segment match for every customer')
    const codes = rows.map((r) => Number(r.rfm))
    t.ok(codes.every((c, i) => i === 0 || codes[i - 1]! >= c), 'ranked by RFM code, highest first')

    // Equal values share one score in every dimension.
    for (const [dim, score] of [['recency_days', 'r_score'], ['frequency', 'f_score'], ['monetary', 'm_score']] as const) {
      const byValue = new Map<unknown, Set<unknown>>()
      for (const r of rows) byValue.set(r[dim], (byValue.get(r[dim]) ?? new Set()).add(r[score]))
      t.ok([...byValue.values()].every((s) => s.size === 1), `ties in ${dim} share one ${score}`)
    }

    const summary = await get(`/v1/analytics/rfm?${qs}`)
    t.equal(summary.customers, expected.size)
    t.equal(summary.segments.length, 10, 'every segment listed, zero counts included')
    for (const s of summary.segments) {
      const n = [...expected.values()].filter((e) => e.segment === s.segment).length
      t.equal(s.customers, n, `${s.segment} count`)
      t.equal(s.share, roundRatio(BigInt(n), BigInt(expected.size), 4), `${s.segment} share`)
    }
    const cents = (m: string) => Number(m.replace('.', ''))
    for (const [dim, field, score] of [['recency', 'recency_days', 'r_score'], ['frequency', 'frequency', 'f_score'], ['monetary', 'monetary', 'm_score']] as const) {
      const want = [1, 2, 3, 4, 5].flatMap((sc) => {
        const members = [...expected.values()].filter((e) => e[score] === sc)
        if (members.length === 0) return []
        const values = members.map((e) => (dim === 'monetary' ? cents(e.monetary) : (e[field] as number)))
        const fmt = (v: number) => (dim === 'monetary' ? centsToMoney(v) : String(v))
        return [{ score: sc, customers: members.length, share: roundRatio(BigInt(members.length), BigInt(expected.size), 4), min: fmt(Math.min(...values)), max: fmt(Math.max(...values)) }]
      })
      t.same(summary.scores[dim], want, `${dim} quintile bands`)
    }
    t.match(summary.method, { as_of: AS_OF, window_end: AS_OF, window_start: new Date(AS_OF_MS - windowDays * DAY).toISOString(), currency: cur, parameters: { window_days: windowDays } })
    t.match(summary.method.description, /ntile\(5\)/)
  })
}

t.test('a segment filter lists exactly that segment', async (t) => {
  const expected = [...expectedRfm(mostCommonCurrency(AS_OF_MS - 365 * DAY), 365).values()].filter((e) => e.segment === 'hibernating')
  const { rows } = await all(`/v1/analytics/rfm/customers?as_of=${AS_OF}&segment=hibernating&limit=200`)
  t.same(rows.map((r) => r.customer_id).sort(), expected.map((e) => e.customer_id).sort())
})

t.test('value tiers and lifetime value per customer', async (t) => {
  const windowDays = 200
  const lifespan = 4
  const cur = mostCommonCurrency(null)
  const allTime = aggregate(cur, null)
  const inWindow = aggregate(cur, AS_OF_MS - windowDays * DAY)
  const clvs = [...allTime.values()].map((a) => a.cents / 100).sort((a, b) => a - b)
  const p = { top_1: percentileCont(clvs, 0.99), top_5: percentileCont(clvs, 0.95), top_20: percentileCont(clvs, 0.8) }
  const tierOf = (cents: number) => (cents / 100 >= p.top_1 ? 'top_1' : cents / 100 >= p.top_5 ? 'top_5' : cents / 100 >= p.top_20 ? 'top_20' : 'rest')
  const expected = new Map([...allTime.values()].map((a) => {
    const wn = inWindow.get(a.id)?.n ?? 0
    return [a.id, {
      customer_id: a.id, purchases: a.n, historical_clv: centsToMoney(a.cents),
      avg_order_value: centsToMoney(roundRatio(BigInt(a.cents), BigInt(a.n), 0)),
      purchases_per_year: roundRatio(BigInt(wn * 365), BigInt(windowDays), 4),
      predicted_clv: centsToMoney(roundRatio(BigInt(a.cents) * BigInt(wn * 365 * lifespan), BigInt(a.n * windowDays), 0)),
      tier: tierOf(a.cents),
      first_purchase_at: new Date(a.first).toISOString(), last_purchase_at: new Date(a.last).toISOString(),
    }]
  }))

  const qs = `as_of=${AS_OF}&window_days=${windowDays}&lifespan_years=${lifespan}`
  const { first, rows } = await all(`/v1/analytics/value-tiers/customers?${qs}&limit=60`)
  t.equal((first.method as { currency: string }).currency, cur)
  t.equal(rows.length, expected.size)
  let mismatches = 0
  for (const row of rows) {
    const want = expected.get(row.customer_id as string)
    if (JSON.stringify(row) !== JSON.stringify(want) && mismatches++ < 3) t.same(row, want, `customer ${row.customer_id as string}`)
  }
  t.equal(mismatches, 0, 'CLV, predicted CLV and tier match for every customer')
  const values = rows.map((r) => Number(r.historical_clv))
  t.ok(values.every((v, i) => i === 0 || values[i - 1]! >= v), 'highest historical CLV first')

  const summary = await get(`/v1/analytics/value-tiers?${qs}`)
  const totalCents = [...allTime.values()].reduce((s, a) => s + a.cents, 0)
  t.equal(summary.customers, expected.size)
  t.equal(summary.total_clv, centsToMoney(totalCents))
  t.same(summary.tiers.map((x: { tier: string }) => x.tier), ['top_1', 'top_5', 'top_20', 'rest'])
  for (const tier of summary.tiers) {
    const members = [...allTime.values()].filter((a) => tierOf(a.cents) === tier.tier)
    const cents = members.reduce((s, a) => s + a.cents, 0)
    t.equal(tier.customers, members.length, `${tier.tier} size`)
    t.equal(tier.total_clv, centsToMoney(cents), `${tier.tier} total`)
    t.equal(tier.revenue_share, roundRatio(BigInt(cents), BigInt(totalCents), 4), `${tier.tier} revenue share`)
    t.equal(tier.min_clv, centsToMoney(Math.min(...members.map((m) => m.cents))))
    t.equal(tier.max_clv, centsToMoney(Math.max(...members.map((m) => m.cents))))
    if (tier.tier === 'rest') t.equal(tier.threshold, null)
    else t.ok(Math.abs(Number(tier.threshold) - p[tier.tier as keyof typeof p]) <= 0.0051, `${tier.tier} threshold ${tier.threshold} ≈ ${p[tier.tier as keyof typeof p]}`)
  }
  const top1 = summary.tiers[0].customers
  t.ok(top1 >= 1 && top1 <= Math.ceil(expected.size * 0.01) + 1, `top 1 % holds about 1 % of customers (${top1} of ${expected.size})`)

  const onlyTop = await all(`/v1/analytics/value-tiers/customers?${qs}&tier=top_5&limit=200`)
  t.same(onlyTop.rows.map((r) => r.customer_id).sort(), [...expected.values()].filter((e) => e.tier === 'top_5').map((e) => e.customer_id).sort(), 'tier filter')
})

t.test('a cursor keeps the as_of it was issued with; another as_of with it is a 400', async (t) => {
  const page = await get(`/v1/analytics/rfm/customers?limit=5`)
  t.ok(page.next_cursor)
  const next = await get(`/v1/analytics/rfm/customers?limit=5&cursor=${page.next_cursor}`)
  t.equal(next.method.as_of, page.method.as_of, 'the next page is computed at the first page\'s as_of')
  const res = await ctx.app.inject({ url: `/v1/analytics/rfm/customers?limit=5&as_of=${AS_OF}&cursor=${page.next_cursor}`, headers: reader })
  t.equal(res.statusCode, 400)
  t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), ['/cursor'])
})
