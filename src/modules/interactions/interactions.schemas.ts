import { Type, type Static } from 'typebox'
import { batchBody, batchResult } from '../../lib/batch.js'
import { PageQuery, pageEnvelope, type SortFields } from '../../lib/pagination.js'
import { DateOnly, Nullable, StringEnum, Timestamp, Uuid, ref, ArchivedQuery } from '../../lib/schema.js'

// The enumerations are the check constraints of the interactions migration.
export const INTERACTION_CHANNELS = ['phone', 'email', 'sms', 'chat', 'meeting', 'visit', 'event', 'social', 'other'] as const
export const INTERACTION_DIRECTIONS = ['inbound', 'outbound', 'internal'] as const
export const INTERACTION_OUTCOMES = [
  'completed', 'no_answer', 'voicemail', 'left_message', 'follow_up', 'resolved', 'escalated', 'not_interested', 'other',
] as const
/**
 * Sortable fields: each leads an index of the table (with id as the tie-breaker). follow_up_on
 * may be null, which keyset cursors cannot order, so it sorts only the follow-up work list
 * (follow_up_due=true, where it is never null; the partial index interactions_follow_up_due_idx).
 */
export const INTERACTION_SORTS = { occurred_at: 'timestamp', follow_up_on: 'date' } as const satisfies SortFields

const text = (maxLength: number, example: string, description: string) => Type.String({ minLength: 1, maxLength, example, description })

