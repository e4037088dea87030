import t from 'tap'
import { sql } from 'kysely'
import { token } from '../../helpers/app.js'
import { createTestDatabase } from '../../helpers/db.js'
import { startServerProcess } from '../../helpers/server-process.js'
import { recoverImports } from '../../../src/modules/imports/imports.service.js'
import { inAuditedTransaction } from '../../../src/plugins/audit.js'

/**
 * Imports left by a process that died: a real server (src/server.ts) accepts an upload, its merge
 * is held by a lock the test takes, and the process is killed (SIGKILL) before the merge commits.
 * The import-recovery job (recoverImports) then merges the staged rows, audited as the upload's
 * request; a job cut off while receiving fails instead.
 */
const database = await createTestDatabase()
t.teardown(() => database.drop())

const jobOf = async (id: string) =>
  (await sql<{ status: string; failure: string | null; rows_created: number }>`select status, failure, rows_created from imports where id = ${id}`.execute(database.ownerDb)).rows[0]!

t.test('a merge whose process was killed is resumed from its staged rows, audited as the upload', async (t) => {
  const server = await startServerProcess(t, database.url)
  const authorization = `Bearer ${await token('imports:write imports:read customers:write customers:read', { sub: 'user:uploader' })}`
  const csv = 'name,external_ref,email\nAda Recovered,rec-1,ada.rec@example.com\nBob Recovered,rec-2,bob.rec@example.com\n'

  await database.ownerDb.connection().execute(async (blocker) => {
    // The merge's first write waits for this lock; the process dies while it waits.
    await sql`begin`.execute(blocker)
    await sql`lock table customers in exclusive mode`.execute(blocker)
    const res = await server.fetch('/v1/imports', { method: 'POST', headers: { authorization, 'content-type': 'text/csv' }, body: csv })
    t.equal(res.status, 202, 'the upload is accepted')
    const { id } = (await res.json()) as { id: string }
    for (let i = 0; i < 200 && (await jobOf(id)).status !== 'merging'; i++) await new Promise((r) => setTimeout(r, 25))
    t.equal((await jobOf(id)).status, 'merging', 'the merge has started')
    server.kill('SIGKILL')
    await server.exited
    await sql`rollback`.execute(blocker)
    t.equal((await jobOf(id)).status, 'merging', 'the killed merge left its job merging')

    const outcome = await inAuditedTransaction(database.db, { actor: 'system:import-recovery', requestId: 'recovery-1', route: 'job import-recovery' },
      (trx) => recoverImports(trx, { mergingStaleMs: 0 }))
    t.same(outcome, { resumed: [id], failed: [] })
    t.match(await jobOf(id), { status: 'succeeded', rows_created: 2, failure: null })
    const customers = await sql<{ name: string }>`select name from customers where external_ref in ('rec-1', 'rec-2') order by name`.execute(database.ownerDb)
    t.same(customers.rows.map((r) => r.name), ['Ada Recovered', 'Bob Recovered'])
    const audited = await sql<{ actor: string; route: string }>`
      select distinct actor, route from audit_events where entity = 'customers' and after->>'external_ref' in ('rec-1', 'rec-2')`.execute(database.ownerDb)
    t.same(audited.rows, [{ actor: 'user:uploader', route: 'job import-recovery' }], "the resumed merge is audited as the uploader's")
    t.equal(Number((await sql<{ n: string }>`select count(*) as n from import_customer_rows where import_id = ${id}`.execute(database.ownerDb)).rows[0]!.n), 0, 'its staged rows are gone')
    t.same(await inAuditedTransaction(database.db, { actor: 'system:import-recovery', requestId: 'recovery-2', route: 'job import-recovery' },
      (trx) => recoverImports(trx, { mergingStaleMs: 0 })), { resumed: [], failed: [] }, 'nothing is left to recover')
  })
})

t.test('a merge in progress is left alone; an upload cut off while receiving fails', async (t) => {
  const job = await sql<{ id: string }>`insert into imports (kind, format, actor, request_id, status, rows_received) values ('customers', 'csv', 'user:x', 'req-x', 'merging', 3) returning id`.execute(database.ownerDb)
  const receiving = await sql<{ id: string }>`insert into imports (kind, format, actor, request_id) values ('customers', 'csv', 'user:y', 'req-y') returning id`.execute(database.ownerDb)
  const [merging, cut] = [job.rows[0]!.id, receiving.rows[0]!.id]
  await database.ownerDb.connection().execute(async (merge) => {
    await sql`begin`.execute(merge)
    await sql`select 1 from imports where id = ${merging} for update`.execute(merge)
    const outcome = await inAuditedTransaction(database.db, { actor: 'system:import-recovery', requestId: 'recovery-3', route: 'job import-recovery' },
      (trx) => recoverImports(trx, { mergingStaleMs: 0, receivingStaleMs: 0 }))
    t.same(outcome, { resumed: [], failed: [cut] }, 'the locked (running) merge is skipped')
    await sql`rollback`.execute(merge)
  })
  t.match(await jobOf(cut), { status: 'failed', failure: /stopped while the upload was being received/ })
  t.match(await jobOf(merging), { status: 'merging' })
  const outcome = await inAuditedTransaction(database.db, { actor: 'system:import-recovery', requestId: 'recovery-4', route: 'job import-recovery' },
    (trx) => recoverImports(trx, { mergingStaleMs: 60_000 }))
  t.same(outcome, { resumed: [], failed: [] }, 'a merge that started less than a minute ago is not yet presumed dead')
  const lost = await inAuditedTransaction(database.db, { actor: 'system:import-recovery', requestId: 'recovery-5', route: 'job import-recovery' },
    (trx) => recoverImports(trx, { mergingStaleMs: 0 }))
  t.same(lost, { resumed: [], failed: [merging] })
  t.match(await jobOf(merging), { status: 'failed', failure: /staged rows were lost/ }, 'unlocked, with 3 rows received and none staged (a database crash empties the unlogged staging table): it fails')
})
