import { Type, type Static } from 'typebox'
import { PageQuery, pageEnvelope, type SortFields } from '../../lib/pagination.js'
import { Nullable, StringEnum, Timestamp, Uuid, ref, ArchivedQuery } from '../../lib/schema.js'

export const FEEDBACK_KINDS = ['survey', 'complaint', 'suggestion', 'review', 'praise'] as const
export const SURVEY_TYPES = ['csat', 'nps'] as const
export const FEEDBACK_CHANNELS = ['phone', 'email', 'sms', 'chat', 'meeting', 'visit', 'event', 'social', 'web', 'app', 'store', 'other'] as const
export const COMPLAINT_STATUSES = ['open', 'in_progress', 'resolved', 'closed'] as const
export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const
export const FEEDBACK_SORTS = { submitted_at: 'timestamp', created_at: 'timestamp', updated_at: 'timestamp' } as const satisfies SortFields

export type FeedbackKind = (typeof FEEDBACK_KINDS)[number]
export type SurveyType = (typeof SURVEY_TYPES)[number]
export type FeedbackChannel = (typeof FEEDBACK_CHANNELS)[number]
export type ComplaintStatus = (typeof COMPLAINT_STATUSES)[number]
export type Priority = (typeof PRIORITIES)[number]

const text = (maxLength: number, example: string, description?: string) =>
  Type.String({ minLength: 1, maxLength, example, ...(description ? { description } : {}) })

/** Fields a client may change after creation (kind, survey_type and customer_id are fixed). */
const mutableFields = {
  external_ref: Type.Optional(Nullable(text(200, 'survey-tool-88123', 'Id in the source system; POST with a known external_ref updates that feedback'))),
  score: Type.Optional(Nullable(Type.Integer({
    minimum: 0, maximum: 10, example: 9,
    description: 'Surveys: required, csat 1–5, nps 0–10. Reviews: optional, 1–5. Other kinds: none',
  }))),
  subject: Type.Optional(Nullable(text(300, 'Parcel arrived damaged'))),
  body: Type.Optional(Nullable(Type.String({ maxLength: 10000, example: 'The box was crushed and two cups were broken.' }))),
  channel: Type.Optional(Nullable(StringEnum(FEEDBACK_CHANNELS, { description: 'Where the feedback was given' }))),
  order_id: Type.Optional(Nullable(Uuid({ description: 'An order of the same customer this feedback is about' }))),
  interaction_id: Type.Optional(Nullable(Uuid({ description: 'An interaction of the same customer in which it was given' }))),
  status: Type.Optional(StringEnum(COMPLAINT_STATUSES, {
    description: 'Complaints only. On create: open (default), in_progress, resolved or closed. On update: a legal transition (see updateFeedback)',
  })),
  priority: Type.Optional(StringEnum(PRIORITIES, { description: 'Complaints only; default normal' })),
  assignee: Type.Optional(Nullable(text(200, 'agent:li.wei', 'Who handles it (any kind)'))),
  sla_due_at: Type.Optional(Timestamp({
    description: 'Complaints only. Default: submitted_at + the priority\'s hours (urgent 4, high 24, normal 72, low 168)',
  })),
  resolution_note: Type.Optional(Nullable(Type.String({
    minLength: 1, maxLength: 4000, example: 'Replacement cups sent, courier claim filed.',
    description: 'Complaints only; required in the request that moves a complaint to resolved',
  }))),
  submitted_at: Type.Optional(Timestamp({ description: 'When the customer gave the feedback; default now' })),
}

const CREATE_EXAMPLE = {
  external_ref: 'desk-ticket-5521', customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', kind: 'complaint', subject: 'Parcel arrived damaged',
  body: 'The box was crushed and two cups were broken.', channel: 'email', order_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a21', priority: 'high',
}

export const FeedbackCreate = Type.Object(
  {
    customer_id: Uuid({ description: 'The customer who gave the feedback' }),
    kind: StringEnum(FEEDBACK_KINDS),
    survey_type: Type.Optional(Nullable(StringEnum(SURVEY_TYPES, { description: 'Required for surveys, refused for the other kinds' }))),
    ...mutableFields,
  },
  {
    $id: 'FeedbackCreate',
    additionalProperties: false,
    description: 'New feedback. Surveys carry survey_type and score; complaints carry the workflow fields (status, priority, sla_due_at, resolution_note). ' +
      'With a known external_ref it updates that feedback instead (same rules as updateFeedback).',
    example: CREATE_EXAMPLE,
  },
)