const interactionFields = {
  external_ref: Type.Optional(Nullable(text(200, 'cc-call-778812', 'Id in the source system (call centre, mail tool); POST with a known external_ref updates that interaction'))),
  channel: StringEnum(INTERACTION_CHANNELS, { description: 'How the contact happened', example: 'phone' }),
  direction: Type.Optional(StringEnum(INTERACTION_DIRECTIONS, { description: 'inbound (the customer reached out, default), outbound (we did) or internal (a note)', example: 'outbound' })),
  subject: Type.Optional(Nullable(text(300, 'Delivery date for order ORD-00000042', 'One-line summary'))),
  notes: Type.Optional(Nullable(Type.String({ maxLength: 10_000, example: 'Customer asked to deliver after 6 pm.', description: 'Free text, up to 10,000 characters' }))),
  occurred_at: Type.Optional(Timestamp({ description: 'When it happened; default now' })),
  duration_seconds: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 604_800, example: 185, description: 'Length in seconds (at most 7 days)' }))),
  outcome: Type.Optional(Nullable(StringEnum(INTERACTION_OUTCOMES, { description: 'How it ended', example: 'follow_up' }))),
  agent: Type.Optional(Nullable(text(200, 'agent:li.wei', 'Who handled it on our side'))),
  follow_up_on: Type.Optional(Nullable(DateOnly({ description: 'Date by which to follow up; due from that day on (UTC) until follow_up_done', example: '2026-11-25' }))),
  follow_up_done: Type.Optional(Type.Boolean({ description: 'Whether the follow-up was done; default false', example: false })),
  order_id: Type.Optional(Nullable(Uuid({ description: 'An order of the same customer this interaction is about (422 otherwise)', example: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a21' }))),
}

const CREATE_EXAMPLE = {
  external_ref: 'cc-call-778812', customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', channel: 'phone', direction: 'outbound',
  subject: 'Delivery date for order ORD-00000042', notes: 'Customer asked to deliver after 6 pm.', occurred_at: '2026-11-23T09:15:00Z',
  duration_seconds: 185, outcome: 'follow_up', agent: 'agent:li.wei', follow_up_on: '2026-11-25', order_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a21',
}

export const InteractionCreate = Type.Object(
  { ...interactionFields, customer_id: Uuid({ description: 'The customer (existing and not archived; 422 otherwise)' }) },
  {
    $id: 'InteractionCreate',
    additionalProperties: false,
    description: 'A new interaction. With a known external_ref it updates that interaction instead (as updateInteraction would).',
    example: CREATE_EXAMPLE,
  },
)

export const InteractionPatch = Type.Object(
  { ...interactionFields, channel: Type.Optional(interactionFields.channel) },
  {
    $id: 'InteractionPatch',
    additionalProperties: false,
    minProperties: 1,
    description: 'JSON Merge Patch of an interaction: null clears a field, absent fields are untouched. The customer cannot change.',
    example: { follow_up_done: true, outcome: 'resolved', notes: null },
  },
)

const INTERACTION_EXAMPLE = {
  id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a51', ...CREATE_EXAMPLE, occurred_at: '2026-11-23T09:15:00.000Z',
  follow_up_done: false, follow_up_due: false, version: 1,
  created_at: '2026-11-23T09:20:01.000Z', updated_at: '2026-11-23T09:20:01.000Z', archived_at: null,
}

export const Interaction = Type.Object(
  {
    id: Uuid(),
    external_ref: Nullable(Type.String()),
    customer_id: Uuid(),
    channel: StringEnum(INTERACTION_CHANNELS),
    direction: StringEnum(INTERACTION_DIRECTIONS),
    subject: Nullable(Type.String()),
    notes: Nullable(Type.String()),
    occurred_at: Timestamp(),
    duration_seconds: Nullable(Type.Integer()),
    outcome: Nullable(StringEnum(INTERACTION_OUTCOMES)),
    agent: Nullable(Type.String()),
    follow_up_on: Nullable(Type.String({ format: 'date' })),
    follow_up_done: Type.Boolean(),
    follow_up_due: Type.Boolean({ description: 'follow_up_on is today (UTC) or earlier and follow_up_done is false' }),
    order_id: Nullable(Uuid()),
    version: Type.Integer({ description: 'Optimistic concurrency version; also the ETag' }),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    archived_at: Nullable(Timestamp()),
  },
  { $id: 'Interaction', description: 'A contact with a customer: a call, email, message, meeting, visit, event or social exchange', example: INTERACTION_EXAMPLE },
)

export const InteractionList = Type.Object(pageEnvelope(ref(Interaction), 'A page of interactions').properties, {
  $id: 'InteractionList',
  description: 'A page of interactions',
  example: { data: [INTERACTION_EXAMPLE], next_cursor: null },
})

export const InteractionBatch = batchBody(ref(InteractionCreate), {
  $id: 'InteractionBatch',
  description: 'Up to 1,000 interactions to create or update (by external_ref), all or nothing',
  example: { items: [CREATE_EXAMPLE] },
})

export const InteractionBatchResult = batchResult({
  $id: 'InteractionBatchResult',
  description: 'One result per interaction, in request order: 201 created, 200 updated by external_ref',
  example: { items: [{ index: 0, status: 201, id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a51' }] },
})

const listFilters = {
  ...PageQuery,
  sort: Type.Optional(Type.String({
    maxLength: 100, example: '-occurred_at',
    description: `Comma-separated of ${Object.keys(INTERACTION_SORTS).join(', ')}; prefix - for descending. Default -occurred_at. follow_up_on only with follow_up_due=true`,
  })),
  channel: Type.Optional(StringEnum(INTERACTION_CHANNELS)),
  direction: Type.Optional(StringEnum(INTERACTION_DIRECTIONS)),
  order_id: Type.Optional(Uuid({ description: 'Only interactions about this order' })),
  occurred_after: Type.Optional(Timestamp({ description: 'occurred_at >= this' })),
  occurred_before: Type.Optional(Timestamp({ description: 'occurred_at < this' })),
  follow_up_due: Type.Optional(Type.Boolean({ description: 'true: only follow-ups due (follow_up_on today (UTC) or earlier, not done); false: only the others' })),
  archived: ArchivedQuery('interactions'),
}

export const InteractionListQuery = Type.Object({ ...listFilters, customer_id: Type.Optional(Uuid()) }, { additionalProperties: false })
export const CustomerInteractionListQuery = Type.Object(listFilters, { additionalProperties: false })

export type InteractionCreateBody = Static<typeof InteractionCreate>
export type InteractionPatchBody = Static<typeof InteractionPatch>
export type InteractionDto = Static<typeof Interaction>
export type InteractionListQueryT = Static<typeof InteractionListQuery>

/** Named schemas of this domain, registered once by the routes plugin. */
export const interactionSchemas = [InteractionCreate, InteractionPatch, Interaction, InteractionList, InteractionBatch, InteractionBatchResult]
