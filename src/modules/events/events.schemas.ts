import { Type, type Static } from 'typebox'
import { Nullable, Timestamp, Uuid, ref } from '../../lib/schema.js'
import { DEFAULT_LIMIT, MAX_LIMIT } from '../../lib/pagination.js'

export const POSITION_EXAMPLE = 'ZTEuNzQxLjEy'
const Position = (description: string) =>
  Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description, example: POSITION_EXAMPLE })

export const EVENT_TYPE_PATTERN = '^[a-z][a-z_]{0,62}\\.[a-z][a-z_]{0,62}$'

export const Event = Type.Object(
  {
    id: Uuid({ description: 'The event\'s id: the same event delivered twice (a replay, a webhook retry) has the same id' }),
    position: Position('The event\'s place in the change feed: pass it as `after` to read what follows'),
    type: Type.String({ pattern: EVENT_TYPE_PATTERN, description: '`<entity>.<what happened>`: customer.created/updated/archived/merged/restored, contact_point.created/updated/deleted, order.created/updated/paid/fulfilled/refunded/cancelled/archived/restored, interaction.*, feedback.created/updated/complaint_opened/complaint_resolved/complaint_closed/complaint_reopened, segment.created/updated/member_entered/member_left, import.created/updated/succeeded/failed', example: 'customer.updated' }),
    occurred_at: Timestamp({ description: 'When the transaction that made the change started' }),
    actor: Type.String({ description: 'The token subject that made the change (system:<job> for background jobs)', example: 'user:42' }),
    request_id: Nullable(Type.String({ description: 'The server\'s id of the API request that made the change', example: 'b7c1e0a4-2f7d-4d7e-9a51-0f3f0c6c1a2e' })),
    correlation_id: Nullable(Type.String({ description: 'The id the client gave that request, if any', example: 'checkout-7f3a' })),
    entity_type: Type.String({ pattern: '^[a-z][a-z_]{0,62}$', description: 'What kind of record changed', example: 'customer' }),
    entity_id: Uuid({ description: 'The changed record\'s id (for segment.member_*: the segment\'s)' }),
    version: Nullable(Type.Integer({ minimum: 1, description: 'The record\'s version after the change (its ETag); null for membership events', example: 4 })),
    changes: Type.Object({}, {
      additionalProperties: true,
      description: 'The fields the change set, with their new values (every field for a creation, none for a deletion; customer_id for membership events); personal data masked unless the token has pii:read',
    }),
  },
  {
    $id: 'Event',
    description: 'A committed change, as the change feed and webhooks carry it',
    example: {
      id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0c01', position: POSITION_EXAMPLE, type: 'customer.updated', occurred_at: '2026-11-22T08:30:00.123Z',
      actor: 'user:42', request_id: 'b7c1e0a4-2f7d-4d7e-9a51-0f3f0c6c1a2e', correlation_id: null, entity_type: 'customer',
      entity_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', version: 4, changes: { job_title: 'Head of purchasing', updated_at: '2026-11-22T08:30:00.123Z' },
    },
  },
)

export const EventFeed = Type.Object(
  {
    data: Type.Array(ref(Event), { description: 'Events after the requested position, oldest first' }),
    next_position: Position('Where to continue: pass it as `after` in the next read (the same position when nothing new was found)'),
  },
  {
    $id: 'EventFeed',
    description: 'A page of the change feed',
    example: { data: [], next_position: POSITION_EXAMPLE },
  },
)

export const MAX_WAIT_S = 20
export const DEFAULT_FEED_LIMIT = DEFAULT_LIMIT
export const MAX_FEED_LIMIT = MAX_LIMIT

export const EventFeedQuery = Type.Object(
  {
    after: Type.Optional(Position('Return events after this position (an event\'s `position` or a `next_position`); absent: from the oldest retained event')),
    types: Type.Optional(Type.String({
      maxLength: 2000,
      pattern: '^[a-z][a-z_.,]*$',
      description: 'Comma-separated event types to return (all when absent); each is `<entity>.<what happened>`',
      example: 'customer.created,order.paid',
    })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_FEED_LIMIT, default: DEFAULT_FEED_LIMIT, description: `At most this many events (1..${MAX_FEED_LIMIT}, default ${DEFAULT_FEED_LIMIT})`, example: 200 })),
    wait: Type.Optional(Type.Integer({
      minimum: 0, maximum: MAX_WAIT_S, default: 0,
      description: `Long polling: when nothing is new, wait up to this many seconds (bounded by the request deadline) for an event before answering an empty page`,
      example: 10,
    })),
  },
  { additionalProperties: false },
)

export type EventDto = Static<typeof Event>
export type EventFeedDto = Static<typeof EventFeed>
export type EventFeedQueryT = Static<typeof EventFeedQuery>

export const eventSchemas = [Event, EventFeed]
