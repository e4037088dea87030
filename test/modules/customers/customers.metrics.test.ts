import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const admin = await ctx.auth()
const PURCHASE = new Set(['paid', 'fulfilled', 'partially_refunded'])

async function customer(name: string) {
  return (await ctx.db.insertInto('customers').values({ name }).returning('id').executeTakeFirstOrThrow()).id
}

async function order(customerId: string, total: string, opts: { status?: string; currency?: string; daysAgo?: number; refunded?: string } = {}) {
  const status = opts.status ?? 'paid'
  const paid = status === 'pending' || status === 'cancelled' ? '0' : total
  return (await ctx.db.insertInto('orders').values({
    customer_id: customerId, currency: opts.currency ?? 'CNY', subtotal: total, total, status,
    amount_paid: paid, amount_refunded: opts.refunded ?? '0',
    ordered_at: new Date(Date.now() - (opts.daysAgo ?? 1) * 86_400_000).toISOString(),
  } as never).returning('id').executeTakeFirstOrThrow()).id as string
}

/** The metrics the API reports, recomputed independently from the raw order rows. */
async function expected(customerId: string) {
  const rows = await ctx.db.selectFrom('orders').select(['status', 'currency', 'total', 'amount_refunded', 'ordered_at', 'archived_at']).where('customer_id', '=', customerId).execute() as Array<{ status: string; currency: string; total: string; amount_refunded: string; ordered_at: string; archived_at: string | null }>
  const counted = rows.filter((r) => PURCHASE.has(r.status) && !r.archived_at)
  const cents = (s: string) => BigInt(s.replace('.', ''))
  const spend = new Map<string, { n: number; c: bigint }>()
  for (const r of counted) {
    const cur = spend.get(r.currency) ?? { n: 0, c: 0n }
    spend.set(r.currency, { n: cur.n + 1, c: cur.c + cents(r.total) - cents(r.amount_refunded) })
  }
  const fmt = (c: bigint) => `${c / 100n}.${String(c % 100n).padStart(2, '0')}`
  const times = counted.map((r) => r.ordered_at).sort()
  return {
    order_count: counted.length,
    first_order_at: times[0] ?? null,
    last_order_at: times[times.length - 1] ?? null,
    spend: [...spend.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([currency, v]) => ({
      currency, order_count: v.n, total_spent: fmt(v.c), average_order_value: fmt((v.c * 2n + BigInt(v.n)) / (2n * BigInt(v.n))),
    })),
  }
}

async function metrics(customerId: string) {
  const res = await ctx.app.inject({ url: `/v1/customers/${customerId}?include=metrics`, headers: admin })
  t.equal(res.statusCode, 200, res.body)
  return res.json() as { lifecycle_stage: string; lifecycle_stage_manual: boolean; metrics: Record<string, unknown> & { spend: unknown[] } }
}

async function check(t: { match: (a: unknown, b: unknown, m: string) => void; same: (a: unknown, b: unknown, m: string) => void; equal: (a: unknown, b: unknown, m: string) => void }, id: string, stage: string, label: string) {
  const got = await metrics(id)
  const want = await expected(id)
  t.match(got.metrics, { order_count: want.order_count, first_order_at: want.first_order_at, last_order_at: want.last_order_at }, `${label}: counts and dates`)
  t.same(got.metrics.spend, want.spend, `${label}: spend per currency to the cent`)
  t.equal(got.lifecycle_stage, stage, `${label}: stage`)
}

