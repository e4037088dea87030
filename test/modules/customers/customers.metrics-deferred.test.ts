import t, { type Test } from 'tap'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../../../src/db/rows.js'
import { setup } from '../../helpers/app.js'

/**
 * Metrics are refreshed once per transaction, at commit (migrations/20261123T160000_metrics_deferred.ts).
 * After every transaction here, the stored metrics must equal a recomputation from the raw rows
 * done by the test's own query; a rolled-back transaction must leave them as they were.
 */
const ctx = await setup()
const writer = await ctx.auth('orders:write orders:read')

async function customer(name: string) {
  return (await ctx.db.insertInto('customers').values({ name } as never).returning('id').executeTakeFirstOrThrow()).id
}

async function insertOrder(db: Kysely<Database>, customerId: string, total: string, opts: { status?: string; currency?: string; daysAgo?: number } = {}) {
  const status = opts.status ?? 'paid'
  const paid = status === 'pending' ? '0' : total
  return (await db.insertInto('orders').values({
    customer_id: customerId, currency: opts.currency ?? 'EUR', subtotal: total, total, status, amount_paid: paid,
    ordered_at: new Date(Date.now() - (opts.daysAgo ?? 1) * 86_400_000).toISOString(),
  } as never).returning('id').executeTakeFirstOrThrow()).id as string
}

interface Snapshot {
  metrics: Record<string, unknown> | null
  spend: Array<Record<string, unknown>>
}

/** What the triggers stored (customer_metrics without refreshed_at, customer_spend). */
async function stored(db: Kysely<Database>, customerId: string): Promise<Snapshot> {
  const { rows } = await sql<Record<string, unknown>>`
    select order_count, first_order_at, last_order_at, interaction_count, last_interaction_at, open_complaints, latest_csat, latest_nps
    from customer_metrics where customer_id = ${customerId}`.execute(db)
  const spend = await sql<Record<string, unknown>>`
    select currency, order_count, total_spent::text from customer_spend where customer_id = ${customerId} order by currency`.execute(db)
  return { metrics: rows[0] ?? null, spend: spend.rows }
}

/** The same figures recomputed here from the raw order, interaction and feedback rows. */
async function recomputed(db: Kysely<Database>, customerId: string): Promise<Snapshot> {
  const { rows } = await sql<Record<string, unknown>>`
    with o as (select * from orders where customer_id = ${customerId} and archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')),
         i as (select * from interactions where customer_id = ${customerId} and archived_at is null),
         f as (select * from feedback where customer_id = ${customerId} and archived_at is null)
    select (select count(*)::int from o) as order_count, (select min(ordered_at) from o) as first_order_at, (select max(ordered_at) from o) as last_order_at,
           (select count(*)::int from i) as interaction_count, (select max(occurred_at) from i) as last_interaction_at,
           (select count(*)::int from f where kind = 'complaint' and status in ('open', 'in_progress')) as open_complaints,
           (select score from f where survey_type = 'csat' order by submitted_at desc, id desc limit 1) as latest_csat,
           (select score from f where survey_type = 'nps' order by submitted_at desc, id desc limit 1) as latest_nps`.execute(db)
  const spend = await sql<Record<string, unknown>>`
    select currency, count(*)::int as order_count, sum(total - amount_refunded)::text as total_spent
    from orders where customer_id = ${customerId} and archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')
    group by currency order by currency`.execute(db)
  return { metrics: rows[0]!, spend: spend.rows }
}

async function stage(db: Kysely<Database>, customerId: string) {
  return (await db.selectFrom('customers').select(['lifecycle_stage', 'version']).where('id', '=', customerId).executeTakeFirstOrThrow())
}

async function exact(t: Test, db: Kysely<Database>, customerId: string, label: string) {
  t.same(await stored(db, customerId), await recomputed(db, customerId), `${label}: stored metrics equal the recomputation`)
}

