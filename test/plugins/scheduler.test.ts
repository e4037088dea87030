import t from 'tap'
import fp from 'fastify-plugin'
import { setup, buildTestApp } from '../helpers/app.js'

/**
 * The scheduler runs each job on its own timer once the app is ready (at once with atStart),
 * never two runs of one job at a time, retries after a failure, and waits for a running job on
 * close.
 */
const ctx = await setup()

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('jobs run on their interval, at start when asked, one run at a time, and close waits for a run', async (t) => {
  const runs: Record<string, number> = { slow: 0, flaky: 0, off: 0 }
  let inFlight = 0
  let overlapped = false
  let slowFinished = 0
  const app = await buildTestApp(ctx.db, {
    plugins: [
      fp(async (app) => {
        app.scheduleJob({
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
        })
        app.scheduleJob({
          name: 'flaky', intervalMs: 10,
          run: async () => {
            runs.flaky! += 1
            if (runs.flaky === 1) throw new Error('first run fails')
          },
        })
        app.scheduleJob({ name: 'off', intervalMs: 0, run: async () => void (runs.off! += 1) })
      }),
    ],
  })
  await app.ready()
  await wait(200)
  await app.close()
  t.ok(runs.slow! >= 2, `the slow job ran again after its first run (${runs.slow} runs)`)
  t.notOk(overlapped, 'no two runs of one job overlapped')
  t.equal(slowFinished, runs.slow, 'close waited for the run in progress')
  t.ok(runs.flaky! >= 2, 'a failed run is tried again on the next tick')
  t.equal(runs.off, 0, 'a job with interval 0 never runs')
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
  for (let i = 0; i < 50 && stage === 'loyal'; i++) {
    await wait(20)
    stage = (await ctx.db.selectFrom('customers').select('lifecycle_stage').where('id', '=', id).executeTakeFirstOrThrow()).lifecycle_stage as string
  }
  await app.close()
  t.equal(stage, 'lead', 'the sweep re-applied the rules at start')
})
