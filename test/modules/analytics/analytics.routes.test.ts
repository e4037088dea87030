import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const reader = await ctx.auth('analytics:read')
const AS_OF = '2026-06-15T00:00:00.000Z'
const AS_OF_MS = Date.parse(AS_OF)
const DAY = 86_400_000

const ENDPOINTS = ['rfm', 'rfm/customers', 'value-tiers', 'value-tiers/customers', 'lifecycle', 'acquisition-sources', 'churn-risk', 'retention/cohorts', 'satisfaction']

const get = (url: string, headers: Record<string, string> = reader) => ctx.app.inject({ method: 'GET', url, headers })
const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer).sort()

t.test('an empty database answers every endpoint with zero figures, not an error', async (t) => {
  for (const e of ENDPOINTS) {
    const res = await get(`/v1/analytics/${e}?as_of=${AS_OF}`)
    t.equal(res.statusCode, 200, `${e}: ${res.body.slice(0, 200)}`)
    const body = res.json()
    t.equal(body.method.as_of, AS_OF, `${e} states its as_of`)
    t.equal(body.method.window_end, AS_OF)
    t.type(body.method.description, 'string')
    if ('data' in body) t.same([body.data, body.next_cursor], [[], null], `${e}: an empty page`)
  }
  const rfm = (await get(`/v1/analytics/rfm?as_of=${AS_OF}`)).json()
  t.match(rfm, { customers: 0, method: { currency: null } })
  t.ok(rfm.segments.every((s: { customers: number; share: number }) => s.customers === 0 && s.share === 0))
  const tiers = (await get(`/v1/analytics/value-tiers?as_of=${AS_OF}&currency=EUR`)).json()
  t.match(tiers, { customers: 0, total_clv: '0.00', method: { currency: 'EUR' } })
  const sat = (await get(`/v1/analytics/satisfaction?as_of=${AS_OF}`)).json()
  t.equal(sat.months.length, 12)
  t.match(sat.totals, { month: null, csat_responses: 0, csat_average: null, nps: null, complaints_per_100_orders: null })
})

t.test('the scope analytics:read is required', async (t) => {
  for (const e of ENDPOINTS) {
    t.equal((await get(`/v1/analytics/${e}`, {})).statusCode, 401, `${e} without a token`)
    const res = await get(`/v1/analytics/${e}`, await ctx.auth('customers:read orders:read feedback:read'))
    t.equal(res.statusCode, 403, `${e} without analytics:read`)
    t.match(res.json().detail, /analytics:read/)
  }
  t.equal((await get('/v1/analytics/lifecycle', await ctx.auth('analytics:*'))).statusCode, 200, 'analytics:* grants it')
  t.equal((await get('/v1/analytics/lifecycle', await ctx.auth())).statusCode, 200, 'admin grants it')
})

t.test('bad query parameters are 400s with a pointer to each', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['rfm?window_days=0', ['/window_days']],
    ['rfm?window_days=3651', ['/window_days']],
    ['rfm?window_days=1.5', ['/window_days']],
    ['rfm?window_days=ten', ['/window_days']],
    ['rfm?currency=usd', ['/currency']],
    ['rfm?currency=USDX', ['/currency']],
    ['rfm?as_of=yesterday', ['/as_of']],
    ['rfm?as_of=2026-02-30T00:00:00Z', ['/as_of']],
    ['rfm?as_of=1900-01-01T00:00:00Z', ['/as_of']],
    ['rfm?as_of=3000-01-01T00:00:00Z', ['/as_of']],
    ['rfm?colour=red', ['/colour']],
    ['rfm/customers?segment=vip', ['/segment']],
    ['rfm/customers?limit=0', ['/limit']],
    ['rfm/customers?limit=201', ['/limit']],
    ['rfm/customers?cursor=not-a-cursor', ['/cursor']],
    ['value-tiers?lifespan_years=0', ['/lifespan_years']],
    ['value-tiers/customers?tier=top_2', ['/tier']],
    ['lifecycle?window_days=30', ['/window_days']],
    ['churn-risk?k=0.5', ['/k']],
    ['churn-risk?k=abc', ['/k']],
    ['churn-risk?basis=p90', ['/basis']],
    ['retention/cohorts?from=2026-13', ['/from']],
    ['retention/cohorts?from=0000-01', ['/from']],
    ['retention/cohorts?from=2026-05&to=2026-01', ['/from']],
    ['retention/cohorts?from=2020-01&to=2026-01', ['/to']],
    ['satisfaction?to=2026-1', ['/to']],
    ['satisfaction?from=2026-07&as_of=2026-06-15T00:00:00Z', ['/from']],
    ['acquisition-sources?window_days=-5&currency=x', ['/currency', '/window_days']],
  ]
  for (const [url, want] of cases) {
    const res = await get(`/v1/analytics/${url}`)
    t.equal(res.statusCode, 400, `${url} → 400`)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.same(pointers(res), want, `${url} points at ${want.join(', ')}`)
  }
})

