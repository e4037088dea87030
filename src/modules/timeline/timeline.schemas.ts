import { Type, type Static } from 'typebox'
import { PageQuery, pageEnvelope } from '../../lib/pagination.js'
import { StringEnum, Timestamp, Uuid, ref } from '../../lib/schema.js'

export const TIMELINE_TYPES = ['interaction', 'order', 'feedback', 'profile_change'] as const
export type TimelineType = (typeof TIMELINE_TYPES)[number]

export const TimelineItem = Type.Object(
  {
    type: StringEnum(TIMELINE_TYPES),
    id: Uuid({ description: 'Id of the interaction, order, feedback or audit event' }),
    occurred_at: Timestamp({ description: 'occurred_at, ordered_at, submitted_at or the audit time' }),
    summary: Type.Object({}, { additionalProperties: true, description: 'A few fields of the item (never PII values); fetch the item for the rest' }),
  },
  {
    $id: 'TimelineItem',
    description: 'One event in a customer\'s history',
    example: { type: 'order', id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a13', occurred_at: '2026-11-20T09:00:00Z', summary: { order_number: 'ORD-00000042', status: 'paid', total: '129.90', currency: 'CNY' } },
  },
)

export const TimelinePage = Type.Object(pageEnvelope(ref(TimelineItem), 'A page of timeline items').properties, {
  $id: 'TimelinePage',
  description: 'A customer\'s interactions, orders, feedback and profile changes, newest first',
  example: { data: [], next_cursor: null },
})

export const TimelineQuery = Type.Object(
  {
    ...PageQuery,
    types: Type.Optional(Type.String({ pattern: '^[a-z_]+(,[a-z_]+)*$', maxLength: 100, description: `Comma-separated subset of ${TIMELINE_TYPES.join(', ')}`, example: 'order,interaction' })),
  },
  { additionalProperties: false },
)

export type TimelineItemDto = Static<typeof TimelineItem>
export const timelineSchemas = [TimelineItem, TimelinePage]