t.test('a transaction touching one customer many times ends with exact metrics, refreshed once at commit', async (t) => {
  const id = await customer('Many Writes')
  await insertOrder(ctx.db, id, '5.00')
  await exact(t, ctx.db, id, 'after an autocommitted insert')
  const before = await stored(ctx.db, id)
  const stageBefore = await stage(ctx.db, id)
  t.equal(stageBefore.lifecycle_stage, 'first_purchase')

  await ctx.db.transaction().execute(async (trx) => {
    const orders: string[] = []
    for (let i = 0; i < 12; i++) orders.push(await insertOrder(trx, id, `${10 + i}.50`, { status: i % 4 === 0 ? 'pending' : 'paid', currency: i % 3 === 0 ? 'USD' : 'EUR', daysAgo: 1 + i }))
    await trx.updateTable('orders').set({ status: 'paid', amount_paid: '10.50' } as never).where('id', '=', orders[0]!).execute()
    await trx.updateTable('orders').set({ status: 'partially_refunded', amount_refunded: '3.25' } as never).where('id', '=', orders[1]!).execute()
    await trx.updateTable('orders').set({ archived_at: new Date().toISOString() } as never).where('id', '=', orders[2]!).execute()
    for (let i = 0; i < 6; i++) {
      await trx.insertInto('interactions').values({ customer_id: id, channel: 'phone', occurred_at: new Date(Date.now() - i * 3_600_000).toISOString() } as never).execute()
    }
    await trx.insertInto('feedback').values({ customer_id: id, kind: 'complaint', status: 'open', subject: 'Late' } as never).execute()
    await trx.insertInto('feedback').values({ customer_id: id, kind: 'survey', survey_type: 'csat', score: 4 } as never).execute()
    await trx.insertInto('feedback').values({ customer_id: id, kind: 'survey', survey_type: 'nps', score: 9 } as never).execute()

    // Deferred: until commit, the transaction still sees the metrics from before it.
    t.same(await stored(trx, id), before, 'inside the transaction the metrics are not refreshed yet')
    t.same(await stage(trx, id), stageBefore, 'nor the derived stage (no customers update yet)')
    // A reader that needs them fresh inside the transaction flushes first.
    await sql`select crm_flush_customer_metrics()`.execute(trx)
    await exact(t, trx, id, 'after crm_flush_customer_metrics() inside the transaction')
    t.equal((await stage(trx, id)).lifecycle_stage, 'loyal')

    // Writes after the flush are recorded again and refreshed at commit.
    await trx.updateTable('feedback').set({ status: 'resolved', resolved_at: new Date().toISOString() } as never).where('customer_id', '=', id).where('kind', '=', 'complaint').execute()
    await insertOrder(trx, id, '99.99', { currency: 'GBP', daysAgo: 0 })
  })

  await exact(t, ctx.db, id, 'after commit')
  const after = await stored(ctx.db, id)
  t.match(after.metrics, { open_complaints: 0, latest_csat: 4, latest_nps: 9, interaction_count: 6 })
  t.equal(after.spend.length, 3, 'EUR, GBP and USD')
  const s = await stage(ctx.db, id)
  t.equal(s.lifecycle_stage, 'loyal')
  t.equal(s.version, stageBefore.version + 1, 'the stage changed once: one customers update for the whole transaction')
})

t.test('a rolled-back transaction leaves metrics and stage untouched', async (t) => {
  const id = await customer('Rolled Back')
  await insertOrder(ctx.db, id, '20.00')
  const before = await stored(ctx.db, id)
  const stageBefore = await stage(ctx.db, id)
  t.ok(before.metrics, 'has metrics before')

  await t.rejects(ctx.db.transaction().execute(async (trx) => {
    for (let i = 0; i < 5; i++) await insertOrder(trx, id, '1.00', { currency: 'JPY' })
    await trx.insertInto('interactions').values({ customer_id: id, channel: 'email' } as never).execute()
    // Even metrics already written inside the transaction roll back with it.
    await sql`select crm_flush_customer_metrics()`.execute(trx)
    t.equal((await stage(trx, id)).lifecycle_stage, 'loyal', 'refreshed inside')
    throw new Error('abandon')
  }), /abandon/)

  t.same(await stored(ctx.db, id), before, 'metrics as before')
  t.same(await stage(ctx.db, id), stageBefore, 'stage and version as before')
  await exact(t, ctx.db, id, 'after the rollback')
  // The next transaction on the pool starts with an empty pending set and still refreshes.
  await insertOrder(ctx.db, id, '2.00')
  await exact(t, ctx.db, id, 'next write after the rollback')
})

t.test('savepoints: writes rolled back to a savepoint are forgotten, the others still refreshed', async (t) => {
  const kept = await customer('Kept')
  const dropped = await customer('Dropped')
  await ctx.db.transaction().execute(async (trx) => {
    // The first write of the transaction (which queues the commit-time refresh) is rolled back.
    await sql`savepoint a`.execute(trx)
    await insertOrder(trx, dropped, '7.00')
    await sql`rollback to savepoint a`.execute(trx)
    await insertOrder(trx, kept, '8.00')
    await sql`savepoint b`.execute(trx)
    await insertOrder(trx, kept, '9.00')
    await insertOrder(trx, dropped, '10.00')
    await sql`rollback to savepoint b`.execute(trx)
  })
  await exact(t, ctx.db, kept, 'kept')
  t.match((await stored(ctx.db, kept)).metrics, { order_count: 1 })
  t.same(await stored(ctx.db, dropped), { metrics: null, spend: [] }, 'dropped: never refreshed, no orders')
  t.equal((await stage(ctx.db, kept)).lifecycle_stage, 'first_purchase')
})

