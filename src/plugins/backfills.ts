import fp from 'fastify-plugin'
import type { DbExecutor } from '../db/database.js'
import { nextPendingBackfill, recordBackfillBatch } from './backfills.repository.js'

/**
 * A data backfill: rewrites existing rows in batches, in key order, after the migration that
 * enqueued it (see the backfills migration and docs/database.md, "Migrations on a live
 * database"). The code that reads those rows must accept both forms until it ends.
 */
export interface Backfill {
  /** What the migration enqueued: insert into crm_backfills (name) values ('<name>'). */
  name: string
  /**
   * Does one batch of at most `limit` rows with keys after `after` (null: from the first), in
   * the given transaction, and answers the last key it did, or null when none was left.
   */
  batch(trx: DbExecutor, after: string | null, limit: number): Promise<{ last: string | null; rows: number }>
}

export interface BackfillOptions {
  /** Milliseconds between batches; 0 turns backfills off. */
  intervalMs: number
  /** Rows per batch: one transaction each, so the locks they take are short. */
  batchRows: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Registers a backfill by name; call before the app is ready. */
    registerBackfill(backfill: Backfill): void
  }
}

/** Runs one batch of the oldest unfinished backfill this code knows; what it did, or null when there is none. */
export async function runBackfillBatch(trx: DbExecutor, backfills: ReadonlyMap<string, Backfill>, batchRows: number) {
  const pending = await nextPendingBackfill(trx, [...backfills.keys()])
  if (!pending) return null
  const { last, rows } = await backfills.get(pending.name)!.batch(trx, pending.position, batchRows)
  await recordBackfillBatch(trx, pending.name, last, rows)
  return { backfill: pending.name, rows, finished: last === null }
}

/**
 * The backfills job of the scheduler: one batch per run, leased like every job, audited as
 * system:backfills. A backfill enqueued by a migration whose code this version lacks waits.
 */
export default fp<BackfillOptions>(
  async (app, opts) => {
    const backfills = new Map<string, Backfill>()
    app.decorate('registerBackfill', (backfill: Backfill) => {
      if (backfills.has(backfill.name)) throw new Error(`backfill ${backfill.name} is registered twice`)
      backfills.set(backfill.name, backfill)
    })
    app.scheduleJob({ name: 'backfills', intervalMs: opts.intervalMs, atStart: true, run: (trx) => runBackfillBatch(trx, backfills, opts.batchRows) })
  },
  { name: 'backfills', dependencies: ['scheduler'] },
)
