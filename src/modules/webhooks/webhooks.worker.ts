import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../../db/database.js'
import { inAuditedTransaction } from '../../plugins/audit.js'
import { eventsAfter, type EventRecord } from '../events/index.js'
import * as deliveries from './webhooks.deliveries.repository.js'
import { eventPayload, matches } from './webhooks.service.js'
import { createSender, type AttemptOutcome, type Sender } from './webhooks.sender.js'
import { signedHeaders } from './webhooks.signer.js'
import type { TargetPolicy } from './webhooks.ssrf.js'

export interface WorkerOptions {
  policy: TargetPolicy
  /** Idle time between polls of the feed and the queue. */
  pollMs: number
  /** The first retry's delay; each next one doubles, up to backoffMaxMs, with ±20 % jitter. */
  backoffBaseMs: number
  backoffMaxMs: number
  /** Attempts before a delivery becomes a dead letter (and its subscription is disabled). */
  maxAttempts: number
  timeoutMs: number
  /** How long a claimed delivery is this worker's; past it, another worker takes it over. Longer than timeoutMs. */
  leaseMs: number
  /** Deliveries in flight at once, per worker. */
  concurrency: number
  /** Events read per subscription per fan-out. */
  fanoutBatch?: number
}

/** The retry schedule: defaults give 18 attempts over about 3 days (10 s doubling to 12 h). */
export const DEFAULT_WORKER_OPTIONS = {
  pollMs: 100,
  backoffBaseMs: 10_000,
  backoffMaxMs: 12 * 3_600_000,
  maxAttempts: 18,
  timeoutMs: 10_000,
  leaseMs: 60_000,
  concurrency: 128,
} satisfies Omit<WorkerOptions, 'policy'>

/** The delay before retry number `failures` (1 = after the first failed attempt), with jitter. */
export function retryDelayMs(failures: number, base: number, max: number, random = Math.random): number {
  const delay = Math.min(max, base * 2 ** Math.min(failures - 1, 40))
  return Math.round(delay * (0.8 + 0.4 * random()))
}

/**
 * The delivery worker: runs in the API process (plugin below) or alone (`npm run worker`), any
 * number at once on one database.
 *
 * Each poll: (1) fan-out: for the subscriptions whose cursor it could lock (SKIP LOCKED), reads
 * the feed after the cursors (eventsAfter: only positions no later commit can precede), queues a
 * delivery per matching event for all of them in one insert and moves the cursors, in one
 * transaction, leasing the deliveries that may go out at once to itself; (2) claims more due
 * deliveries while it has room (leases, SKIP LOCKED, per-entity order; see claimDeliveries).
 *
 * Leased deliveries wait in a queue and are sent, signed, `concurrency` at a time over
 * keep-alive connections; each frees its slot when its answer is in. Outcomes are recorded in
 * batches, one statement for whatever finished while the previous one ran (as group commit
 * does): a slow record does not hold sends back, and a busy worker writes few statements. A
 * failed attempt is retried with exponential backoff and jitter; the last failed one makes the
 * delivery a dead letter and disables its subscription (audited as system:webhooks). An
 * entity's next delivery is claimed only once the earlier one is recorded (claimDeliveries), so
 * sending them concurrently keeps their order.
 *
 * stop() drains: no new claims, deliveries in flight finish and are recorded, leases of those
 * still queued are released so other workers take them at once.
 */
export class DeliveryWorker {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  private readonly sender: Sender
  /** Leased, not yet sent. */
  private queue: deliveries.ClaimedDelivery[] = []
  private sending = 0
  /** Sent, not yet recorded (waiting for the next record, or in the one running). */
  private outcomes: Array<{ delivery: deliveries.ClaimedDelivery; record: deliveries.AttemptRecord }> = []
  private recording = 0
  private recorder: Promise<void> | undefined
  private readonly idle = new Set<() => void>()
  private timer: NodeJS.Timeout | undefined
  private polling: Promise<void> | undefined
  /** The last poll left work behind (see poll): free slots call for the next one at once. */
  private backlog = false
  private stopped = true
  private running = false
  private again = false

  constructor(private readonly db: Db, private readonly opts: WorkerOptions, private readonly log: FastifyBaseLogger) {
    this.sender = createSender({ policy: opts.policy, timeoutMs: opts.timeoutMs, maxSockets: opts.concurrency })
  }

  /** Deliveries this worker holds a lease on and has not recorded yet. */
  private get held(): number {
    return this.queue.length + this.sending + this.outcomes.length + this.recording
  }

