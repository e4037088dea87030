import t from 'tap'
import { sql, type Kysely } from 'kysely'
import { createTestDatabase } from '../helpers/db.js'

/**
 * The purchase history (migration purchase_history) is maintained by the metrics refresh at
 * commit. Whatever writes happen to orders — inserts in several currencies, status changes in and
 * out of the purchase statuses, refunds, re-dating, archiving, moving orders to another customer,
 * deletes — the maintained rows must equal a rebuild from scratch.
 */
const database = await createTestDatabase()
t.teardown(() => database.drop())
const { db, ownerDb } = database

async function snapshot(d: Kysely<any>) {
  const all = await sql<{ customer_id: string; ordered_at: string; gap_median_days: number | null; gap_mean_days: number | null }>`
    select customer_id, ordered_at::text, gap_median_days, gap_mean_days from customer_purchases order by customer_id`.execute(d)
  const byCurrency = await sql<{ customer_id: string; currency: string; ordered_at: string; cum_net: string }>`
    select customer_id, currency, ordered_at::text, cum_net::text from customer_currency_purchases order by customer_id, currency`.execute(d)
  return { all: all.rows, byCurrency: byCurrency.rows }
}

type Snapshot = Awaited<ReturnType<typeof snapshot>>
class Rollback extends Error {
  constructor(readonly snapshot: Snapshot) { super('rollback') }
}

/** The rows a rebuild from scratch gives, read inside a transaction that is then rolled back. */
async function rebuilt(): Promise<Snapshot> {
  try {
    await ownerDb.transaction().execute(async (trx) => {
      await sql`select crm_refresh_purchase_history(null)`.execute(trx)
      throw new Rollback(await snapshot(trx))
    })
  } catch (e) {
    if (e instanceof Rollback) return e.snapshot
    throw e
  }
  throw new Error('unreachable')
}

const customers = await db.insertInto('customers').values([{ name: 'A' }, { name: 'B' }, { name: 'C' }]).returning('id').execute()
const [a, b, c] = customers.map((r) => r.id) as [string, string, string]

const order = (customer_id: string, ordered_at: string, total: string, extra: Record<string, unknown> = {}) => ({
  customer_id, ordered_at, total, subtotal: total, amount_paid: total, currency: 'EUR', status: 'paid', channel: 'online', ...extra,
})

t.test('stays equal to a rebuild through every kind of order write', async (t) => {
  const ids = await db.insertInto('orders').values([
    order(a, '2026-01-01T10:00:00Z', '10.00'),
    order(a, '2026-01-01T10:00:00Z', '5.50'), // the same instant: a gap of 0
    order(a, '2026-02-15T08:30:00Z', '20.00', { currency: 'USD' }),
    order(a, '2026-03-01T00:00:00Z', '7.25', { status: 'pending', amount_paid: '0' }),
    order(b, '2025-12-24T18:00:00Z', '99.99'),
    order(b, '2026-06-30T23:59:59Z', '1.01', { status: 'fulfilled' }),
  ]).returning('id').execute()
  const [o1, o2, o3, o4, o5, o6] = ids.map((r) => r.id) as [string, string, string, string, string, string]
  t.same(await snapshot(db), await rebuilt(), 'after inserts')

  const a0 = (await snapshot(db)).byCurrency.find((r) => r.customer_id === a && r.currency === 'EUR')!
  // The two orders at the same instant may come in either order (their ids are UUID v7s of one
  // millisecond, random after it): the sums start at 0 and end at their total either way.
  t.ok(['{0,10.00,15.50}', '{0,5.50,15.50}'].includes(a0.cum_net), `running net sums start at 0 (${a0.cum_net})`)
  t.equal((await snapshot(db)).all.find((r) => r.customer_id === a)!.gap_median_days !== null, true)

  await db.updateTable('orders').set({ status: 'paid', amount_paid: '7.25' }).where('id', '=', o4).execute()
  t.same(await snapshot(db), await rebuilt(), 'a pending order becomes a purchase')

  await db.updateTable('orders').set({ status: 'partially_refunded', amount_refunded: '2.50' }).where('id', '=', o1).execute()
  await db.updateTable('orders').set({ status: 'refunded', amount_refunded: '99.99' }).where('id', '=', o5).execute()
  t.same(await snapshot(db), await rebuilt(), 'refunds: net amounts change, a refunded order leaves')

  await db.updateTable('orders').set({ ordered_at: '2025-01-01T00:00:00Z' }).where('id', '=', o3).execute()
  await db.updateTable('orders').set({ archived_at: new Date().toISOString() }).where('id', '=', o2).execute()
  t.same(await snapshot(db), await rebuilt(), 're-dated and archived')

  await db.updateTable('orders').set({ customer_id: c }).where('id', 'in', [o1, o6]).execute()
  t.same(await snapshot(db), await rebuilt(), 'orders moved to another customer (merge)')
  t.ok((await snapshot(db)).all.every((r) => r.customer_id !== b), 'a customer left with no purchase has no row')

  await db.transaction().execute(async (trx) => {
    await trx.insertInto('orders').values(Array.from({ length: 30 }, (_, i) => order(i % 2 ? a : c, `2026-04-${String(1 + (i % 28)).padStart(2, '0')}T12:00:00Z`, `${i + 1}.00`))).execute()
    await trx.deleteFrom('orders').where('id', '=', o4).execute()
  })
  t.same(await snapshot(db), await rebuilt(), 'a transaction of many writes, refreshed once at commit')
})

t.test('width_bucket counts the purchases at or before an instant, ties included', async (t) => {
  const r = await sql<{ before: number; at: number; after: number; none: number | null }>`
    select width_bucket('2026-01-01T09:59:59Z'::timestamptz, ordered_at) as before,
           width_bucket('2026-01-01T10:00:00Z'::timestamptz, ordered_at) as at,
           width_bucket('2100-01-01T00:00:00Z'::timestamptz, ordered_at) as after,
           width_bucket(now(), null::timestamptz[]) as none
    from (select array['2026-01-01T10:00:00Z', '2026-01-01T10:00:00Z', '2026-02-01T00:00:00Z']::timestamptz[] as ordered_at) x`.execute(db)
  t.same(r.rows[0], { before: 0, at: 2, after: 3, none: null })
})