t.test('metrics stay exact through creates, updates, cancellations, refunds, archive and delete', async (t) => {
  const id = await customer('Metric Mei')
  const fresh = await metrics(id)
  t.match(fresh.metrics, { order_count: 0, spend: [], last_order_at: null, open_complaints: 0 })
  t.equal(fresh.lifecycle_stage, 'lead')

  const o1 = await order(id, '33.33')
  await check(t, id, 'first_purchase', 'one paid order')
  const o2 = await order(id, '0.01', { currency: 'USD' })
  const o3 = await order(id, '99999999.99')
  await check(t, id, 'repeat', 'three orders, two currencies')
  await order(id, '10.00', { status: 'pending' })
  await check(t, id, 'repeat', 'pending does not count')
  await ctx.db.updateTable('orders').set({ status: 'cancelled', amount_paid: '0' } as never).where('id', '=', o2).execute()
  await check(t, id, 'repeat', 'cancelled')
  await ctx.db.updateTable('orders').set({ status: 'partially_refunded', amount_refunded: '11.11' } as never).where('id', '=', o1).execute()
  await check(t, id, 'repeat', 'partial refund')
  await ctx.db.updateTable('orders').set({ status: 'refunded', amount_refunded: '99999999.99' } as never).where('id', '=', o3).execute()
  await check(t, id, 'first_purchase', 'full refund')
  for (let i = 0; i < 5; i++) await order(id, '19.99')
  await check(t, id, 'loyal', 'six purchases')
  await ctx.db.updateTable('orders').set({ archived_at: new Date().toISOString() } as never).where('id', '=', o1).execute()
  await check(t, id, 'loyal', 'archived order');
  await ctx.db.deleteFrom('orders').where('customer_id', '=', id).where('status', '=', 'paid').execute()
  await check(t, id, 'lead', 'deleted orders')
})

t.test('a bulk insert refreshes every customer it touched, in the same statement', async (t) => {
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => customer(`Bulk ${i}`)))
  await ctx.db.insertInto('orders').values(ids.flatMap((id, i) => Array.from({ length: (i % 4) + 1 }, () => ({
    customer_id: id, currency: 'EUR', subtotal: '12.34', total: '12.34', status: 'paid', amount_paid: '12.34',
  })) as never)).execute()
  for (const [i, id] of ids.entries()) {
    const got = await metrics(id)
    t.equal(got.metrics.order_count, (i % 4) + 1)
    t.same(got.metrics.spend, (await expected(id)).spend)
  }
})

t.test('recency moves stages with time; a stage set by hand is pinned until cleared', async (t) => {
  const id = await customer('Lapsing Li')
  await order(id, '50.00', { daysAgo: 100 })
  await order(id, '50.00', { daysAgo: 95 })
  t.equal((await metrics(id)).lifecycle_stage, 'at_risk', 'last purchase 95 days ago')
  await ctx.db.updateTable('orders').set({ ordered_at: new Date(Date.now() - 200 * 86_400_000).toISOString() } as never).where('customer_id', '=', id).execute()
  t.equal((await metrics(id)).lifecycle_stage, 'churned')

  const pin = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${id}`, headers: admin, payload: { lifecycle_stage: 'loyal' } })
  t.equal(pin.statusCode, 200)
  t.match(pin.json(), { lifecycle_stage: 'loyal', lifecycle_stage_manual: true })
  await order(id, '5.00')
  t.equal((await metrics(id)).lifecycle_stage, 'loyal', 'pinned stage survives new orders')
  const unpin = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${id}`, headers: admin, payload: { lifecycle_stage: null } })
  t.match(unpin.json(), { lifecycle_stage: 'repeat', lifecycle_stage_manual: false }, 'null hands the stage back to the rules')

  // Time passing with no write: the scheduled sweep applies the rules to everyone.
  const quiet = await customer('Quiet Qi')
  await order(quiet, '5.00', { daysAgo: 10 })
  await sql`update customer_metrics set last_order_at = now() - interval '120 days' where customer_id = ${quiet}`.execute(ctx.db)
  t.equal((await metrics(quiet)).lifecycle_stage, 'first_purchase', 'stale until the sweep')
  const swept = await sql<{ n: number }>`select crm_refresh_lifecycle() as n`.execute(ctx.db)
  t.ok(swept.rows[0]!.n >= 1)
  t.equal((await metrics(quiet)).lifecycle_stage, 'at_risk')
})

t.test('include=metrics works on lists too, one query for the page', async (t) => {
  const res = await ctx.app.inject({ url: '/v1/customers?include=metrics,contact_points&limit=5', headers: admin })
  t.equal(res.statusCode, 200)
  for (const c of res.json().data) {
    t.ok(c.metrics && Array.isArray(c.metrics.spend))
    t.ok(Array.isArray(c.contact_points))
  }
})
