import { Type, type Static } from 'typebox'
import { PageQuery, pageEnvelope } from '../../lib/pagination.js'
import { StringEnum, Timestamp, Uuid, ref } from '../../lib/schema.js'

export const TIMELINE_TYPES = ['interaction', 'order', 'feedback', 'profile_change'] as const
export type TimelineType = (typeof TIMELINE_TYPES)[number]

const nullableString = (description: string) => Type.Union([Type.String(), Type.Null()], { description })

/** What each type's summary holds: a few fields of the item, never personal values. */
const SUMMARIES = {
  interaction: Type.Object({
    channel: Type.String(), direction: Type.String(), subject: nullableString('The interaction\'s subject'), outcome: nullableString('How it ended'),
  }, { additionalProperties: false }),
  order: Type.Object({
    order_number: Type.String(), status: Type.String(), total: Type.String({ description: 'Decimal string in the order\'s currency' }), currency: Type.String(),
  }, { additionalProperties: false }),
  feedback: Type.Object({
    kind: Type.String(), score: Type.Union([Type.Integer(), Type.Null()]), status: nullableString('The complaint\'s status'), subject: nullableString('The feedback\'s subject'),
  }, { additionalProperties: false }),
  profile_change: Type.Object({
    action: Type.String({ description: 'insert, update or delete' }), actor: Type.String(),
    changed_fields: Type.Array(Type.String(), { description: 'The names of the fields that changed, never their values' }),
  }, { additionalProperties: false }),
} as const

const SUMMARY_IDS = { interaction: 'TimelineInteraction', order: 'TimelineOrder', feedback: 'TimelineFeedback', profile_change: 'TimelineProfileChange' } as const

const EXAMPLES: Record<TimelineType, Record<string, unknown>> = {
  interaction: { channel: 'phone', direction: 'inbound', subject: 'Delivery question', outcome: 'resolved' },
  order: { order_number: 'ORD-00000042', status: 'paid', total: '129.90', currency: 'CNY' },
  feedback: { kind: 'nps', score: 9, status: null, subject: null },
  profile_change: { action: 'update', actor: 'user:agent-7', changed_fields: ['job_title', 'tags'] },
}

const timelineVariant = <K extends TimelineType>(type: K, description: string) =>
  Type.Object(
    {
      type: StringEnum([type] as const),
      id: Uuid({ description: 'Id of the interaction, order, feedback or audit event' }),
      occurred_at: Timestamp({ description: 'occurred_at, ordered_at, submitted_at or the audit time' }),
      summary: SUMMARIES[type],
    },
    {
      $id: SUMMARY_IDS[type], additionalProperties: false, description,
      example: { type, id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a13', occurred_at: '2026-11-20T09:00:00.000Z', summary: EXAMPLES[type] },
    },
  )

export const TimelineInteraction = timelineVariant('interaction', 'An interaction in a customer\'s history')
export const TimelineOrder = timelineVariant('order', 'An order in a customer\'s history')
export const TimelineFeedback = timelineVariant('feedback', 'Feedback in a customer\'s history')
export const TimelineProfileChange = timelineVariant('profile_change', 'A change to the customer\'s profile')
const VARIANTS = [TimelineInteraction, TimelineOrder, TimelineFeedback, TimelineProfileChange]

/** One event in a customer's history: `type` decides the shape of `summary`. */
export const TimelineItem = Type.Unsafe<Static<typeof TimelineInteraction> | Static<typeof TimelineOrder> | Static<typeof TimelineFeedback> | Static<typeof TimelineProfileChange>>({
  $id: 'TimelineItem',
  description: 'One event in a customer\'s history; `type` decides the shape of `summary`',
  oneOf: Object.values(SUMMARY_IDS).map((id) => ({ $ref: `${id}#` })),
  discriminator: {
    propertyName: 'type',
    mapping: Object.fromEntries(Object.entries(SUMMARY_IDS).map(([type, id]) => [type, `#/components/schemas/${id}`])),
  },
  example: { type: 'order', id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a13', occurred_at: '2026-11-20T09:00:00Z', summary: { order_number: 'ORD-00000042', status: 'paid', total: '129.90', currency: 'CNY' } },
})

export const TimelinePage = Type.Object(pageEnvelope(ref(TimelineItem), 'A page of timeline items').properties, {
  $id: 'TimelinePage',
  description: 'A customer\'s interactions, orders, feedback and profile changes, newest first',
  example: { data: [], next_cursor: null },
})

export const TimelineQuery = Type.Object(
  {
    ...PageQuery,
    types: Type.Optional(Type.String({ pattern: '^[a-z_,]+$', maxLength: 100, description: `Comma-separated subset of ${TIMELINE_TYPES.join(', ')}`, example: 'order,interaction' })),
  },
  { additionalProperties: false },
)

export type TimelineItemDto = Static<typeof TimelineItem>
export const timelineSchemas = [...VARIANTS, TimelineItem, TimelinePage]
