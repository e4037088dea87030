import { sql } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { Db } from './database.js'

/**
 * Where a read goes when a streaming replica is configured (DATABASE_REPLICA_URL), decided here
 * once for every route (see plugins/replica.ts for how a request uses it).
 *
 * - The replica's state is polled every `checkIntervalMs` (one short query on each server) and
 *   the answer cached: a read never waits for a lag check.
 * - Lag: zero when the replica has replayed everything the primary has written (an idle primary
 *   writes no commits, so the age of the last replayed commit alone would call an up-to-date
 *   replica late); otherwise the age of the last commit the replica replayed. Over `maxLagMs`,
 *   reads go to the primary until the replica catches up.
 * - Down: a failed poll (or a read that failed to reach the replica) sends reads to the primary
 *   until a later poll succeeds. A status older than three intervals counts as unknown: primary.
 * - Read-your-writes: a write's answer carries the primary's WAL position after its commit (a
 *   consistency token, an LSN); a read that presents it goes to the replica only if the replica
 *   has replayed that far, else to the primary.
 */
export type ReadTarget = 'replica' | 'primary'

/** Why a read went where it went (the label of the routing metric). */
export type RoutingReason = 'replica' | 'no_replica' | 'replica_down' | 'replica_lagging' | 'not_replayed' | 'status_stale' | 'replica_failed' | 'transaction'

export interface ReplicaStatus {
  /** When this status was measured (Date.now()); 0: never. */
  checkedAt: number
  reachable: boolean
  /** Replication lag in milliseconds as defined above; null when unreachable. */
  lagMs: number | null
  /** WAL bytes the replica has yet to replay (primary's position minus its replay position). */
  lagBytes: number | null
  /** The replica's replay position. */
  replayLsn: bigint | null
  error?: string
}

export interface ReplicaRouterOptions {
  primary: Db
  replica: Db
  maxLagMs: number
  checkIntervalMs: number
  log?: Pick<FastifyBaseLogger, 'warn' | 'info'>
}

/** A PostgreSQL LSN ('16/B374D848') as a number that compares like the WAL position. */
export function parseLsn(text: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text)
  if (!m) return null
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`)
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`
}

/** The primary's WAL write position now: past the end of every transaction committed before. */
export async function currentWalLsn(primary: Db): Promise<bigint> {
  const { rows } = await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(primary)
  return parseLsn(rows[0]!.lsn)!
}

export class ReplicaRouter {
  readonly primary: Db
  readonly replica: Db
  readonly maxLagMs: number
  readonly checkIntervalMs: number
  private current: ReplicaStatus = { checkedAt: 0, reachable: false, lagMs: null, lagBytes: null, replayLsn: null }
  private timer: NodeJS.Timeout | undefined
  private polling: Promise<ReplicaStatus> | undefined
  private readonly log: ReplicaRouterOptions['log']

  constructor(opts: ReplicaRouterOptions) {
    this.primary = opts.primary
    this.replica = opts.replica
    this.maxLagMs = opts.maxLagMs
    this.checkIntervalMs = opts.checkIntervalMs
    this.log = opts.log
  }

  get status(): ReplicaStatus {
    return this.current
  }

  /**
   * Polls now and then every checkIntervalMs (unref'd: it never keeps the process alive). Does
   * not wait for the first answer: until it comes, reads go to the primary.
   */
  start(): void {
    void this.check()
    this.timer = setInterval(() => void this.check(), this.checkIntervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.polling
  }

  /** Measures the replica's state now (one poll at a time: concurrent callers share it). */
  check(): Promise<ReplicaStatus> {
    this.polling ??= this.measure().finally(() => {
      this.polling = undefined
    })
    return this.polling
  }

  /** A read failed to reach the replica: primary until the next successful poll. */
  markDown(error: string): void {
    if (this.current.reachable) this.log?.warn({ error }, 'read replica unreachable: reads go to the primary')
    this.current = { checkedAt: Date.now(), reachable: false, lagMs: null, lagBytes: null, replayLsn: null, error }
  }

  /**
   * Where a read goes, given the consistency token the caller presented (the LSN of its last
   * write), if any. A token the cached status has not reached is checked once more, live: the
   * replica usually replays a commit within milliseconds.
   */
  async route(token: bigint | null): Promise<{ target: ReadTarget; reason: RoutingReason }> {
    let status = this.current
    const stale = Date.now() - status.checkedAt > 3 * this.checkIntervalMs
    if (stale) return { target: 'primary', reason: status.checkedAt === 0 || status.reachable ? 'status_stale' : 'replica_down' }
    if (!status.reachable) return { target: 'primary', reason: 'replica_down' }
    if (status.lagMs === null || status.lagMs > this.maxLagMs) return { target: 'primary', reason: 'replica_lagging' }
    if (token !== null && (status.replayLsn === null || status.replayLsn < token)) {
      status = await this.check()
      if (!status.reachable) return { target: 'primary', reason: 'replica_down' }
      if (status.replayLsn === null || status.replayLsn < token) return { target: 'primary', reason: 'not_replayed' }
    }
    return { target: 'replica', reason: 'replica' }
  }

  private async measure(): Promise<ReplicaStatus> {
    const checkedAt = Date.now()
    try {
      // The replica first: the primary's position read after it is never behind what the
      // replica could have received, so "replayed everything" is never claimed wrongly.
      const { rows } = await sql<{ recovery: boolean; replay: string | null; replay_age_ms: number | null }>`
        select pg_is_in_recovery() as recovery,
               pg_last_wal_replay_lsn()::text as replay,
               (extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 as replay_age_ms`.execute(this.replica)
      const row = rows[0]!
      if (!row.recovery) throw new Error('the replica URL names a server that is not in recovery (not a standby)')
      const replayLsn = row.replay ? parseLsn(row.replay) : null
      const primaryLsn = await currentWalLsn(this.primary)
      const lagBytes = replayLsn === null ? null : Math.max(0, Number(primaryLsn - replayLsn))
      const lagMs = lagBytes === 0 ? 0 : row.replay_age_ms === null ? null : Math.max(0, row.replay_age_ms)
      const wasDown = !this.current.reachable && this.current.checkedAt !== 0
      this.current = { checkedAt, reachable: true, lagMs, lagBytes, replayLsn }
      if (wasDown) this.log?.info('read replica reachable again')
    } catch (err) {
      this.markDown((err as Error).message)
      this.current.checkedAt = checkedAt
    }
    return this.current
  }
}
