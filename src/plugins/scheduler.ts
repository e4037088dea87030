import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram } from 'prom-client'
import { sql } from 'kysely'
import type { DbExecutor } from '../db/database.js'
import { withStatementTimeout } from '../db/scope.js'
import { inAuditedTransaction } from './audit.js'
import { claimLease, releaseLease } from './scheduler.repository.js'

/**
 * The one home of background work: each job is a named entry with its interval and time limit.
 *
 * - Once across instances: every instance ticks every job, but a tick runs the job only if it
 *   claims the job's lease (crm_job_leases): the last run, by any instance, started at least an
 *   interval ago and has finished, or has been running past the time limit (its instance died). So N instances on
 *   one database run each job once per interval, never two runs at a time.
 * - Audited as a system actor: a run is one transaction whose audit rows name `system:<job>` and a
 *   request id of the run's own, so what a job changes is traced to it.
 * - Bounded: the transaction's statement_timeout is the job's time limit, and the client gives up
 *   on the server a little after it (a frozen database never sends the timeout's error).
 *
 * A failed run is logged and recorded on the lease; the next tick tries again. Timers are
 * unref'd, and close waits for a run in progress.
 *
 * runJobNow runs a registered job once, through the same lease and transaction as a tick, even
 * one whose interval turns its schedule off: what bench/jobs-at-scale.ts times.
 */
export interface Job {
  name: string
  /** Milliseconds between the starts of two runs (at least; a run never overlaps the last); 0 or less: off. */
  intervalMs: number
  /** The longest a run may take (default 10 minutes); also when a dead instance's lease lapses. */
  timeoutMs?: number
  /** Tick once as soon as the app is ready, not only after the first interval. */
  atStart?: boolean
  /** Does the work in the run's transaction; what it returns is logged. */
  run(db: DbExecutor): Promise<unknown>
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000

/** One run of a job by runJobNow. */
export interface JobRun {
  /** False: the lease was held (a run in progress or within the interval), nothing ran. */
  ran: boolean
  /** What the job returned, when it succeeded. */
  result?: unknown
  /** Why it failed (its time limit included), when it did. */
  error?: string
  /** The job's time limit. */
  timeoutMs: number
}

declare module 'fastify' {
  interface FastifyInstance {
    scheduleJob(job: Job): void
    /** Runs the registered job of this name once, as a tick would; off jobs included. */
    runJobNow(name: string): Promise<JobRun>
  }
}

export default fp(
  async (app) => {
    const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
    const jobs: Job[] = []
    const registered = new Map<string, Job>()
    const timers: NodeJS.Timeout[] = []
    const running = new Map<string, Promise<unknown>>()
    // job_name, not job: Prometheus gives every scraped series a `job` label of its own.
    const runs = new Counter({
      name: 'crm_job_runs_total',
      help: 'Background job runs on this instance, by job and outcome (success, failure)',
      labelNames: ['job_name', 'outcome'],
      registers: [app.metrics],
    })
    const duration = new Histogram({
      name: 'crm_job_duration_seconds',
      help: 'Background job run time on this instance, by job',
      labelNames: ['job_name'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600],
      registers: [app.metrics],
    })
    const lastSuccess = new Gauge({
      name: 'crm_job_last_success_timestamp_seconds',
      help: 'When a run of the job last succeeded on this instance (Unix time)',
      labelNames: ['job_name'],
      registers: [app.metrics],
    })

    const runOnce = async (job: Job): Promise<JobRun> => {
      const timeoutMs = job.timeoutMs ?? DEFAULT_TIMEOUT_MS
      if (!(await claimLease(app.db, job.name, instance, job.intervalMs, timeoutMs))) return { ran: false, timeoutMs }
      let error: string | null = null
      let result: unknown
      const endTimer = duration.startTimer({ job_name: job.name })
      try {
        const context = { actor: `system:${job.name}`, requestId: randomUUID(), route: `job ${job.name}` }
        result = await withStatementTimeout(timeoutMs, () =>
          inAuditedTransaction(app.db, context, async (trx) => {
            await sql`select set_config('statement_timeout', ${String(timeoutMs)}, true)`.execute(trx)
            return job.run(trx)
          }),
        )
        app.log.info({ job: job.name, request_id: context.requestId, result }, 'job done')
        runs.inc({ job_name: job.name, outcome: 'success' })
        lastSuccess.set({ job_name: job.name }, Date.now() / 1000)
      } catch (err) {
        error = (err as Error).message
        runs.inc({ job_name: job.name, outcome: 'failure' })
        app.log.warn({ job: job.name, err: { message: error, code: (err as { code?: string }).code } }, 'job failed; will retry')
      } finally {
        endTimer()
        await releaseLease(app.db, job.name, instance, error).catch(() => {})
      }
      return error === null ? { ran: true, result, timeoutMs } : { ran: true, error, timeoutMs }
    }

    const tick = (job: Job) => {
      if (running.has(job.name)) return
      const run = runOnce(job)
        .catch((err: unknown) => app.log.warn({ job: job.name, err: { message: (err as Error).message } }, 'job lease unavailable; will retry'))
        .finally(() => running.delete(job.name))
      running.set(job.name, run)
    }

    app.decorate('scheduleJob', (job: Job) => {
      registered.set(job.name, job)
      if (job.intervalMs > 0) jobs.push(job)
    })
    app.decorate('runJobNow', async (name: string) => {
      const job = registered.get(name)
      if (!job) throw new Error(`no job named ${name} is registered`)
      if (running.has(name)) return { ran: false, timeoutMs: job.timeoutMs ?? DEFAULT_TIMEOUT_MS }
      const run = runOnce(job)
      running.set(name, run.catch(() => {}))
      try {
        return await run
      } finally {
        running.delete(name)
      }
    })
    app.addHook('onReady', async () => {
      for (const job of jobs) {
        if (job.atStart) tick(job)
        // Ticks come four times an interval: a run starts within a quarter interval of its lease
        // falling free, whichever instance's tick comes first.
        const timer = setInterval(() => tick(job), Math.max(1, Math.floor(job.intervalMs / 4)))
        timer.unref()
        timers.push(timer)
      }
    })
    app.addHook('preClose', async () => {
      for (const timer of timers) clearInterval(timer)
      await Promise.all(running.values())
    })
  },
  { name: 'scheduler', dependencies: ['db', 'metrics'] },
)