t.test('SET CONSTRAINTS ALL IMMEDIATE refreshes after every statement', async (t) => {
  const id = await customer('Immediate')
  await ctx.db.transaction().execute(async (trx) => {
    await sql`set constraints all immediate`.execute(trx)
    for (let i = 0; i < 3; i++) {
      await insertOrder(trx, id, '4.00')
      await exact(t, trx, id, `statement ${i + 1}`)
    }
    t.equal((await stage(trx, id)).lifecycle_stage, 'repeat')
  })
  await exact(t, ctx.db, id, 'after commit')
})

t.test('switching to IMMEDIATE mid-transaction fires what is pending', async (t) => {
  const id = await customer('Switch')
  await ctx.db.transaction().execute(async (trx) => {
    await insertOrder(trx, id, '4.00')
    t.same(await stored(trx, id), { metrics: null, spend: [] }, 'deferred so far')
    await sql`set constraints metrics_insert immediate`.execute(trx)
    await exact(t, trx, id, 'after SET CONSTRAINTS')
  })
  await exact(t, ctx.db, id, 'after commit')
})

t.test('a refresh failing at commit rolls the whole transaction back', async (t) => {
  const id = await customer('Commit Fails')
  await sql.raw(`
    create function test_refuse_metrics() returns trigger language plpgsql as $$
    begin raise exception 'metrics refused for %', new.customer_id; end $$;
    create trigger test_refuse before insert or update on customer_metrics for each row
      when (new.customer_id = '${id}') execute function test_refuse_metrics();
  `).execute(ctx.ownerDb)
  t.teardown(() => sql.raw('drop trigger test_refuse on customer_metrics; drop function test_refuse_metrics()').execute(ctx.ownerDb))
  const orders = await ctx.count('orders')
  const audit = await ctx.count('audit_events')

  let insertedWithinTransaction = false
  await t.rejects(ctx.db.transaction().execute(async (trx) => {
    await insertOrder(trx, id, '3.00')
    insertedWithinTransaction = true
  }), /metrics refused/)
  t.ok(insertedWithinTransaction, 'the statement itself succeeded: the refresh ran at commit')
  t.equal(await ctx.count('orders'), orders, 'the order is rolled back')
  t.equal(await ctx.count('audit_events'), audit, 'and its audit rows')

  // Through the API: the batch fails at COMMIT, so the client gets an error, not a 201.
  const res = await ctx.app.inject({
    method: 'POST', url: '/v1/orders/batch', headers: writer,
    payload: { items: [{ customer_id: id, currency: 'EUR', status: 'paid', items: [{ product_name: 'Thing', quantity: 1, unit_price: '3.00' }] }] },
  })
  t.equal(res.statusCode, 500, res.body.slice(0, 300))
  t.equal(await ctx.count('orders'), orders, 'nothing of the batch was kept')
})

t.test('a 200-item order batch through the API: exact metrics, one stage change', async (t) => {
  const id = await customer('Batch Buyer')
  const version = (await stage(ctx.db, id)).version
  const items = Array.from({ length: 200 }, (_, i) => ({
    customer_id: id, currency: i % 2 ? 'EUR' : 'USD', status: i % 5 === 0 ? 'pending' : 'paid', ordered_at: new Date(Date.now() - (i + 1) * 60_000).toISOString(),
    items: [{ product_name: `P${i}`, quantity: 1 + (i % 3), unit_price: '12.34' }],
  }))
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/orders/batch', headers: writer, payload: { items } })
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  await exact(t, ctx.db, id, 'after the batch')
  t.match((await stored(ctx.db, id)).metrics, { order_count: 160 })
  const s = await stage(ctx.db, id)
  t.equal(s.lifecycle_stage, 'loyal')
  t.equal(s.version, version + 1, 'lead → loyal in one update, not lead → first_purchase → repeat → loyal')
  const updates = await ctx.db.selectFrom('audit_events').select('after').where('entity_id', '=', id).where('action', '=', 'update').execute()
  t.equal(updates.length, 1, 'one audited customers update')
})
