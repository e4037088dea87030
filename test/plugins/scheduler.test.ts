import t from 'tap'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import type { Job } from '../../src/plugins/scheduler.js'
import { setup, buildTestApp } from '../helpers/app.js'

/**
 * The scheduler runs each job on its interval once the app is ready (at once with atStart), once
 * across instances (a lease per job in crm_job_leases), never two runs at a time, retries after a
 * failure, audits a job's writes as `system:<job>`, and waits for a running job on close.
 */
const ctx = await setup()

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** An app (not ready yet) with these jobs scheduled. */
const appWith = (jobs: Job[]) => buildTestApp(ctx.db, { plugins: [fp(async (app) => jobs.forEach((job) => app.scheduleJob(job)))] })

t.test('a job runs on its interval, at start when asked, one run at a time; close waits for a run', async (t) => {
  const runs: Record<string, number> = { slow: 0, flaky: 0, off: 0 }
  let inFlight = 0
  let overlapped = false
  let slowFinished = 0
  const app = await appWith([
    {
      name: 'slow', intervalMs: 10, atStart: true,
      run: async (db) => {
        runs.slow! += 1
        if (++inFlight > 1) overlapped = true
        // A run takes longer than the interval: ticks in between must not start another.
        await db.selectNoFrom((eb) => eb.val(1).as('one')).execute()
        await wait(60)
        inFlight -= 1
        slowFinished += 1
      },
    },
    {
      name: 'flaky', intervalMs: 10,
      run: async () => {
        runs.flaky! += 1
        if (runs.flaky === 1) throw new Error('first run fails')
      },
    },
    { name: 'off', intervalMs: 0, run: async () => void (runs.off! += 1) },
  ])
  await app.ready()
  await wait(400)
  await app.close()
  t.ok(runs.slow! >= 2, `the slow job ran again after its first run (${runs.slow} runs)`)
  t.notOk(overlapped, 'no two runs of one job overlapped')
  t.equal(slowFinished, runs.slow, 'close waited for the run in progress')
  t.ok(runs.flaky! >= 2, 'a failed run is tried again')
  t.equal(runs.off, 0, 'a job with interval 0 never runs')
})

t.test('three instances on one database run a job once per interval, never two at a time', async (t) => {
  const INTERVAL = 150
  const spans: Array<{ start: number; end: number }> = []
  const claims: number[] = []
  const job: Job = {
    name: 'shared', intervalMs: INTERVAL, atStart: true,
    run: async (db) => {
      const start = Date.now()
      // When the lease was claimed, by the database's clock (the one the lease compares).
      const { ms } = await db.selectFrom('crm_job_leases').select(sql<string>`extract(epoch from started_at) * 1000`.as('ms')).where('name', '=', 'shared').executeTakeFirstOrThrow()
      claims.push(Number(ms))
      await wait(30)
      spans.push({ start, end: Date.now() })
    },
  }
  const apps = await Promise.all([appWith([job]), appWith([job]), appWith([job])])
  const began = Date.now()
  await Promise.all(apps.map((app) => app.ready()))
  await wait(1500)
  await Promise.all(apps.map((app) => app.close()))
  const elapsed = Date.now() - began
  spans.sort((a, b) => a.start - b.start)
  const overlaps = spans.filter((s, i) => i > 0 && s.start < spans[i - 1]!.end).length
  t.equal(overlaps, 0, 'no run started before the previous one ended')
  t.ok(spans.length <= Math.floor(elapsed / INTERVAL) + 1, `at most one run per interval across the three (${spans.length} runs in ${elapsed} ms)`)
  t.ok(spans.length >= Math.floor(1500 / INTERVAL / 2), `the job kept running (${spans.length} runs)`)
  claims.sort((a, b) => a - b)
  const gaps = claims.slice(1).map((c, i) => c - claims[i]!)
  t.ok(gaps.every((g) => g >= INTERVAL), `leases were claimed an interval apart or more (shortest gap ${Math.min(...gaps).toFixed(1)} ms)`)
  const lease = await ctx.db.selectFrom('crm_job_leases').selectAll().where('name', '=', 'shared').executeTakeFirstOrThrow()
  t.equal(Number(lease.runs), spans.length, 'the lease counted every run')
})

t.test("a job's writes are audited as the job, in a transaction of its own", async (t) => {
  let id = ''
  const app = await appWith([
    {
      name: 'writer', intervalMs: 60_000, atStart: true,
      run: async (db) => {
        id = (await db.insertInto('customers').values({ name: 'Made by a job' } as never).returning('id').executeTakeFirstOrThrow()).id as string
      },
    },
  ])
  await app.ready()
  for (let i = 0; i < 100 && !id; i++) await wait(20)
  await app.close()
  const audit = await ctx.ownerDb.selectFrom('audit_events').select(['actor', 'request_id', 'route']).where('entity_id', '=', id).execute()
  t.equal(audit.length, 1, 'one audit row')
  t.equal(audit[0]?.actor, 'system:writer', 'the actor is the job')
  t.match(audit[0]?.request_id, /^[0-9a-f-]{36}$/, 'with a request id of the run')
})

