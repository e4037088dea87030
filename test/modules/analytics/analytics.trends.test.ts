import t from 'tap'
import { setup } from '../../helpers/app.js'
import { AS_OF, AS_OF_MS, DAY, centsToMoney, generate, monthOf, percentileCont, purchasesOf, roundRatio, type DataSet, type GenOrder } from './dataset.js'

/**
 * Lifecycle, acquisition sources, churn risk, cohort retention and satisfaction against an
 * independent recomputation in TypeScript of the documented rules, over a generated data set.
 */
const ctx = await setup()
const reader = await ctx.auth('analytics:read')
const data: DataSet = await generate(ctx.db, 7_331_001, 300)
const live = new Set(data.customers.filter((c) => !c.archived).map((c) => c.id))
const purchases = purchasesOf(data)

async function get(url: string) {
  const res = await ctx.app.inject({ method: 'GET', url, headers: reader })
  if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
  return res.json()
}

function byCustomer(orders: GenOrder[]): Map<string, GenOrder[]> {
  const out = new Map<string, GenOrder[]>()
  for (const o of orders) out.set(o.customer_id, [...(out.get(o.customer_id) ?? []), o])
  for (const list of out.values()) list.sort((a, b) => a.ordered_ms - b.ordered_ms)
  return out
}

function addMonths(month: string, n: number): string {
  const [y, m] = month.split('-').map(Number) as [number, number]
  const total = y * 12 + m - 1 + n
  return `${Math.floor(total / 12)}-${String((total % 12) + 1).padStart(2, '0')}`
}

t.test('lifecycle distribution as of as_of', async (t) => {
  const orders = byCustomer(purchases)
  const expected = new Map<string, { customers: number; manual: number }>()
  for (const c of data.customers) {
    if (c.archived || c.created_ms > AS_OF_MS) continue
    const list = orders.get(c.id) ?? []
    const last = list[list.length - 1]?.ordered_ms
    const stage = c.manual_stage ?? (list.length === 0 ? 'lead'
      : last! < AS_OF_MS - 180 * DAY ? 'churned'
        : last! < AS_OF_MS - 90 * DAY ? 'at_risk'
          : list.length >= 5 ? 'loyal' : list.length >= 2 ? 'repeat' : 'first_purchase')
    const e = expected.get(stage) ?? { customers: 0, manual: 0 }
    e.customers++
    if (c.manual_stage) e.manual++
    expected.set(stage, e)
  }
  const total = [...expected.values()].reduce((s, e) => s + e.customers, 0)
  const res = await get(`/v1/analytics/lifecycle?as_of=${AS_OF}`)
  t.equal(res.customers, total)
  t.same(res.stages.map((s: { stage: string }) => s.stage), ['lead', 'first_purchase', 'repeat', 'loyal', 'at_risk', 'churned'])
  for (const s of res.stages) {
    const e = expected.get(s.stage) ?? { customers: 0, manual: 0 }
    t.same(s, { stage: s.stage, customers: e.customers, manual: e.manual, share: roundRatio(BigInt(e.customers), BigInt(total), 4) }, s.stage)
  }
  t.ok(res.stages.find((s: { stage: string }) => s.stage === 'loyal').manual > 0, 'manual stages are in the data set')
  t.match(res.method, { as_of: AS_OF, window_start: null, currency: null })
})

