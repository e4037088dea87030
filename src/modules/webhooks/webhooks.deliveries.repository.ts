import { sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { Position } from '../events/index.js'

/**
 * The workers' SQL: fan-out of feed events into deliveries, the claim of due deliveries (leases
 * taken with FOR UPDATE SKIP LOCKED, so any number of workers share the queue without waiting on
 * each other or taking the same row) and the record of attempts. Written often, so not audited
 * (see the migration); the subscriptions they disable are.
 */

/**
 * A CTE that makes the statement's transaction commit without waiting for its WAL to reach disk
 * (synchronous_commit off, for that transaction only): for the claims and records, written
 * many times a second. What a crash of the database server can lose of them is the last
 * fraction of a second: a lease or an outcome, so the delivery is sent again under the same
 * webhook-id (at least once, as when a worker dies between a send and its record). The writers'
 * commits then no longer queue behind the worker's WAL flushes. The fan-out commits
 * synchronously: the deliveries it creates, and their ids, must outlive what was sent under them.
 */
const asyncCommit = sql`async_commit as materialized (select set_config('synchronous_commit', 'off', true) as off)`

/** The secrets a delivery of the subscription `id` is signed with now: the current one first. */
const signingSecrets = (id: ReturnType<typeof sql.ref>) => sql<string[]>`coalesce((
  select array_agg(w.secret order by w.expires_at is null desc, w.created_at desc) from webhook_secrets w
  where w.subscription_id = ${id} and (w.expires_at is null or w.expires_at > now())), '{}')`

/** A subscription whose cursor this worker holds for one fan-out transaction. */
export interface FanoutCursor {
  subscription_id: string
  /** active or paused: only an active one's deliveries are leased at fan-out. */
  status: string
  url: string
  event_types: string[]
  filter: unknown
  position: Position
  generation: number
  /** Its signing secrets now (the current one first), for the deliveries leased at fan-out. */
  secrets: string[]
}

/**
 * Locks the cursors of up to `limit` subscriptions that receive events (active or paused), skipping
 * those another worker is fanning out: each subscription's events are fanned out by one worker
 * at a time, in feed order.
 */
export async function lockCursors(db: DbExecutor, limit: number): Promise<FanoutCursor[]> {
  const { rows } = await sql<{ subscription_id: string; status: string; url: string; event_types: string[]; filter: unknown; txid: string; seq: number; generation: number; secrets: string[] }>`
    select c.subscription_id, s.status, s.url, s.event_types, s.filter, c.txid::text as txid, c.seq, c.generation,
           ${signingSecrets(sql.ref('c.subscription_id'))} as secrets
    from webhook_cursors c join webhook_subscriptions s on s.id = c.subscription_id
    where s.status in ('active', 'paused') and s.archived_at is null
    order by c.updated_at
    limit ${limit}
    for update of c skip locked`.execute(db)
  return rows.map((r) => ({
    subscription_id: r.subscription_id, status: r.status, url: r.url, event_types: r.event_types, filter: r.filter, position: { txid: r.txid, seq: r.seq }, generation: r.generation, secrets: r.secrets,
  }))
}

export interface NewDelivery {
  event_id: string
  txid: string
  seq: number
  event_type: string
  entity_id: string | null
  payload: string
}

/** One subscription's share of a fan-out: its new deliveries and where its cursor moves. */
export interface FanoutShare {
  cursor: FanoutCursor
  deliveries: NewDelivery[]
  next: Position
}

/**
 * Queues the deliveries of every subscription a fan-out holds and moves their cursors, in the
 * fan-out's transaction: one insert for all of them (each event's payload sent once, however
 * many subscriptions receive it) and one update of the cursors that moved.
 *
 * When `lease` is given, up to `lease.max` deliveries of active subscriptions that may go out at
 * once (the first of their entity for their subscription in this fan-out, with no pending
 * delivery of that entity queued before) are leased to that worker in the same insert and
 * returned: the common case skips the claim (fewer writes, no wait for a poll). The others wait
 * for claimDeliveries, which keeps the entity's order.
 */
export async function queueDeliveries(
  db: DbExecutor, shares: FanoutShare[], lease?: { worker: string; leaseMs: number; max: number },
): Promise<ClaimedDelivery[]> {
  const events = new Map<string, number>()
  const ev: NewDelivery[] = []
  const subs: string[] = []
  const gens: number[] = []
  const refs: number[] = []
  const leasable: boolean[] = []
  let room = lease?.max ?? 0
  for (const { cursor, deliveries } of shares) {
    const seen = new Set<string>()
    for (const d of deliveries) {
      let i = events.get(d.event_id)
      if (i === undefined) {
        i = ev.push(d)
        events.set(d.event_id, i)
      }
      subs.push(cursor.subscription_id)
      gens.push(cursor.generation)
      refs.push(i)
      const first = d.entity_id === null || (!seen.has(d.entity_id) && !!seen.add(d.entity_id))
      const lease = room > 0 && cursor.status === 'active' && first
      if (lease) room -= 1
      leasable.push(lease)
    }
  }
  let leased: ClaimedDelivery[] = []
  if (subs.length > 0) {
    const { rows } = await sql<{ id: string; subscription_id: string; payload: string; leased: boolean }>`
      insert into webhook_deliveries (subscription_id, generation, event_id, event_txid, event_seq, event_type, entity_id, payload, lease_owner, lease_until, next_attempt_at)
      select d.subscription_id, d.generation, e.event_id, e.txid::xid8, e.seq, e.event_type, e.entity_id, e.payload, l.owner, l.until, coalesce(l.until, now())
      from unnest(${subs}::uuid[], ${gens}::int[], ${refs}::int[], ${leasable}::boolean[]) as d(subscription_id, generation, ref, leasable)
      join unnest(${ev.map((d) => d.event_id)}::uuid[], ${ev.map((d) => d.txid)}::text[], ${ev.map((d) => d.seq)}::bigint[],
                  ${ev.map((d) => d.event_type)}::text[], ${ev.map((d) => d.entity_id)}::uuid[], ${ev.map((d) => d.payload)}::text[])
        with ordinality as e(event_id, txid, seq, event_type, entity_id, payload, ref) on e.ref = d.ref
      cross join lateral (select case when d.leasable and ${lease?.worker ?? null}::text is not null and not exists (
          select 1 from webhook_deliveries p
          where p.subscription_id = d.subscription_id and p.entity_id = e.entity_id and p.status = 'pending')
        then ${lease?.worker ?? null}::text end as owner) o
      cross join lateral (select o.owner, case when o.owner is not null then now() + make_interval(secs => ${(lease?.leaseMs ?? 0) / 1000}::float8) end as until) l
      on conflict (subscription_id, event_id, generation) do nothing
      returning id, subscription_id, payload, lease_owner is not null as leased`.execute(db)
    if (lease) {
      const cursors = new Map(shares.map((s) => [s.cursor.subscription_id, s.cursor]))
      leased = rows.filter((r) => r.leased).map((r) => {
        const { url, secrets } = cursors.get(r.subscription_id)!
        return { id: r.id, subscription_id: r.subscription_id, url, secrets, payload: r.payload, attempts: 0, schedule_base: 0 }
      })
    }
  }
  const moved = shares.filter((s) => s.next.txid !== s.cursor.position.txid || s.next.seq !== s.cursor.position.seq)
  if (moved.length > 0) {
    await sql`update webhook_cursors c set txid = m.txid::xid8, seq = m.seq, updated_at = now()
      from unnest(${moved.map((s) => s.cursor.subscription_id)}::uuid[], ${moved.map((s) => s.next.txid)}::text[], ${moved.map((s) => s.next.seq)}::bigint[]) as m(id, txid, seq)
      where c.subscription_id = m.id`.execute(db)
  }
  return leased
}

/** A delivery this worker holds the lease of. */
export interface ClaimedDelivery {
  id: string
  subscription_id: string
  url: string
  /** The subscription's signing secrets when the lease was taken. */
  secrets: string[]
  payload: string
  attempts: number
  schedule_base: number
}

/**
 * Leases up to `limit` due deliveries of active subscriptions for `leaseMs`. A delivery is due
 * when it is pending, its time has come, nobody holds a live lease on it, and no earlier event of
 * the same entity is still pending for the same subscription: so an entity's events reach a
 * subscription in feed order (a failing one holds the later ones back until it succeeds or
 * becomes a dead letter). A worker that dies loses its lease when it lapses, and the delivery is
 * claimed again: at least once.
 *
 * A lease moves next_attempt_at to its end (when the delivery is due again if the attempt is
 * lost), so the due index lists the deliveries in flight last, and a claim does not walk past
 * them; the lease_until test stays for a manual retry of a delivery in flight (due now, still
 * leased). Commits asynchronously (see asyncCommit).
 */
export async function claimDeliveries(db: DbExecutor, worker: string, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const { rows } = await sql<ClaimedDelivery>`
    with ${asyncCommit},
    due as (
      select d.id
      from webhook_deliveries d
      join webhook_subscriptions s on s.id = d.subscription_id and s.status = 'active' and s.archived_at is null
      where d.status = 'pending' and d.next_attempt_at <= now()
        and (d.lease_until is null or d.lease_until < now())
        and not exists (
          select 1 from webhook_deliveries e
          where e.subscription_id = d.subscription_id and e.entity_id = d.entity_id and e.status = 'pending'
            and (e.event_txid, e.event_seq) < (d.event_txid, d.event_seq))
      order by d.next_attempt_at, d.event_txid, d.event_seq
      limit ${limit}
      for update of d skip locked
    )
    update webhook_deliveries d
    set lease_owner = ${worker}, lease_until = now() + make_interval(secs => ${leaseMs / 1000}::float8),
        next_attempt_at = now() + make_interval(secs => ${leaseMs / 1000}::float8)
    from due, webhook_subscriptions s, async_commit
    where d.id = due.id and s.id = d.subscription_id
    returning d.id, d.subscription_id, s.url, ${signingSecrets(sql.ref('d.subscription_id'))} as secrets, d.payload, d.attempts, d.schedule_base`.execute(db)
  return rows
}

export interface AttemptRecord {
  id: string
  /** pending (retry at next_attempt_at), succeeded or dead. */
  status: 'pending' | 'succeeded' | 'dead'
  next_attempt_at: Date | null
  started_at: Date
  status_code: number | null
  latency_ms: number
  response: string | null
  error: string | null
}

/**
 * Records the outcome of this worker's attempts, one statement for a batch: the delivery's state
 * and its attempt log. A delivery whose lease another worker has taken meanwhile (this one was
 * presumed dead) is left to that worker. Answers the ids recorded. Commits asynchronously (see
 * asyncCommit).
 */
export async function recordAttempts(db: DbExecutor, worker: string, records: AttemptRecord[]): Promise<string[]> {
  if (records.length === 0) return []
  const col = <K extends keyof AttemptRecord>(k: K) => records.map((r) => r[k])
  const iso = (d: Date | null) => (d ? d.toISOString() : null)
  const { rows } = await sql<{ id: string }>`
    with ${asyncCommit},
    r as (
      select * from unnest(${col('id')}::uuid[], ${col('status')}::text[], ${records.map((r) => iso(r.next_attempt_at))}::timestamptz[],
                           ${records.map((r) => iso(r.started_at))}::timestamptz[], ${col('status_code')}::int[], ${col('latency_ms')}::int[],
                           ${col('response')}::text[], ${col('error')}::text[])
        as r(id, status, next_at, started_at, status_code, latency_ms, response, error)
    ),
    recorded as (
      update webhook_deliveries d
      set status = r.status, attempts = d.attempts + 1, next_attempt_at = coalesce(r.next_at, d.next_attempt_at),
          lease_owner = null, lease_until = null, last_attempt_at = r.started_at, last_status_code = r.status_code,
          last_latency_ms = r.latency_ms, last_response = r.response, last_error = r.error,
          finished_at = case when r.status = 'pending' then null else now() end
      from r, async_commit
      where d.id = r.id and d.lease_owner = ${worker}
      returning d.id, d.attempts, r.started_at, r.status_code, r.latency_ms, r.response, r.error
    ),
    logged as (
      insert into webhook_delivery_attempts (delivery_id, attempt, started_at, status_code, latency_ms, response_excerpt, error, worker)
      select id, attempts, started_at, status_code, latency_ms, response, error, ${worker} from recorded
      returning delivery_id
    )
    select delivery_id as id from logged`.execute(db)
  return rows.map((r) => r.id)
}

/** Gives back the leases this worker still holds (on shutdown): others may claim them at once. */
export async function releaseLeases(db: DbExecutor, worker: string): Promise<number> {
  const r = await sql`update webhook_deliveries set lease_owner = null, lease_until = null, next_attempt_at = now()
    where lease_owner = ${worker} and status = 'pending'`.execute(db)
  return Number(r.numAffectedRows ?? 0)
}

/**
 * Disables an active or paused subscription whose delivery became a dead letter; answers
 * whether it changed (a client may have disabled or deleted it meanwhile). Run in an audited
 * transaction: the change is the system's, recorded as such.
 */
export async function disableSubscription(db: DbExecutor, subscriptionId: string, reason: string): Promise<boolean> {
  const r = await sql`update webhook_subscriptions set status = 'disabled', disabled_reason = ${reason}
    where id = ${subscriptionId} and status <> 'disabled'`.execute(db)
  return Number(r.numAffectedRows ?? 0) > 0
}
