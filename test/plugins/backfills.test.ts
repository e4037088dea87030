import t from 'tap'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import type { DbExecutor } from '../../src/db/database.js'
import { runBackfillBatch, type Backfill } from '../../src/plugins/backfills.js'
import { enqueueBackfill } from '../../src/plugins/backfills.repository.js'
import { inAuditedTransaction } from '../../src/plugins/audit.js'
import { buildTestApp, setup } from '../helpers/app.js'

/**
 * Data backfills: enqueued by name (as a migration does), run by the scheduler's backfills job in
 * batches of their own transactions, resumed from the last recorded key after a restart, audited
 * as system:backfills, finished once no row is left.
 */
const ctx = await setup()

/** A backfill as a domain would write one: keyset over customers by id, fills job_title where null. */
const titles: Backfill = {
  name: 'test_job_titles',
  async batch(trx: DbExecutor, after: string | null, limit: number) {
    const { rows } = await sql<{ id: string }>`
      with batch as (
        select id from customers where (${after}::uuid is null or id > ${after}::uuid) order by id limit ${limit}
      )
      update customers c set job_title = 'Backfilled' from batch where c.id = batch.id and c.job_title is null
      returning c.id`.execute(trx)
    const last = await sql<{ id: string | null }>`
      select max(id::text) as id from (select id from customers where (${after}::uuid is null or id > ${after}::uuid) order by id limit ${limit}) b`.execute(trx)
    return { last: last.rows[0]!.id, rows: rows.length }
  },
}

const state = async () => (await sql<{ position: string | null; rows_done: number; batches: number; finished: boolean }>`
  select position, rows_done::int, batches::int, finished_at is not null as finished from crm_backfills where name = ${titles.name}`.execute(ctx.ownerDb)).rows[0]

t.test('a backfill runs in batches, resumes after a restart from its last key, and finishes', async (t) => {
  await sql`insert into customers (name) select 'Backfill ' || g from generate_series(1, 23) g`.execute(ctx.ownerDb)
  await enqueueBackfill(ctx.db, titles.name)
  await enqueueBackfill(ctx.db, titles.name)
  t.match(await state(), { position: null, rows_done: 0, batches: 0, finished: false }, 'enqueued once')

  // Two batches by hand, as an instance would before it dies.
  const registry = new Map([[titles.name, titles]])
  const context = { actor: 'system:backfills', requestId: 'backfill-test', route: 'job backfills' }
  for (let i = 0; i < 2; i++) await inAuditedTransaction(ctx.db, context, (trx) => runBackfillBatch(trx, registry, 5))
  const midway = await state()
  t.match(midway, { rows_done: 10, batches: 2, finished: false })
  const firstTen = await sql<{ id: string }>`select id from customers order by id limit 10`.execute(ctx.ownerDb)
  t.equal(midway!.position, firstTen.rows.at(-1)!.id, 'the position is the last key done')

  // A new instance with the job on picks up after that key.
  const app = await buildTestApp(ctx.db, { app: { backfills: { intervalMs: 20, batchRows: 5 } }, plugins: [fp(async (a) => a.registerBackfill(titles))] })
  await app.ready()
  for (let i = 0; i < 200 && !(await state())!.finished; i++) await new Promise((r) => setTimeout(r, 25))
  await app.close()
  const done = await state()
  t.match(done, { finished: true, rows_done: 23 }, 'every row once: the restart did not start over')
  t.ok(done!.batches >= 2 + 3, `batches of 5 after the first two (${done!.batches} in all)`)
  const left = await sql<{ n: number }>`select count(*)::int as n from customers where job_title is null`.execute(ctx.ownerDb)
  t.equal(left.rows[0]!.n, 0, 'no row left')
  const audited = await sql<{ actor: string; n: number }>`
    select actor, count(*)::int as n from audit_events where entity = 'customers' and action = 'update' and after->>'job_title' = 'Backfilled' group by actor`.execute(ctx.ownerDb)
  t.same(audited.rows, [{ actor: 'system:backfills', n: 23 }], 'each row updated once, audited as the backfills job')
})

t.test('a backfill this code does not know waits; registering a name twice is refused', async (t) => {
  await enqueueBackfill(ctx.db, 'from_a_newer_version')
  const ran = await inAuditedTransaction(ctx.db, { actor: 'system:backfills', requestId: 'x', route: 'job backfills' }, (trx) => runBackfillBatch(trx, new Map([[titles.name, titles]]), 5))
  t.equal(ran, null, 'nothing to run: the known one is finished, the unknown one is not this code\'s')
  await t.rejects(buildTestApp(ctx.db, { plugins: [fp(async (a) => { a.registerBackfill(titles); a.registerBackfill(titles) })] }), /backfill test_job_titles is registered twice/)
})