t.test('acquisition sources: customers, purchasers, conversion and revenue', async (t) => {
  const windowDays = 300
  const ws = AS_OF_MS - windowDays * DAY
  const inWindow = purchases.filter((o) => o.ordered_ms > ws)
  const counts = new Map<string, number>()
  for (const o of inWindow) counts.set(o.currency, (counts.get(o.currency) ?? 0) + 1)
  const currency = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0]
  const orders = byCustomer(inWindow)
  const expected = new Map<string, { customers: number; purchasers: number; cents: number }>()
  for (const c of data.customers) {
    if (c.archived || c.created_ms > AS_OF_MS || c.created_ms <= ws) continue
    const source = c.source ?? 'unknown'
    const e = expected.get(source) ?? { customers: 0, purchasers: 0, cents: 0 }
    const list = orders.get(c.id) ?? []
    e.customers++
    if (list.length > 0) e.purchasers++
    e.cents += list.filter((o) => o.currency === currency).reduce((s, o) => s + o.total_cents - o.refunded_cents, 0)
    expected.set(source, e)
  }
  const res = await get(`/v1/analytics/acquisition-sources?as_of=${AS_OF}&window_days=${windowDays}`)
  t.equal(res.method.currency, currency)
  t.equal(res.sources.length, expected.size, 'one row per source present, unknown included')
  for (const s of res.sources) {
    const e = expected.get(s.source)!
    t.same(s, {
      source: s.source, customers: e.customers, purchasers: e.purchasers, conversion_rate: roundRatio(BigInt(e.purchasers), BigInt(e.customers), 4),
      revenue: centsToMoney(e.cents), revenue_per_customer: centsToMoney(roundRatio(BigInt(e.cents), BigInt(e.customers), 0)),
    }, s.source)
  }
  const n = res.sources.map((s: { customers: number }) => s.customers)
  t.ok(n.every((v: number, i: number) => i === 0 || n[i - 1] >= v), 'most customers first')
})

for (const [k, basis] of [[2, 'median'], [3, 'mean']] as const) {
  t.test(`churn risk: days since last purchase > ${k} × ${basis} interval`, async (t) => {
    const expected = new Map<string, { days: number; typical: number; n: number }>()
    for (const [id, list] of byCustomer(purchases)) {
      if (list.length < 2) continue
      const gaps = list.slice(1).map((o, i) => (o.ordered_ms - list[i]!.ordered_ms) / 1000 / 86400)
      const typical = basis === 'median' ? percentileCont([...gaps].sort((a, b) => a - b), 0.5) : gaps.reduce((s, g) => s + g, 0) / gaps.length
      const days = (AS_OF_MS - list[list.length - 1]!.ordered_ms) / 1000 / 86400
      if (typical > 0 && days > k * typical) expected.set(id, { days, typical, n: list.length })
    }
    t.ok(expected.size > 10, `enough customers at risk (${expected.size})`)
    const rows: Array<Record<string, number | string>> = []
    let url = `/v1/analytics/churn-risk?as_of=${AS_OF}&k=${k}&basis=${basis}&limit=25`
    for (;;) {
      const page = await get(url)
      rows.push(...page.data)
      if (!page.next_cursor) break
      url = `/v1/analytics/churn-risk?limit=25&cursor=${page.next_cursor}`
    }
    t.same(rows.map((r) => r.customer_id).sort(), [...expected.keys()].sort(), 'exactly the customers past k × their own rhythm')
    let off = 0
    for (const r of rows) {
      const e = expected.get(r.customer_id as string)
      if (!e) continue
      const ok = r.purchases === e.n && Math.abs((r.days_since_last_purchase as number) - e.days) <= 0.0051 &&
        Math.abs((r.typical_interval_days as number) - e.typical) <= 0.0051 && Math.abs((r.risk_ratio as number) - e.days / e.typical) <= 0.00006
      if (!ok && off++ < 3) t.fail(`customer ${r.customer_id as string}: ${JSON.stringify(r)} vs ${JSON.stringify(e)}`)
    }
    t.equal(off, 0, 'purchases, days since, typical interval and ratio match')
    const ratios = rows.map((r) => r.risk_ratio as number)
    t.ok(ratios.every((v, i) => i === 0 || ratios[i - 1]! >= v), 'ranked by risk ratio, highest first')
  })
}

