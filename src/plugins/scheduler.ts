import fp from 'fastify-plugin'
import type { Db } from '../db/database.js'

/**
 * The one home of background work: each job is a named entry with its interval. A job runs on
 * its own timer once the app is ready (and at once with `atStart`), never twice at the same time
 * in one process, and is awaited on close. A failed run is logged and the next tick tries again.
 * Timers are unref'd: they never keep the process alive.
 */
export interface Job {
  name: string
  /** Milliseconds between runs; 0 or less: the job is off. */
  intervalMs: number
  /** Run once as soon as the app is ready, not only after the first interval. */
  atStart?: boolean
  /** Does the work; what it returns is logged at debug level. */
  run(db: Db): Promise<unknown>
}

declare module 'fastify' {
  interface FastifyInstance {
    scheduleJob(job: Job): void
  }
}

export default fp(
  async (app) => {
    const jobs: Job[] = []
    const timers: NodeJS.Timeout[] = []
    const running = new Map<string, Promise<void>>()

    const tick = (job: Job) => {
      if (running.has(job.name)) return
      const run = job
        .run(app.db)
        .then((result) => app.log.debug({ job: job.name, result }, 'job done'))
        .catch((err: unknown) => app.log.warn({ job: job.name, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'job failed; will retry'))
        .finally(() => running.delete(job.name))
      running.set(job.name, run)
    }

    app.decorate('scheduleJob', (job: Job) => {
      if (job.intervalMs > 0) jobs.push(job)
    })
    app.addHook('onReady', async () => {
      for (const job of jobs) {
        if (job.atStart) tick(job)
        const timer = setInterval(() => tick(job), job.intervalMs)
        timer.unref()
        timers.push(timer)
      }
    })
    app.addHook('preClose', async () => {
      for (const timer of timers) clearInterval(timer)
      await Promise.all(running.values())
    })
  },
  { name: 'scheduler', dependencies: ['db'] },
)