export const FeedbackPatch = Type.Object(mutableFields, {
  $id: 'FeedbackPatch',
  additionalProperties: false,
  minProperties: 1,
  description: 'JSON Merge Patch of feedback. kind, survey_type and customer_id cannot change; status follows the complaint workflow.',
  example: { status: 'resolved', resolution_note: 'Replacement cups sent, courier claim filed.' },
})

const FEEDBACK_EXAMPLE = {
  id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a51', external_ref: 'desk-ticket-5521', customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11',
  kind: 'complaint', survey_type: null, score: null, subject: 'Parcel arrived damaged', body: 'The box was crushed and two cups were broken.',
  channel: 'email', order_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a21', interaction_id: null, status: 'open', priority: 'high',
  assignee: 'agent:li.wei', sla_due_at: '2026-11-23T08:30:00.000Z', sla_breached: false, resolution_note: null, resolved_at: null,
  submitted_at: '2026-11-22T08:30:00.000Z', version: 1, created_at: '2026-11-22T08:30:01.000Z', updated_at: '2026-11-22T08:30:01.000Z',
  archived_at: null,
}

export const Feedback = Type.Object(
  {
    id: Uuid(),
    external_ref: Nullable(Type.String()),
    customer_id: Uuid(),
    kind: StringEnum(FEEDBACK_KINDS),
    survey_type: Nullable(StringEnum(SURVEY_TYPES)),
    score: Nullable(Type.Integer()),
    subject: Nullable(Type.String()),
    body: Nullable(Type.String()),
    channel: Nullable(StringEnum(FEEDBACK_CHANNELS)),
    order_id: Nullable(Uuid()),
    interaction_id: Nullable(Uuid()),
    status: Nullable(StringEnum(COMPLAINT_STATUSES, { description: 'Complaints only' })),
    priority: Nullable(StringEnum(PRIORITIES, { description: 'Complaints only' })),
    assignee: Nullable(Type.String()),
    sla_due_at: Nullable(Timestamp({ description: 'Complaints only' })),
    sla_breached: Nullable(Type.Boolean({
      description: 'Complaints only (null otherwise): open or in_progress past sla_due_at, or resolved after sla_due_at',
    })),
    resolution_note: Nullable(Type.String()),
    resolved_at: Nullable(Timestamp({ description: 'Set by the server when the complaint is resolved; cleared when it is reopened' })),
    submitted_at: Timestamp(),
    version: Type.Integer({ description: 'Optimistic concurrency version; also the ETag' }),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    archived_at: Nullable(Timestamp()),
  },
  { $id: 'Feedback', description: 'A survey answer, complaint, suggestion, review or praise given by a customer', example: FEEDBACK_EXAMPLE },
)

export const FeedbackList = Type.Object(pageEnvelope(ref(Feedback), 'A page of feedback').properties, {
  $id: 'FeedbackList',
  description: 'A page of feedback',
  example: { data: [FEEDBACK_EXAMPLE], next_cursor: null },
})

const listFilters = {
  ...PageQuery,
  sort: Type.Optional(Type.String({
    maxLength: 100, description: `Comma-separated of ${Object.keys(FEEDBACK_SORTS).join(', ')}; prefix - for descending. Default -submitted_at`, example: '-submitted_at',
  })),
  kind: Type.Optional(StringEnum(FEEDBACK_KINDS)),
  survey_type: Type.Optional(StringEnum(SURVEY_TYPES)),
  status: Type.Optional(StringEnum(COMPLAINT_STATUSES)),
  priority: Type.Optional(StringEnum(PRIORITIES)),
  assignee: Type.Optional(Type.String({ minLength: 1, maxLength: 200, example: 'agent:li.wei' })),
  submitted_after: Type.Optional(Timestamp({ description: 'submitted_at >= this' })),
  submitted_before: Type.Optional(Timestamp({ description: 'submitted_at < this' })),
  sla_breached: Type.Optional(Type.Boolean({ description: 'true: only complaints whose SLA is breached; false: only complaints within it' })),
  archived: ArchivedQuery('feedback'),
}

export const FeedbackListQuery = Type.Object({ ...listFilters, customer_id: Type.Optional(Uuid()) }, { additionalProperties: false })
export const CustomerFeedbackListQuery = Type.Object(listFilters, { additionalProperties: false })

export type FeedbackCreateBody = Static<typeof FeedbackCreate>
export type FeedbackPatchBody = Static<typeof FeedbackPatch>
export type FeedbackDto = Static<typeof Feedback>
export type FeedbackListQueryT = Static<typeof FeedbackListQuery>

/** Named schemas of this domain, registered once by the routes plugin. */
export const feedbackSchemas = [FeedbackCreate, FeedbackPatch, Feedback, FeedbackList]