t.test('cohort retention and repeat-purchase rate by first-purchase month', async (t) => {
  const from = '2025-08'
  const to = '2026-11'
  const cust = byCustomer(purchases)
  const cohorts = new Map<string, Array<{ months: Set<string>; n: number }>>()
  for (const list of cust.values()) {
    const cohort = monthOf(list[0]!.ordered_ms)
    cohorts.set(cohort, [...(cohorts.get(cohort) ?? []), { months: new Set(list.map((o) => monthOf(o.ordered_ms))), n: list.length }])
  }
  const res = await get(`/v1/analytics/retention/cohorts?as_of=${AS_OF}&from=${from}&to=${to}`)
  t.equal(res.cohorts.length, 16, 'every month of the range, empty ones included')
  let all = 0
  let repeat = 0
  for (const c of res.cohorts) {
    const members = cohorts.get(c.cohort) ?? []
    const rep = members.filter((m) => m.n >= 2).length
    all += members.length
    repeat += rep
    t.equal(c.customers, members.length, `${c.cohort} size`)
    t.equal(c.repeat_customers, rep, `${c.cohort} repeat customers`)
    t.equal(c.repeat_purchase_rate, members.length ? roundRatio(BigInt(rep), BigInt(members.length), 4) : null)
    const want = Array.from({ length: 12 }, (_, k) => {
      const month = addMonths(c.cohort, k)
      if (month > monthOf(AS_OF_MS)) return { offset: k, month, customers: null, rate: null }
      const n = members.filter((m) => m.months.has(month)).length
      return { offset: k, month, customers: n, rate: members.length ? roundRatio(BigInt(n), BigInt(members.length), 4) : null }
    })
    t.same(c.retention, want, `${c.cohort} retention by offset`)
  }
  t.ok(all > 50, `cohorts hold customers (${all})`)
  t.match(res, { customers: all, repeat_customers: repeat, repeat_purchase_rate: roundRatio(BigInt(repeat), BigInt(all), 4) })
  t.equal(res.cohorts[0].retention[0].rate ?? 1, 1, 'offset 0 is the whole cohort')
  t.match(res.method, { window_start: '2025-08-01T00:00:00.000Z', window_end: AS_OF, parameters: { from, to } })
})

t.test('satisfaction: CSAT, NPS and complaint rates by month', async (t) => {
  const res = await get(`/v1/analytics/satisfaction?as_of=${AS_OF}`)
  t.same(res.method.parameters, { from: '2025-12', to: '2026-11' }, 'defaults to the 12 months ending with as_of\'s')
  const months = Array.from({ length: 12 }, (_, i) => addMonths('2025-12', i))
  const fb = data.feedback.filter((f) => !f.archived && live.has(f.customer_id) && f.submitted_ms <= AS_OF_MS && months.includes(monthOf(f.submitted_ms)))
  const figures = (month: string | null) => {
    const inMonth = fb.filter((f) => month === null || monthOf(f.submitted_ms) === month)
    const csat = inMonth.filter((f) => f.survey_type === 'csat').map((f) => f.score!)
    const nps = inMonth.filter((f) => f.survey_type === 'nps').map((f) => f.score!)
    const promoters = nps.filter((s) => s >= 9).length
    const detractors = nps.filter((s) => s <= 6).length
    const complaints = inMonth.filter((f) => f.kind === 'complaint').length
    const orders = purchases.filter((o) => (month === null ? months.includes(monthOf(o.ordered_ms)) : monthOf(o.ordered_ms) === month)).length
    const big = BigInt
    return {
      month, csat_responses: csat.length,
      csat_average: csat.length ? roundRatio(big(csat.reduce((a, b) => a + b, 0)), big(csat.length), 2) : null,
      csat_satisfied_pct: csat.length ? roundRatio(big(100 * csat.filter((s) => s >= 4).length), big(csat.length), 1) : null,
      nps_responses: nps.length, promoters, passives: nps.length - promoters - detractors, detractors,
      nps: nps.length ? roundRatio(big(100 * (promoters - detractors)), big(nps.length), 1) : null,
      complaints, purchases: orders, complaints_per_100_orders: orders ? roundRatio(big(100 * complaints), big(orders), 2) : null,
    }
  }
  t.same(res.months.map((m: { month: string }) => m.month), months)
  for (const m of res.months) t.same(m, figures(m.month), m.month)
  t.same(res.totals, figures(null), 'totals of the range')
  t.ok(res.totals.nps_responses > 20 && res.totals.csat_responses > 20 && res.totals.complaints > 5, 'the data set has surveys and complaints')
  const open = data.feedback.filter((f) => f.kind === 'complaint' && !f.archived && live.has(f.customer_id) && f.submitted_ms <= AS_OF_MS && (f.status === 'open' || f.status === 'in_progress')).length
  t.equal(res.open_complaints, open, 'open complaints')
})
