import { type Selectable, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { WebhookDeliveries, WebhookDeliveryAttempts, WebhookSubscriptions } from '../../db/schema.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'
import type { ArchivedFilter } from '../../lib/schema.js'
import { versionedTable, whereArchived } from '../../db/versioned.js'
import type { Position } from '../events/index.js'

/** The subscriptions' SQL, their secrets and fan-out cursors, and the delivery log as the API reads it. */
export type SubscriptionRow = Selectable<WebhookSubscriptions>
export type DeliveryRow = Selectable<WebhookDeliveries>
export type AttemptRow = Selectable<WebhookDeliveryAttempts>

export interface NewSubscription {
  url: string
  event_types: string[]
  filter: unknown
  status: string
  description: string | null
}

export async function insertSubscription(db: DbExecutor, row: NewSubscription): Promise<SubscriptionRow> {
  return db
    .insertInto('webhook_subscriptions')
    .values({ ...row, filter: row.filter === null ? null : JSON.stringify(row.filter) })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findSubscription(db: DbExecutor, id: string): Promise<SubscriptionRow | undefined> {
  return db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirst()
}

/** The versioned-record operations: lock (404, 412), archive and restore. An archived subscription receives nothing. */
export const subscriptions = versionedTable('webhook_subscriptions', 'webhook subscription')

/** The subscription locked for the rest of the transaction: 404 when absent, 412 when If-Match names another version. */
export const lockSubscription = (db: DbExecutor, id: string, expectedVersion?: number): Promise<SubscriptionRow> => subscriptions.lockForWrite(db, id, expectedVersion)

export async function updateSubscription(db: DbExecutor, id: string, changes: Record<string, unknown>): Promise<SubscriptionRow> {
  const set = { ...changes }
  if ('filter' in set) set.filter = set.filter === null ? null : JSON.stringify(set.filter)
  return db.updateTable('webhook_subscriptions').set(set).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
}

export async function listSubscriptions(db: DbExecutor, f: { status?: string | undefined; archived: ArchivedFilter }, page: PageRequest): Promise<SubscriptionRow[]> {
  const query = db.selectFrom('webhook_subscriptions').selectAll().$if(!!f.status, (qb) => qb.where('status', '=', f.status!))
  return keysetPage(whereArchived(query, 'webhook_subscriptions', f.archived), page, 'webhook_subscriptions').execute()
}

/** Adds a secret; the current one (if any) keeps signing until `previousExpiresAt`. */
export async function rotateSecret(db: DbExecutor, subscriptionId: string, secret: string, previousExpiresAt: Date | null): Promise<void> {
  if (previousExpiresAt) {
    await db.updateTable('webhook_secrets').set({ expires_at: previousExpiresAt.toISOString() })
      .where('subscription_id', '=', subscriptionId).where('expires_at', 'is', null).execute()
  }
  // Secrets that expired are of no use any more: removed, so a leaked database backup holds fewer.
  await db.deleteFrom('webhook_secrets').where('subscription_id', '=', subscriptionId).where('expires_at', '<=', sql<string>`now()`).execute()
  await db.insertInto('webhook_secrets').values({ subscription_id: subscriptionId, secret }).execute()
}

/** Starts (or, for a replay, moves back) a subscription's place in the feed. */
export async function setCursor(db: DbExecutor, subscriptionId: string, at: Position, newGeneration: boolean): Promise<number> {
  const { rows } = await sql<{ generation: number }>`
    insert into webhook_cursors (subscription_id, txid, seq) values (${subscriptionId}, ${at.txid}::xid8, ${at.seq})
    on conflict (subscription_id) do update
      set txid = excluded.txid, seq = excluded.seq, updated_at = now(),
          generation = webhook_cursors.generation + ${newGeneration ? 1 : 0}
    returning generation`.execute(db)
  return rows[0]!.generation
}

export async function recordOperation(db: DbExecutor, op: { subscription_id: string; kind: 'retry' | 'replay'; delivery_id?: string; from_position?: string }): Promise<void> {
  await db.insertInto('webhook_operations').values(op).execute()
}

export async function listDeliveries(db: DbExecutor, subscriptionId: string, f: { status?: string | undefined }, page: PageRequest): Promise<DeliveryRow[]> {
  const query = db.selectFrom('webhook_deliveries').selectAll()
    .where('subscription_id', '=', subscriptionId)
    .$if(!!f.status, (qb) => qb.where('status', '=', f.status!))
  return keysetPage(query, page, 'webhook_deliveries').execute()
}

export async function findDelivery(db: DbExecutor, subscriptionId: string, id: string, lock = false): Promise<DeliveryRow | undefined> {
  return db.selectFrom('webhook_deliveries').selectAll()
    .where('id', '=', id).where('subscription_id', '=', subscriptionId)
    .$if(lock, (qb) => qb.forUpdate())
    .executeTakeFirst()
}

export async function deliveryAttempts(db: DbExecutor, deliveryId: string): Promise<AttemptRow[]> {
  return db.selectFrom('webhook_delivery_attempts').selectAll().where('delivery_id', '=', deliveryId).orderBy('attempt').execute()
}

/**
 * A manual retry: the delivery is due now, with a fresh retry schedule (a dead letter becomes
 * pending again). A delivery a worker holds keeps its lease: the retry follows that attempt.
 */
export async function retryDelivery(db: DbExecutor, id: string): Promise<DeliveryRow> {
  return db.updateTable('webhook_deliveries')
    .set({ status: 'pending', next_attempt_at: sql<string>`now()`, schedule_base: sql<number>`attempts`, finished_at: null })
    .where('id', '=', id).returningAll().executeTakeFirstOrThrow()
}
