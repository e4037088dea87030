import { Type, type Static } from 'typebox'
import { ArchivedQuery, Nullable, StringEnum, Timestamp, Uuid, ref } from '../../lib/schema.js'
import { PageQuery, pageEnvelope } from '../../lib/pagination.js'

export const SUBSCRIPTION_STATUSES = ['active', 'paused', 'disabled'] as const
export const DELIVERY_STATUSES = ['pending', 'succeeded', 'dead'] as const
export const MAX_OVERLAP_S = 7 * 86_400

const EXAMPLE_ID = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0d01'
const EXAMPLE_URL = 'https://shop.example.com/hooks/crm'

/** `customer.created`, `customer.*` (every customer event) or `*` (every event). */
const EventTypePattern = Type.String({
  pattern: '^\\*$|^[a-z][a-z_]{0,62}\\.\\*$|^[a-z][a-z_]{0,62}\\.[a-z][a-z_]{0,62}$',
  maxLength: 127,
  example: 'customer.*',
})

const url = Type.String({
  format: 'uri', maxLength: 2048, example: EXAMPLE_URL,
  description: 'http(s) URL the events are POSTed to. Private, loopback, link-local and reserved targets are refused (422 webhook-target-refused) unless allow-listed (WEBHOOK_ALLOWED_HOSTS)',
})
const eventTypes = Type.Array(EventTypePattern, {
  minItems: 1, maxItems: 100, uniqueItems: true,
  description: 'Event types delivered: exact (customer.created), a domain wildcard (customer.*) or * for all',
  example: ['customer.*', 'order.paid'],
})
const description = Nullable(Type.String({ maxLength: 2000, example: 'Shop: keep customer records in sync' }))

const filterFields = {
    entity_ids: Type.Optional(Type.Array(Uuid(), { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'Only events of these entities' })),
    changed_fields: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', maxLength: 63 }), {
      minItems: 1, maxItems: 50, uniqueItems: true, description: 'Only events that set at least one of these fields (a created event sets every field it has)',
    })),
}

export const WebhookFilter = Type.Object(
  filterFields,
  {
    $id: 'WebhookFilter', additionalProperties: false, minProperties: 1,
    description: 'Narrows a subscription beyond its event types; both conditions must hold when both are given',
    example: { changed_fields: ['lifecycle_stage', 'status'] },
  },
)

const filter = Type.Unsafe<Static<typeof WebhookFilter> | null>({ anyOf: [{ $ref: 'WebhookFilter#' }, { type: 'null' }], description: 'Optional filter; null: every event of the types' })

export const WebhookSubscription = Type.Object(
  {
    id: Uuid(),
    url: Type.String(),
    event_types: Type.Array(Type.String()),
    filter,
    status: StringEnum(SUBSCRIPTION_STATUSES, {
      description: 'active: delivered; paused: events queue up and are delivered on resume; disabled: nothing is queued or delivered (set by a client, or by the service after a delivery exhausted its retries: see disabled_reason)',
    }),
    description: Nullable(Type.String()),
    disabled_reason: Nullable(Type.String({ description: 'Why the service disabled the subscription; null when active or paused' })),
    secret_rotated_at: Timestamp({ description: 'When the current signing secret was created' }),
    version: Type.Integer({ description: 'Optimistic concurrency version; also the ETag' }),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    archived_at: Nullable(Timestamp({ description: 'Set by deleteWebhookSubscription: an archived subscription receives nothing until restored' })),
  },
  {
    $id: 'WebhookSubscription',
    description: 'Where and which events are delivered, signed per the Standard Webhooks specification',
    example: {
      id: EXAMPLE_ID, url: EXAMPLE_URL, event_types: ['customer.*', 'order.paid'], filter: null, status: 'active', description: null,
      disabled_reason: null, secret_rotated_at: '2026-12-04T21:30:00.000Z', version: 1, created_at: '2026-12-04T21:30:00.000Z', updated_at: '2026-12-04T21:30:00.000Z', archived_at: null,
    },
  },
)