t.test("a lease held by a dead instance lapses after the job's time limit", async (t) => {
  await sql`insert into crm_job_leases (name, run_by, started_at) values ('orphaned', 'dead-instance', now() - interval '1 hour')`.execute(ctx.ownerDb)
  await sql`insert into crm_job_leases (name, run_by, started_at) values ('busy', 'other-instance', now())`.execute(ctx.ownerDb)
  const ran = { orphaned: 0, busy: 0 }
  const app = await appWith([
    { name: 'orphaned', intervalMs: 20, timeoutMs: 60_000, atStart: true, run: async () => void (ran.orphaned += 1) },
    { name: 'busy', intervalMs: 20, timeoutMs: 60_000, atStart: true, run: async () => void (ran.busy += 1) },
  ])
  await app.ready()
  await wait(300)
  await app.close()
  t.ok(ran.orphaned >= 1, 'the lapsed lease was taken over')
  t.equal(ran.busy, 0, 'a lease another instance holds within its time limit is left alone')
})

t.test('the lifecycle sweep runs as the app starts', async (t) => {
  const id = (await ctx.db.insertInto('customers').values({ name: 'Lapsed' } as never).returning('id').executeTakeFirstOrThrow()).id as string
  // A stage the rules would not give a customer with no purchases: the sweep puts it back.
  await ctx.ownerDb.updateTable('customers').set({ lifecycle_stage: 'loyal', lifecycle_stage_manual: false } as never).where('id', '=', id).execute()
  const before = await ctx.db.selectFrom('customers').select('lifecycle_stage').where('id', '=', id).executeTakeFirstOrThrow()
  t.equal(before.lifecycle_stage, 'loyal', 'no write moves the stage back by itself')
  const app = await buildTestApp(ctx.db, { app: { lifecycleSweepMs: 60_000 } })
  await app.ready()
  let stage = 'loyal'
  for (let i = 0; i < 100 && stage === 'loyal'; i++) {
    await wait(20)
    stage = (await ctx.db.selectFrom('customers').select('lifecycle_stage').where('id', '=', id).executeTakeFirstOrThrow()).lifecycle_stage as string
  }
  await app.close()
  t.equal(stage, 'lead', 'the sweep re-applied the rules at start')
  const audit = await ctx.ownerDb.selectFrom('audit_events').select('actor').where('entity_id', '=', id).where('action', '=', 'update').orderBy('occurred_at', 'desc').executeTakeFirst()
  t.equal(audit?.actor, 'system:lifecycle-sweep', 'the stage change is audited as the sweep')
})

t.test('runJobNow runs a job once through its lease and transaction, even one whose schedule is off', async (t) => {
  let runs = 0
  const app = await appWith([
    {
      name: 'on-demand', intervalMs: 0,
      run: async (db) => {
        runs += 1
        const { rows } = await sql<{ actor: string }>`select current_setting('crm.actor', true) as actor`.execute(db)
        return { runs, actor: rows[0]?.actor }
      },
    },
    { name: 'failing', intervalMs: 0, run: async () => { throw new Error('no luck') } },
    { name: 'slow', intervalMs: 0, timeoutMs: 200, run: async (db) => sql`select pg_sleep(2)`.execute(db) },
  ])
  await app.ready()
  const first = await app.runJobNow('on-demand')
  t.same(first, { ran: true, result: { runs: 1, actor: 'system:on-demand' }, timeoutMs: 600_000 }, 'it ran as the job and answered what the job returned')
  t.equal((await app.runJobNow('on-demand')).ran, true, 'an interval of 0 lets the next run claim the lease at once')
  t.equal(runs, 2)
  const lease = await ctx.db.selectFrom('crm_job_leases').selectAll().where('name', '=', 'on-demand').executeTakeFirstOrThrow()
  t.equal(Number(lease.runs), 2, 'the lease counted both runs')
  t.ok(lease.finished_at, 'and was released')

  const failed = await app.runJobNow('failing')
  t.same(failed, { ran: true, error: 'no luck', timeoutMs: 600_000 }, 'a failure is answered, not thrown')
  const slow = await app.runJobNow('slow')
  t.equal(slow.ran, true)
  t.match(slow.error, /statement timeout/, 'a run past its time limit fails with the time limit')

  await sql`update crm_job_leases set finished_at = null, started_at = now() where name = 'on-demand'`.execute(ctx.ownerDb)
  t.same(await app.runJobNow('on-demand'), { ran: false, timeoutMs: 600_000 }, 'a lease held by another run is left alone')
  t.equal(runs, 2)
  await t.rejects(app.runJobNow('nope'), /no job named nope/)
  await app.close()
})
