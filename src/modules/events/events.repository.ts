import { sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import { FEED_START, positionBefore, type Position } from './events.position.js'

/** A domain event as stored (see migrations/20261204T211000_events.ts), with its feed position. */
export interface EventRecord {
  id: string
  position: Position
  type: string
  occurred_at: string
  actor: string
  request_id: string | null
  correlation_id: string | null
  entity_type: string
  entity_id: string
  version: number | null
  /** The fields the change set, with their new values, in the clear (mask before showing). */
  changes: Record<string, unknown>
}

export interface FeedOptions {
  /** Only events of these types (all when absent or empty). */
  types?: readonly string[]
  /** At most this many events. */
  limit: number
  /**
   * With a type filter: at most this many events are examined per call (default 10,000), so a
   * rare type cannot make one read walk the whole feed; next is then the last one examined.
   */
  scanLimit?: number
}

export type FeedPage =
  | {
      expired: false
      events: EventRecord[]
      /** Where the next read continues: after the last event returned or examined, else `after`. */
      next: Position
    }
  /** Events after `after` were purged by the retention (the cursor is before the horizon). */
  | { expired: true; horizon: Position }

interface Row {
  last_txid: string
  last_seq: number
  txid: string | null
  seq: number | null
  id: string | null
  type: string | null
  occurred_at: string | null
  actor: string | null
  request_id: string | null
  correlation_id: string | null
  entity_type: string | null
  entity_id: string | null
  version: number | null
  changes: Record<string, unknown> | null
}

const DEFAULT_SCAN_LIMIT = 10_000

/**
 * The committed events after a position, in feed order, that no later commit can precede: only
 * events of transactions below the frontier are returned (crm_events_frontier(): in this
 * statement's snapshot, every transaction of this database with a smaller xid has ended; see
 * migrations 20261204T211000_events and 20261204T211100_events_frontier). `after` null starts at
 * the oldest retained event.
 *
 * Retention purges a prefix of the feed and records its last position (events_horizon). The
 * horizon is read after the events, in a later snapshot: a purge that committed before the read
 * is seen by the check, and one that committed after it removed nothing the read missed.
 */
export async function eventsAfter(db: DbExecutor, after: Position | null, opts: FeedOptions): Promise<FeedPage> {
  const start = after ?? (await feedHorizon(db)) ?? FEED_START
  const types = opts.types?.length ? [...opts.types] : null
  const scan = types ? Math.max(opts.scanLimit ?? DEFAULT_SCAN_LIMIT, opts.limit) : opts.limit
  const { rows } = await sql<Row>`
    with scanned as materialized (
      select e.txid, e.seq, e.id, e.type, e.occurred_at, e.actor, e.request_id, e.correlation_id,
             e.entity_type, e.entity_id, e.version, e.changes
      from events e
      where (e.txid, e.seq) > (${start.txid}::xid8, ${start.seq}::bigint)
        and e.txid < crm_events_frontier()
      order by e.txid, e.seq
      limit ${scan}
    ),
    last as (select txid, seq from scanned order by txid desc, seq desc limit 1),
    matched as (
      select * from scanned
      where ${types}::text[] is null or type = any(${types}::text[])
      order by txid, seq
      limit ${opts.limit}
    )
    select l.txid::text as last_txid, l.seq as last_seq, m.txid::text as txid, m.seq, m.id, m.type, m.occurred_at,
           m.actor, m.request_id, m.correlation_id, m.entity_type, m.entity_id, m.version, m.changes
    from last l left join matched m on true
    order by m.txid, m.seq`.execute(db)

  const horizon = await feedHorizon(db)
  if (horizon && positionBefore(start, horizon)) return { expired: true, horizon }

  const events: EventRecord[] = []
  for (const r of rows) {
    if (r.id === null) continue
    events.push({
      id: r.id,
      position: { txid: r.txid!, seq: r.seq! },
      type: r.type!,
      occurred_at: r.occurred_at!,
      actor: r.actor!,
      request_id: r.request_id,
      correlation_id: r.correlation_id,
      entity_type: r.entity_type!,
      entity_id: r.entity_id!,
      version: r.version,
      changes: r.changes ?? {},
    })
  }
  const first = rows[0]
  let next = start
  if (events.length === opts.limit) next = events[events.length - 1]!.position
  else if (first) next = { txid: first.last_txid, seq: first.last_seq }
  return { expired: false, events, next }
}

/** The last purged position (nothing at or before it remains), or null when nothing was purged. */
export async function feedHorizon(db: DbExecutor): Promise<Position | null> {
  const row = await db.selectFrom('events_horizon').select([sql<string>`txid::text`.as('txid'), 'seq']).executeTakeFirst()
  return row ? { txid: row.txid, seq: row.seq } : null
}

/** The position of the newest event readers can see now (where a reader that wants only new events starts). */
export async function feedHead(db: DbExecutor): Promise<Position> {
  const { rows } = await sql<{ txid: string; seq: number }>`
    select txid::text as txid, seq from events
    where txid < crm_events_frontier()
    order by txid desc, seq desc limit 1`.execute(db)
  return rows[0] ?? (await feedHorizon(db)) ?? FEED_START
}

/**
 * Deletes, in one batch, the events that occurred before `cutoff` (a prefix of the feed, see
 * crm_events_purge) and moves the horizon; answers how many went.
 */
export async function purgeEvents(db: DbExecutor, cutoff: Date, maxRows = 50_000): Promise<number> {
  const { rows } = await sql<{ purged: number }>`select crm_events_purge(${cutoff.toISOString()}::timestamptz, ${maxRows}::int) as purged`.execute(db)
  return rows[0]?.purged ?? 0
}