const SECRET = Type.String({ description: 'The signing secret (whsec_ and base64), shown only in this response', example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' })

export const WebhookSubscriptionCreated = Type.Object(
  { ...WebhookSubscription.properties, secret: SECRET },
  {
    $id: 'WebhookSubscriptionCreated',
    description: 'A new subscription with its signing secret: store the secret now, it is never shown again',
    example: { ...((WebhookSubscription as { example?: object }).example), secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
  },
)

export const WebhookSubscriptionCreate = Type.Object(
  {
    url,
    event_types: eventTypes,
    filter: Type.Optional(ref(WebhookFilter)),
    status: Type.Optional(StringEnum(['active', 'paused'] as const, { default: 'active' })),
    description: Type.Optional(description),
  },
  {
    $id: 'WebhookSubscriptionCreate', additionalProperties: false,
    description: 'A new subscription; it receives the events committed after it',
    example: { url: EXAMPLE_URL, event_types: ['customer.*', 'order.paid'] },
  },
)

export const WebhookSubscriptionPatch = Type.Object(
  {
    url: Type.Optional(url),
    event_types: Type.Optional(eventTypes),
    // Inline, not a $ref: a request body's nullable object must be closed where it stands.
    filter: Type.Optional(Nullable(Type.Object(filterFields, { additionalProperties: false, minProperties: 1, description: 'A new filter; null removes it' }))),
    status: Type.Optional(StringEnum(SUBSCRIPTION_STATUSES)),
    description: Type.Optional(description),
  },
  {
    $id: 'WebhookSubscriptionPatch', additionalProperties: false, minProperties: 1,
    description: 'JSON Merge Patch of a subscription; status active re-enables a disabled one (its pending deliveries resume)',
    example: { status: 'paused' },
  },
)

export const WebhookSubscriptionList = Type.Object(pageEnvelope(ref(WebhookSubscription), 'A page of subscriptions').properties, {
  $id: 'WebhookSubscriptionList', description: 'A page of webhook subscriptions', example: { data: [], next_cursor: null },
})

export const SubscriptionListQuery = Type.Object(
  { ...PageQuery, status: Type.Optional(StringEnum(SUBSCRIPTION_STATUSES)), archived: ArchivedQuery('webhook subscriptions') },
  { additionalProperties: false },
)

export const SecretRotation = Type.Object(
  {
    overlap_seconds: Type.Optional(Type.Integer({
      minimum: 0, maximum: MAX_OVERLAP_S,
      description: 'How long the previous secret keeps signing next to the new one (default WEBHOOK_SECRET_OVERLAP_S, 24 hours); 0 retires it now',
    })),
  },
  { $id: 'SecretRotation', additionalProperties: false, description: 'Options of a secret rotation', example: { overlap_seconds: 3600 } },
)

export const SecretRotated = Type.Object(
  {
    secret: SECRET,
    previous_secret_expires_at: Timestamp({ description: 'Until then deliveries carry a signature with each secret' }),
  },
  { $id: 'SecretRotated', description: 'The new signing secret', example: { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', previous_secret_expires_at: '2026-12-05T21:30:00.000Z' } },
)

export const WebhookDelivery = Type.Object(
  {
    id: Uuid({ description: 'Also the webhook-id header: the same on every attempt, for deduplication' }),
    subscription_id: Uuid(),
    event_id: Uuid(),
    event_type: Type.String({ example: 'customer.updated' }),
    entity_id: Nullable(Uuid()),
    status: StringEnum(DELIVERY_STATUSES, { description: 'pending (queued or retrying), succeeded (a 2xx answer), dead (retries exhausted: a dead letter, retry it by hand)' }),
    attempts: Type.Integer({ minimum: 0 }),
    next_attempt_at: Nullable(Timestamp({ description: 'When a pending delivery is tried next' })),
    last_attempt_at: Nullable(Timestamp()),
    last_status_code: Nullable(Type.Integer({ description: 'The receiver\'s HTTP status of the last attempt; null when it did not answer' })),
    last_latency_ms: Nullable(Type.Integer()),
    last_response: Nullable(Type.String({ description: 'The first 1,000 characters of the last answer\'s body' })),
    last_error: Nullable(Type.String({ description: 'Why the last attempt failed without an answer (timeout, refused connection, refused target)' })),
    created_at: Timestamp(),
    finished_at: Nullable(Timestamp({ description: 'When it succeeded or became a dead letter' })),
  },
  {
    $id: 'WebhookDelivery', description: 'One event sent to one subscription, with the outcome of its last attempt',
    example: {
      id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0e01', subscription_id: EXAMPLE_ID, event_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0f01', event_type: 'customer.updated',
      entity_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', status: 'succeeded', attempts: 1, next_attempt_at: null, last_attempt_at: '2026-12-04T21:30:00.120Z',
      last_status_code: 204, last_latency_ms: 38, last_response: '', last_error: null, created_at: '2026-12-04T21:30:00.050Z', finished_at: '2026-12-04T21:30:00.158Z',
    },
  },
)

export const DeliveryAttempt = Type.Object(
  {
    attempt: Type.Integer({ minimum: 1 }),
    started_at: Timestamp(),
    status_code: Nullable(Type.Integer()),
    latency_ms: Type.Integer(),
    response_excerpt: Nullable(Type.String()),
    error: Nullable(Type.String()),
  },
  { $id: 'DeliveryAttempt', description: 'One HTTP request of a delivery', example: { attempt: 1, started_at: '2026-12-04T21:30:00.120Z', status_code: 204, latency_ms: 38, response_excerpt: '', error: null } },
)

export const WebhookDeliveryDetail = Type.Object(
  { ...WebhookDelivery.properties, attempts_log: Type.Array(ref(DeliveryAttempt), { description: 'Every attempt, oldest first' }) },
  { $id: 'WebhookDeliveryDetail', description: 'A delivery with all its attempts', example: { ...((WebhookDelivery as { example?: object }).example), attempts_log: [(DeliveryAttempt as { example?: object }).example] } },
)

export const WebhookDeliveryList = Type.Object(pageEnvelope(ref(WebhookDelivery), 'A page of deliveries').properties, {
  $id: 'WebhookDeliveryList', description: 'A subscription\'s delivery log, newest first', example: { data: [], next_cursor: null },
})

export const DeliveryListQuery = Type.Object(
  { ...PageQuery, status: Type.Optional(StringEnum(DELIVERY_STATUSES)) },
  { additionalProperties: false },
)

export const DeliveryParams = Type.Object(
  { id: Uuid({ description: 'Subscription id' }), delivery_id: Uuid({ description: 'Delivery id (the webhook-id)' }) },
  { additionalProperties: false },
)

export const WebhookReplay = Type.Object(
  {
    position: Type.String({
      minLength: 1, maxLength: 64,
      description: 'A change-feed position (an event\'s position from GET /v1/events, or a next cursor): every matching event after it is delivered again, as new deliveries with new webhook-ids',
      example: 'ZTEuNzUxLjEy',
    }),
  },
  { $id: 'WebhookReplay', additionalProperties: false, description: 'Where a replay starts (after this position)', example: { position: 'ZTEuNzUxLjEy' } },
)

export const WebhookReplayAccepted = Type.Object(
  {
    position: Type.String(),
    generation: Type.Integer({ description: 'Counts the subscription\'s replays' }),
  },
  { $id: 'WebhookReplayAccepted', description: 'The replay is queued: the workers fan the events out again from the position', example: { position: 'ZTEuNzUxLjEy', generation: 1 } },
)

export type WebhookSubscriptionDto = Static<typeof WebhookSubscription>
export type WebhookSubscriptionCreateBody = Static<typeof WebhookSubscriptionCreate>
export type WebhookSubscriptionPatchBody = Static<typeof WebhookSubscriptionPatch>
export type WebhookFilterT = Static<typeof WebhookFilter>
export type WebhookDeliveryDto = Static<typeof WebhookDelivery>

export const webhookSchemas = [
  WebhookFilter, WebhookSubscription, WebhookSubscriptionCreated, WebhookSubscriptionCreate, WebhookSubscriptionPatch, WebhookSubscriptionList,
  SecretRotation, SecretRotated, WebhookDelivery, DeliveryAttempt, WebhookDeliveryDetail, WebhookDeliveryList, WebhookReplay, WebhookReplayAccepted,
]
