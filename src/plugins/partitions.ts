import fp from 'fastify-plugin'
import { maintainPartitions } from './partitions.repository.js'

export interface PartitionUpkeepOptions {
  /** Milliseconds between runs of the partition-upkeep job (PARTITION_UPKEEP_INTERVAL_MS); 0: never. */
  intervalMs: number
  /** How many months after this one get their partitions ahead of time (default 3). */
  monthsAhead?: number
}

const DEFAULT_MONTHS_AHEAD = 3

/**
 * Keeps the monthly partitions of audit_events and events ahead of time (migration
 * 20261205T020000_partition_audit_and_events): a leased scheduler job, audited as
 * system:partition-upkeep, creates this month's and the next months' partitions (idempotent: an
 * existing one is left alone), and gives the rows a default partition caught (written while their
 * month had none) a partition of their own. Months ahead mean a missed run or three is harmless;
 * the default partitions mean even a long outage of the job never fails a write. Dropping
 * expired events partitions is the events-purge job's; audit partitions are never dropped.
 */
export default fp<PartitionUpkeepOptions>(
  async (app, opts) => {
    app.scheduleJob({
      name: 'partition-upkeep',
      intervalMs: opts.intervalMs,
      atStart: true,
      timeoutMs: 5 * 60_000,
      run: async (db) => ({ created: await maintainPartitions(db, opts.monthsAhead ?? DEFAULT_MONTHS_AHEAD) }),
    })
  },
  { name: 'partition-upkeep', dependencies: ['scheduler'] },
)
