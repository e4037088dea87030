import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { FastifyBaseLogger } from 'fastify'
import type { Db } from '../../db/database.js'
import { inAuditedTransaction } from '../../plugins/audit.js'
import { eventsAfter, type EventRecord } from '../events/index.js'
import * as deliveries from './webhooks.deliveries.repository.js'
import { signingSecrets } from './webhooks.repository.js'
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
  concurrency: 32,
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
 * the feed after the cursor (eventsAfter: only positions no later commit can precede), queues a
 * delivery per matching event and moves the cursor, in one transaction; (2) claims due deliveries
 * (leases, SKIP LOCKED, per-entity order; see claimDeliveries) and sends them, signed, at most
 * `concurrency` at a time; each batch's outcomes are recorded in one statement. A failed attempt
 * is retried with exponential backoff and jitter; the last failed one makes the delivery a dead
 * letter and disables its subscription (audited as system:webhooks).
 *
 * stop() drains: no new claims, deliveries in flight finish and are recorded, leases still held
 * are released so other workers take them at once.
 */
export class DeliveryWorker {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  private readonly sender: Sender
  private readonly inFlight = new Set<Promise<void>>()
  private inFlightCount = 0
  private timer: NodeJS.Timeout | undefined
  private polling: Promise<void> | undefined
  private stopped = true
  private running = false
  private again = false

  constructor(private readonly db: Db, private readonly opts: WorkerOptions, private readonly log: FastifyBaseLogger) {
    this.sender = createSender({ policy: opts.policy, timeoutMs: opts.timeoutMs })
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
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight])
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

  /** One round of fan-out and claims; true when it found work (poll again at once). */
  async poll(): Promise<boolean> {
    const { read: fanned, leased } = await this.fanOut()
    // Sent only after the fan-out committed: its leases and rows are visible to the record.
    for (let i = 0; i < leased.length; i += this.opts.concurrency) this.launch(leased.slice(i, i + this.opts.concurrency))
    let claimed = 0
    while (!this.stopped && this.inFlightCount < this.opts.concurrency) {
      const batch = await deliveries.claimDeliveries(this.db, this.id, this.opts.concurrency - this.inFlightCount, this.opts.leaseMs)
      if (batch.length === 0) break
      claimed += batch.length
      this.launch(batch)
    }
    return fanned > 0 || (claimed > 0 && this.inFlightCount < this.opts.concurrency)
  }

  /**
   * Queues deliveries for the new events of the subscriptions it can lock; answers how many
   * events it read and the deliveries it leased to itself on the way (see queueDeliveries).
   * Subscriptions at the same position share one read of the feed.
   */
  async fanOut(): Promise<{ read: number; leased: deliveries.ClaimedDelivery[] }> {
    const limit = this.opts.fanoutBatch ?? 500
    const room = Math.max(0, this.opts.concurrency * 4 - this.inFlightCount)
    return this.db.transaction().execute(async (trx) => {
      let read = 0
      const shares: deliveries.FanoutShare[] = []
      const pages = new Map<string, Awaited<ReturnType<typeof eventsAfter>>>()
      // Each event's payload is built once, however many subscriptions receive it.
      const queued = new Map<EventRecord, deliveries.NewDelivery>()
      const toDelivery = (e: EventRecord) => queued.get(e) ?? queued.set(e, newDelivery(e)).get(e)!
      for (const cursor of await deliveries.lockCursors(trx, 50)) {
        const key = `${cursor.position.txid}.${cursor.position.seq}`
        let page = pages.get(key)
        if (!page) {
          page = await eventsAfter(trx, cursor.position, { limit })
          pages.set(key, page)
          if (!page.expired) read += page.events.length
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
      return { read, leased: await deliveries.queueDeliveries(trx, shares, lease) }
    })
  }

  private launch(batch: deliveries.ClaimedDelivery[]): void {
    this.inFlightCount += batch.length
    const run = this.deliver(batch)
      .catch((err: unknown) => this.log.warn({ worker: this.id, err: { message: (err as Error).message } }, 'webhook batch not recorded; its leases will lapse'))
      .finally(() => {
        this.inFlightCount -= batch.length
        this.inFlight.delete(run)
        // A slot came free: look for more work now rather than at the next poll.
        this.wake(0)
      })
    this.inFlight.add(run)
  }

  private async deliver(batch: deliveries.ClaimedDelivery[]): Promise<void> {
    const secrets = await signingSecrets(this.db, [...new Set(batch.map((d) => d.subscription_id))])
    const records = await Promise.all(batch.map(async (d) => {
      const startedAt = new Date()
      const outcome = await this.attempt(d, secrets.get(d.subscription_id) ?? [], startedAt)
      return this.judge(d, startedAt, outcome)
    }))
    await deliveries.recordAttempts(this.db, this.id, records)
    for (const r of records) {
      if (r.status !== 'dead') continue
      const subscription = batch.find((d) => d.id === r.id)!.subscription_id
      await this.disable(subscription, r)
    }
  }

  private async attempt(d: deliveries.ClaimedDelivery, secrets: string[], at: Date): Promise<AttemptOutcome> {
    if (secrets.length === 0) return { statusCode: null, latencyMs: 0, excerpt: null, error: 'the subscription has no signing secret' }
    return this.sender.send(d.url, { ...signedHeaders(d.id, at, d.payload, secrets) }, d.payload)
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

const newDelivery = (e: EventRecord): deliveries.NewDelivery => ({
  event_id: e.id, txid: e.position.txid, seq: e.position.seq, event_type: e.type, entity_id: e.entity_id, payload: eventPayload(e),
})
