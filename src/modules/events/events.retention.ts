import fp from 'fastify-plugin'
import { purgeEvents } from './events.repository.js'

export interface EventRetentionOptions {
  /** Events older than this many days are removed (EVENTS_RETENTION_DAYS). */
  retentionDays: number
  /** Milliseconds between purges (EVENTS_PURGE_INTERVAL_MS); 0: never. */
  intervalMs: number
}

const BATCH = 50_000
const MAX_BATCHES = 20

/**
 * The change feed's retention: a leased scheduler job removes the events older than the
 * retention, oldest first, and moves the feed's horizon (a reader behind it is answered 410).
 * crm_events_purge drops whole expired monthly partitions and deletes the expired rows of the
 * boundary month in batches (at most a million rows per run; the next run takes the rest).
 */
export default fp<EventRetentionOptions>(
  async (app, opts) => {
    app.scheduleJob({
      name: 'events-purge',
      intervalMs: opts.intervalMs,
      atStart: true,
      run: async (db) => {
        const cutoff = new Date(Date.now() - opts.retentionDays * 86_400_000)
        let purged = 0
        for (let i = 0; i < MAX_BATCHES; i++) {
          const n = await purgeEvents(db, cutoff, BATCH)
          purged += n
          if (n < BATCH) break
        }
        return { purged }
      },
    })
  },
  { name: 'events-retention', dependencies: ['scheduler'] },
)