t.test('a cursor from one list is refused by another', async (t) => {
  const c = await ctx.db.insertInto('customers').values([{ name: 'A' }, { name: 'B' }]).returning('id').execute()
  const orders = c.flatMap(({ id }, i) => [10, 40, 70].map((d) => ({
    customer_id: id, status: 'paid', currency: 'CNY', subtotal: `${10 + i}.00`, total: `${10 + i}.00`, amount_paid: `${10 + i}.00`,
    ordered_at: new Date(AS_OF_MS - (d + i * 200) * DAY).toISOString(),
  })))
  await ctx.db.insertInto('orders').values(orders as never).execute()
  const page = (await get(`/v1/analytics/rfm/customers?as_of=${AS_OF}&limit=1`)).json()
  t.ok(page.next_cursor)
  const res = await get(`/v1/analytics/churn-risk?cursor=${page.next_cursor}`)
  t.equal(res.statusCode, 400)
  t.same(pointers(res), ['/cursor'])
  const other = await get(`/v1/analytics/rfm/customers?cursor=${page.next_cursor}&window_days=30`)
  t.equal(other.statusCode, 400, 'a cursor with other parameters than it was issued with')
  const decoded = JSON.parse(Buffer.from(page.next_cursor, 'base64url').toString())
  for (const x of [{ window_days: 1e12 }, { window_days: -1 }, { as_of: 'never' }, { as_of: 1 }, { currency: 7 }]) {
    const forged = Buffer.from(JSON.stringify({ ...decoded, x: { ...decoded.x, ...x } })).toString('base64url')
    const res = await get(`/v1/analytics/rfm/customers?cursor=${forged}`)
    t.equal(res.statusCode, 400, `a forged cursor context ${JSON.stringify(x)} is a 400`)
  }
  for (const [list, v] of [['rfm/customers', ['abc', decoded.v[1]]], ['rfm/customers', [515, 'not-a-uuid']], ['value-tiers/customers', ['1e9', decoded.v[1]]], ['churn-risk', [[1], decoded.v[1]]]] as const) {
    const s = list === 'rfm/customers' ? decoded.s : list === 'churn-risk' ? '-risk_ratio' : '-historical_clv'
    const forged = Buffer.from(JSON.stringify({ s, v })).toString('base64url')
    const res = await get(`/v1/analytics/${list}?cursor=${forged}`)
    t.equal(res.statusCode, 400, `${list}: forged cursor values ${JSON.stringify(v)}`)
    t.same(pointers(res), ['/cursor'])
  }
})

t.test('hand-checked figures on a small set', async (t) => {
  // Customer "steady" bought every 10 days and has been silent for 80: 8 intervals. "Recent" bought
  // every 10 days and last 10 days ago: not at risk. Pending, cancelled, refunded, archived and
  // later orders count for nothing.
  const [steady, recent] = await ctx.db.insertInto('customers').values([{ name: 'Steady' }, { name: 'Recent', acquisition_source: 'referral' }]).returning('id').execute()
  const order = (customer: string, daysAgo: number, extra: Record<string, unknown> = {}) => ({
    customer_id: customer, status: 'paid', currency: 'USD', subtotal: '100.00', total: '100.00', amount_paid: '100.00',
    ordered_at: new Date(AS_OF_MS - daysAgo * DAY).toISOString(), ...extra,
  })
  await ctx.db.insertInto('orders').values([
    order(steady!.id, 100), order(steady!.id, 90), order(steady!.id, 80, { status: 'partially_refunded', amount_refunded: '40.00' }),
    order(recent!.id, 30), order(recent!.id, 20), order(recent!.id, 10),
    order(steady!.id, 5, { status: 'pending', amount_paid: '0.00' }), order(steady!.id, 4, { status: 'cancelled', amount_paid: '0.00' }),
    order(steady!.id, 3, { status: 'refunded', amount_refunded: '100.00' }), order(steady!.id, 2, { archived_at: AS_OF }),
    order(steady!.id, -1),
  ] as never).execute()

  const churn = (await get(`/v1/analytics/churn-risk?as_of=${AS_OF}&window_days=120`)).json()
  t.same(churn.data, [{
    customer_id: steady!.id, purchases: 3, last_purchase_at: new Date(AS_OF_MS - 80 * DAY).toISOString(),
    days_since_last_purchase: 80, typical_interval_days: 10, risk_ratio: 8,
  }], 'only the silent customer, with ratio 80 / 10')
  t.match(churn.method, { window_start: new Date(AS_OF_MS - 120 * DAY).toISOString(), parameters: { k: 2, basis: 'median', window_days: 120 } })
  const lenient = (await get(`/v1/analytics/churn-risk?as_of=${AS_OF}&window_days=120&k=8`)).json()
  t.same(lenient.data, [], 'k = 8: 80 days is not more than 8 × 10')

  const values = (await get(`/v1/analytics/value-tiers/customers?as_of=${AS_OF}&currency=USD&window_days=365&lifespan_years=2`)).json()
  t.same(values.data.map((v: Record<string, unknown>) => [v.customer_id, v.historical_clv, v.avg_order_value, v.purchases_per_year, v.predicted_clv]), [
    [recent!.id, '300.00', '100.00', 3, '600.00'],
    [steady!.id, '260.00', '86.67', 3, '520.00'],
  ], 'net of refunds; predicted = 260 / 3 × 3 per year × 2 years')

  const rfm = (await get(`/v1/analytics/rfm/customers?as_of=${AS_OF}&currency=USD`)).json()
  t.same(rfm.data.map((r: Record<string, unknown>) => [r.customer_id, r.recency_days, r.frequency, r.monetary, r.rfm]), [
    [recent!.id, 10, 3, '300.00', '212'],
    [steady!.id, 80, 3, '260.00', '111'],
  ], 'two customers: ntile(5) over two rows gives scores 1 and 2; equal frequencies share the lowest')
})