  start(): void {
    if (!this.stopped) return
    this.stopped = false
    this.wake(0)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    await this.polling
    // Not sent yet: their leases are released below, for any worker to take.
    this.queue = []
    while (this.sending > 0 || this.outcomes.length > 0 || this.recorder) {
      await new Promise<void>((resolve) => this.idle.add(resolve))
    }
    const released = await deliveries.releaseLeases(this.db, this.id).catch(() => 0)
    if (released > 0) this.log.info({ worker: this.id, released }, 'webhook leases released')
    this.sender.close()
  }

  /** Polls after `ms`; one poll at a time (a wake during a poll makes the next one immediate). */
  private wake(ms: number): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    if (this.timer) clearTimeout(this.timer)
    this.timer = setTimeout(() => this.runPoll(), ms)
    this.timer.unref()
  }

  private runPoll(): void {
    this.timer = undefined
    this.running = true
    let next = this.opts.pollMs
    let failed = false
    this.polling = this.poll()
      .then((busy) => {
        if (busy) next = 0
      }, (err: unknown) => {
        failed = true
        next = this.opts.pollMs * 10
        this.log.warn({ worker: this.id, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'webhook poll failed; will retry')
      })
      .finally(() => {
        this.running = false
        if (this.again && !failed) next = 0
        this.again = false
        this.wake(next)
      })
  }

  /** The most deliveries this worker holds at once: enough queued to keep every slot busy. */
  private get capacity(): number {
    return this.opts.concurrency * 4
  }

  /**
   * One round of fan-out and claims; true when work is left that it has room for (a full page of
   * the feed, a full claim): poll again at once. Otherwise the next poll comes after pollMs, so a
   * trickle of events makes one fan-out per poll rather than one per event.
   */
  async poll(): Promise<boolean> {
    const { more, leased } = await this.fanOut()
    // Sent only after the fan-out committed: its leases and rows are visible to the record.
    this.enqueue(leased)
    let full = false
    // Claims top the queue up to twice the slots: the rest of the room is for the next fan-out.
    while (!this.stopped) {
      const room = Math.min(this.capacity, this.opts.concurrency * 2) - this.held
      if (room <= 0) break
      const batch = await deliveries.claimDeliveries(this.db, this.id, room, this.opts.leaseMs)
      this.enqueue(batch)
      full = batch.length === room
      if (!full) break
    }
    this.backlog = more || full
    return this.backlog && this.held < this.capacity
  }

  /**
   * Queues deliveries for the new events of the subscriptions it can lock; answers whether more
   * is waiting (a full page of the feed, more subscriptions than one fan-out takes) and the
   * deliveries it leased to itself on the way (see queueDeliveries).
   * Subscriptions at the same position share one read of the feed.
   */
  async fanOut(): Promise<{ more: boolean; leased: deliveries.ClaimedDelivery[] }> {
    const limit = this.opts.fanoutBatch ?? 500
    const room = Math.max(0, this.capacity - this.held)
    return this.db.transaction().execute(async (trx) => {
      const shares: deliveries.FanoutShare[] = []
      const pages = new Map<string, Awaited<ReturnType<typeof eventsAfter>>>()
      // Each event's payload is built once, however many subscriptions receive it.
      const queued = new Map<EventRecord, deliveries.NewDelivery>()
      const toDelivery = (e: EventRecord) => queued.get(e) ?? queued.set(e, newDelivery(e)).get(e)!
      const cursors = await deliveries.lockCursors(trx, FANOUT_SUBSCRIPTIONS)
      let more = cursors.length === FANOUT_SUBSCRIPTIONS
      for (const cursor of cursors) {
        const key = `${cursor.position.txid}.${cursor.position.seq}`
        let page = pages.get(key)
        if (!page) {
          page = await eventsAfter(trx, cursor.position, { limit })
          pages.set(key, page)
          if (!page.expired && page.events.length === limit) more = true
        }
        if (page.expired) {
          // The retention purged events this subscription had not seen: it goes on from the horizon.
          this.log.error({ subscription_id: cursor.subscription_id, horizon: page.horizon }, 'webhook cursor behind the feed retention; events were lost to it')
          shares.push({ cursor, deliveries: [], next: page.horizon })
          continue
        }
        shares.push({ cursor, deliveries: page.events.filter((e) => matches(e, cursor.event_types, cursor.filter)).map(toDelivery), next: page.next })
      }
      const lease = !this.stopped && room > 0 ? { worker: this.id, leaseMs: this.opts.leaseMs, max: room } : undefined
      return { more, leased: await deliveries.queueDeliveries(trx, shares, lease) }
    })
  }

  private enqueue(batch: deliveries.ClaimedDelivery[]): void {
    this.queue.push(...batch)
    this.pump()
  }

  /** Starts sends while slots are free. */
  private pump(): void {
    while (!this.stopped && this.sending < this.opts.concurrency && this.queue.length > 0) {
      const d = this.queue.shift()!
      this.sending += 1
      const startedAt = new Date()
      void this.attempt(d, startedAt)
        .then((outcome) => this.outcomes.push({ delivery: d, record: this.judge(d, startedAt, outcome) }))
        .finally(() => {
          this.sending -= 1
          this.pump()
          this.record()
          // Slots came free and the queue runs short: look for more work now rather than at the next poll.
          if (this.backlog && this.queue.length < this.opts.concurrency && this.held < this.capacity) this.wake(0)
        })
    }
  }

  /**
   * Records the outcomes in hand in one statement, unless a record is running: then its end
   * records what came in meanwhile. A batch that fails to be recorded keeps its leases until
   * they lapse; the deliveries are then claimed and sent again (at least once).
   */
  private record(): void {
    if (this.recorder) return
    if (this.outcomes.length === 0) {
      if (this.sending === 0) for (const resolve of this.idle) resolve()
      this.idle.clear()
      return
    }
    const batch = this.outcomes
    this.outcomes = []
    this.recording = batch.length
    this.recorder = this.recordBatch(batch)
      .catch((err: unknown) => this.log.warn({ worker: this.id, err: { message: (err as Error).message } }, 'webhook outcomes not recorded; their leases will lapse'))
      .finally(() => {
        this.recording = 0
        this.recorder = undefined
        this.record()
        if (this.backlog && this.queue.length < this.opts.concurrency && this.held < this.capacity) this.wake(0)
      })
  }

  private async recordBatch(batch: Array<{ delivery: deliveries.ClaimedDelivery; record: deliveries.AttemptRecord }>): Promise<void> {
    await deliveries.recordAttempts(this.db, this.id, batch.map((b) => b.record))
    for (const { delivery, record } of batch) {
      if (record.status === 'dead') await this.disable(delivery.subscription_id, record)
    }
  }

  private async attempt(d: deliveries.ClaimedDelivery, at: Date): Promise<AttemptOutcome> {
    if (d.secrets.length === 0) return { statusCode: null, latencyMs: 0, excerpt: null, error: 'the subscription has no signing secret' }
    return this.sender.send(d.url, { ...signedHeaders(d.id, at, d.payload, d.secrets) }, d.payload)
  }

  private judge(d: deliveries.ClaimedDelivery, startedAt: Date, o: AttemptOutcome): deliveries.AttemptRecord {
    const ok = o.statusCode !== null && o.statusCode >= 200 && o.statusCode < 300
    const failures = d.attempts + 1 - d.schedule_base
    const status = ok ? 'succeeded' : failures >= this.opts.maxAttempts ? 'dead' : 'pending'
    const next = status === 'pending' ? new Date(Date.now() + retryDelayMs(failures, this.opts.backoffBaseMs, this.opts.backoffMaxMs)) : null
    return {
      id: d.id, status, next_attempt_at: next, started_at: startedAt,
      status_code: o.statusCode, latency_ms: o.latencyMs, response: o.excerpt, error: o.error,
    }
  }

  private async disable(subscriptionId: string, r: deliveries.AttemptRecord): Promise<void> {
    const reason = `delivery ${r.id} failed ${this.opts.maxAttempts} times (last: ${r.error ?? `HTTP ${r.status_code}`})`.slice(0, 500)
    const context = { actor: 'system:webhooks', requestId: randomUUID(), route: 'webhook delivery' }
    const changed = await inAuditedTransaction(this.db, context, (trx) => deliveries.disableSubscription(trx, subscriptionId, reason))
    if (changed) this.log.warn({ subscription_id: subscriptionId, delivery_id: r.id }, 'webhook subscription disabled after a dead letter')
  }
}

/** Subscriptions one fan-out transaction takes at most. */
const FANOUT_SUBSCRIPTIONS = 50

const newDelivery = (e: EventRecord): deliveries.NewDelivery => ({
  event_id: e.id, txid: e.position.txid, seq: e.position.seq, event_type: e.type, entity_id: e.entity_id, payload: eventPayload(e),
})
