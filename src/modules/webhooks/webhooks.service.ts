import type { DbExecutor } from '../../db/database.js'
import { maskAuditSnapshot } from '../../lib/pii.js'
import { badRequest, HttpProblem, pointer } from '../../lib/problem.js'
import { decodePosition, encodePosition, feedHead, feedHorizon, positionBefore, type EventRecord } from '../events/index.js'
import * as repo from './webhooks.repository.js'
import type { SubscriptionRow } from './webhooks.repository.js'
import type {
  WebhookDeliveryDto, WebhookFilterT, WebhookSubscriptionCreateBody, WebhookSubscriptionDto, WebhookSubscriptionPatchBody,
} from './webhooks.schemas.js'
import { newSecret } from './webhooks.signer.js'
import { refusedTarget, type TargetPolicy } from './webhooks.ssrf.js'

export interface WebhookSettings {
  policy: TargetPolicy
  /** Default overlap of a rotated secret with its successor, in seconds. */
  secretOverlapSeconds: number
}

/** Does a subscription with these types and filter receive this event? */
export function matches(e: Pick<EventRecord, 'type' | 'entity_id' | 'changes'>, types: readonly string[], filter: unknown): boolean {
  const typed = types.some((t) => t === '*' || t === e.type || (t.endsWith('.*') && e.type.startsWith(t.slice(0, -1))))
  if (!typed) return false
  const f = filter as WebhookFilterT | null
  if (!f) return true
  if (f.entity_ids && !f.entity_ids.includes(e.entity_id)) return false
  if (f.changed_fields && !f.changed_fields.some((field) => Object.hasOwn(e.changes, field))) return false
  return true
}

/**
 * A delivery's body, fixed when it is queued (every attempt signs the same bytes): the Standard
 * Webhooks envelope (type, timestamp, data) around the event as the feed shows it to a reader
 * without the pii:read grant (personal fields masked, lib/pii.ts).
 */
export function eventPayload(e: EventRecord): string {
  return JSON.stringify({
    type: e.type,
    timestamp: e.occurred_at,
    data: { ...e, position: encodePosition(e.position), changes: maskAuditSnapshot(e.changes) },
  })
}

export function toSubscriptionDto(row: SubscriptionRow): WebhookSubscriptionDto {
  return {
    id: row.id,
    url: row.url,
    event_types: row.event_types,
    filter: (row.filter ?? null) as WebhookSubscriptionDto['filter'],
    status: row.status as WebhookSubscriptionDto['status'],
    description: row.description,
    disabled_reason: row.disabled_reason,
    secret_rotated_at: row.secret_rotated_at,
    version: row.version,
    created_at: row.created_at,
    updated_at: row.updated_at,
    archived_at: row.archived_at,
  }
}

export function toDeliveryDto(row: repo.DeliveryRow): WebhookDeliveryDto {
  return {
    id: row.id,
    subscription_id: row.subscription_id,
    event_id: row.event_id,
    event_type: row.event_type,
    entity_id: row.entity_id,
    status: row.status as WebhookDeliveryDto['status'],
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? row.next_attempt_at : null,
    last_attempt_at: row.last_attempt_at,
    last_status_code: row.last_status_code,
    last_latency_ms: row.last_latency_ms,
    last_response: row.last_response,
    last_error: row.last_error,
    created_at: row.created_at,
    finished_at: row.finished_at,
  }
}

/** 422 webhook-target-refused on /url when the SSRF guard refuses the URL. */
async function checkTarget(url: string, policy: TargetPolicy): Promise<void> {
  const why = await refusedTarget(url, policy)
  if (!why) return
  throw new HttpProblem({
    status: 422, title: 'Unprocessable Content', code: 'webhook-target-refused',
    detail: `The webhook URL ${why}. Private, loopback, link-local and reserved targets are refused unless allow-listed (WEBHOOK_ALLOWED_HOSTS).`,
    errors: [{ pointer: pointer('url'), message: why }],
  })
}

/** A new subscription, its first secret, and its place in the feed: it receives what commits after it. */
export async function createSubscription(db: DbExecutor, body: WebhookSubscriptionCreateBody, settings: WebhookSettings) {
  await checkTarget(body.url, settings.policy)
  const row = await repo.insertSubscription(db, {
    url: body.url, event_types: body.event_types, filter: body.filter ?? null, status: body.status ?? 'active', description: body.description ?? null,
  })
  const secret = newSecret()
  await repo.rotateSecret(db, row.id, secret, null)
  await repo.setCursor(db, row.id, await feedHead(db), false)
  return { row, secret }
}

export async function patchSubscription(db: DbExecutor, id: string, body: WebhookSubscriptionPatchBody, expectedVersion: number | undefined, settings: WebhookSettings) {
  const current = await repo.lockSubscription(db, id, expectedVersion)
  if (body.url !== undefined && body.url !== current.url) await checkTarget(body.url, settings.policy)
  const changes: Record<string, unknown> = { ...body }
  // A client's status replaces the service's verdict.
  if (body.status !== undefined) changes.disabled_reason = null
  return repo.updateSubscription(db, id, changes)
}

export async function rotateSecret(db: DbExecutor, id: string, overlapSeconds: number | undefined, expectedVersion: number | undefined, settings: WebhookSettings) {
  await repo.lockSubscription(db, id, expectedVersion)
  const secret = newSecret()
  const previousExpiresAt = new Date(Date.now() + (overlapSeconds ?? settings.secretOverlapSeconds) * 1000)
  await repo.rotateSecret(db, id, secret, previousExpiresAt)
  const row = await repo.updateSubscription(db, id, { secret_rotated_at: new Date().toISOString() })
  return { row, secret, previous_secret_expires_at: previousExpiresAt.toISOString() }
}

export async function retryDelivery(db: DbExecutor, subscriptionId: string, deliveryId: string) {
  await repo.lockSubscription(db, subscriptionId)
  const delivery = await repo.findDelivery(db, subscriptionId, deliveryId, true)
  if (!delivery) throw new HttpProblem({ status: 404, title: 'Not Found', detail: 'No delivery with that identifier for this subscription.' })
  await repo.recordOperation(db, { subscription_id: subscriptionId, kind: 'retry', delivery_id: deliveryId })
  return repo.retryDelivery(db, deliveryId)
}

/** Moves the subscription's fan-out back to `from`; the events after it become new deliveries. */
export async function replay(db: DbExecutor, subscriptionId: string, from: string) {
  const position = decodePosition(from)
  if (!position) throw badRequest('position is not a change-feed position.', [{ pointer: pointer('position'), message: 'must be a position from GET /v1/events' }])
  await repo.lockSubscription(db, subscriptionId)
  const horizon = await feedHorizon(db)
  if (horizon && positionBefore(position, horizon)) {
    throw new HttpProblem({
      status: 410, title: 'Gone', code: 'position-expired',
      detail: 'The events after that position are past the feed\'s retention; replay from a later one.',
      errors: [{ pointer: pointer('position'), message: 'before the retention horizon' }],
    })
  }
  await repo.recordOperation(db, { subscription_id: subscriptionId, kind: 'replay', from_position: from })
  const generation = await repo.setCursor(db, subscriptionId, position, true)
  return { position: from, generation }
}
