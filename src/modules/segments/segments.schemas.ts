import { Type, type Static } from 'typebox'
import { Nullable, StringEnum, Timestamp, Uuid, ref, ArchivedQuery } from '../../lib/schema.js'
import { PageQuery, pageEnvelope, type SortFields } from '../../lib/pagination.js'
import { CustomerFilter, type CustomerFilterT } from '../filters/filter.schemas.js'
import { Customer } from '../customers/customers.schemas.js'

export const SEGMENT_KINDS = ['dynamic', 'static'] as const
export const SEGMENT_SORTS = { created_at: 'timestamp', name: 'text' } as const satisfies SortFields
export const MEMBERSHIP_EVENTS = ['entered', 'left'] as const
export const EXPORT_FORMATS = ['csv', 'ndjson'] as const
export const MAX_MEMBER_IDS = 1000

const EXAMPLE_FILTER = { and: [{ field: 'lifecycle_stage', op: 'in', value: ['repeat', 'loyal'] }, { orders: { min_count: 3, since: { last_n_days: 90 } } }] }

const name = Type.String({ minLength: 1, maxLength: 200, description: 'Unique among live segments (case-insensitive)', example: 'Loyal buyers, last 90 days' })
const description = Nullable(Type.String({ maxLength: 2000, example: 'Repeat or loyal customers with 3+ purchases in 90 days' }))

export const Segment = Type.Object(
  {
    id: Uuid(),
    name: Type.String(),
    description: Nullable(Type.String()),
    kind: StringEnum(SEGMENT_KINDS, { description: 'dynamic: members are the customers its filter selects; static: members added and removed by id' }),
    // nullable next to a bare $ref is ignored (OpenAPI 3.0 and the serializer alike): wrap it.
    filter: Type.Unsafe<CustomerFilterT | null>({ anyOf: [{ $ref: 'CustomerFilter#' }, { type: 'null' }], description: 'The stored filter of a dynamic segment; null for a static one' }),
    version: Type.Integer({ description: 'Optimistic concurrency version; also the ETag' }),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    archived_at: Nullable(Timestamp()),
  },
  {
    $id: 'Segment',
    description: 'A named set of customers: dynamic (a stored filter) or static (explicit members)',
    example: {
      id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0b01', name: 'Loyal buyers, last 90 days', description: null, kind: 'dynamic', filter: EXAMPLE_FILTER,
      version: 1, created_at: '2026-11-23T08:30:00.000Z', updated_at: '2026-11-23T08:30:00.000Z', archived_at: null,
    },
  },
)

export const SegmentCreate = Type.Object(
  {
    name,
    description: Type.Optional(description),
    kind: StringEnum(SEGMENT_KINDS),
    filter: Type.Optional(ref(CustomerFilter)),
  },
  {
    $id: 'SegmentCreate', additionalProperties: false,
    description: 'A new segment; a dynamic one needs a filter, a static one has none',
    example: { name: 'Loyal buyers, last 90 days', kind: 'dynamic', filter: EXAMPLE_FILTER },
  },
)

export const SegmentPatch = Type.Object(
  {
    name: Type.Optional(name),
    description: Type.Optional(description),
    filter: Type.Optional(ref(CustomerFilter)),
  },
  {
    $id: 'SegmentPatch', additionalProperties: false, minProperties: 1,
    description: 'JSON Merge Patch of a segment: the filter (dynamic segments only) is replaced as a whole; kind cannot change',
    example: { description: 'Reviewed monthly' },
  },
)

export const SegmentList = Type.Object(pageEnvelope(ref(Segment), 'A page of segments').properties, {
  $id: 'SegmentList', description: 'A page of segments', example: { data: [], next_cursor: null },
})

export const SegmentListQuery = Type.Object(
  {
    ...PageQuery,
    sort: Type.Optional(Type.String({ maxLength: 100, description: `Comma-separated of ${Object.keys(SEGMENT_SORTS).join(', ')}; prefix - for descending`, example: '-created_at' })),
    kind: Type.Optional(StringEnum(SEGMENT_KINDS)),
    archived: ArchivedQuery('segments'),
  },
  { additionalProperties: false },
)

export const MemberListQuery = Type.Object(
  {
    ...PageQuery,
    sort: Type.Optional(Type.String({ maxLength: 100, description: 'Comma-separated of created_at, updated_at, name; prefix - for descending', example: 'name' })),
  },
  { additionalProperties: false },
)

export const SegmentCount = Type.Object(
  { count: Type.Integer({ minimum: 0, description: 'Non-archived customers in the segment now' }) },
  { $id: 'SegmentCount', description: 'How many customers a segment holds', example: { count: 1234 } },
)

export const SegmentPreview = Type.Object(
  {
    filter: ref(CustomerFilter),
    sort: MemberListQuery.properties.sort,
    limit: PageQuery.limit,
  },
  {
    $id: 'SegmentPreview', additionalProperties: false,
    description: 'An unsaved filter to try before creating a dynamic segment',
    example: { filter: EXAMPLE_FILTER, limit: 20 },
  },
)

export const SegmentPreviewResult = Type.Object(
  {
    count: Type.Integer({ minimum: 0 }),
    ...pageEnvelope(ref(Customer), 'The first page of the customers the filter selects').properties,
  },
  { $id: 'SegmentPreviewResult', description: 'How many customers a filter selects, and the first page of them', example: { count: 0, data: [], next_cursor: null } },
)

export const SegmentMemberIds = Type.Object(
  {
    customer_ids: Type.Array(Uuid(), { minItems: 1, maxItems: MAX_MEMBER_IDS, uniqueItems: true, description: `1 to ${MAX_MEMBER_IDS} customer ids` }),
  },
  {
    $id: 'SegmentMemberIds', additionalProperties: false,
    description: 'Customers to add to or remove from a static segment, all or none',
    example: { customer_ids: ['0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'] },
  },
)

export const SegmentMemberChange = Type.Object(
  {
    added: Type.Optional(Type.Integer({ minimum: 0, description: 'Customers that were not members before' })),
    removed: Type.Optional(Type.Integer({ minimum: 0, description: 'Customers that were members before' })),
    unchanged: Type.Integer({ minimum: 0, description: 'Ids that needed no change (already in, or not in)' }),
  },
  { $id: 'SegmentMemberChange', description: 'What a batch add or remove changed', example: { added: 2, unchanged: 1 } },
)

export const SegmentRefreshResult = Type.Object(
  {
    entered: Type.Integer({ minimum: 0 }),
    left: Type.Integer({ minimum: 0 }),
    member_count: Type.Integer({ minimum: 0 }),
    refreshed_at: Timestamp(),
  },
  {
    $id: 'SegmentRefreshResult', description: 'The membership change a refresh recorded in the history',
    example: { entered: 12, left: 3, member_count: 1234, refreshed_at: '2026-11-23T09:00:00.000Z' },
  },
)

export const MembershipEvent = Type.Object(
  {
    id: Uuid(),
    segment_id: Uuid(),
    customer_id: Uuid(),
    event: StringEnum(MEMBERSHIP_EVENTS),
    occurred_at: Timestamp(),
  },
  {
    $id: 'MembershipEvent', description: 'A customer entering or leaving a segment',
    example: { id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0c01', segment_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0b01', customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', event: 'entered', occurred_at: '2026-11-23T09:00:00.000Z' },
  },
)

export const MembershipEventList = Type.Object(pageEnvelope(ref(MembershipEvent), 'A page of membership events').properties, {
  $id: 'MembershipEventList', description: 'A page of membership events, newest first', example: { data: [], next_cursor: null },
})

export const HistoryQuery = Type.Object(
  {
    ...PageQuery,
    event: Type.Optional(StringEnum(MEMBERSHIP_EVENTS)),
    customer_id: Type.Optional(Uuid()),
  },
  { additionalProperties: false },
)

export const ExportQuery = Type.Object(
  { format: Type.Optional(StringEnum(EXPORT_FORMATS, { default: 'csv', description: 'csv (one row per customer) or ndjson (one Customer per line)' })) },
  { additionalProperties: false },
)

export type SegmentDto = Static<typeof Segment>
export type SegmentCreateBody = Static<typeof SegmentCreate>
export type SegmentPatchBody = Static<typeof SegmentPatch>

export const segmentSchemas = [
  Segment, SegmentCreate, SegmentPatch, SegmentList, SegmentCount, SegmentPreview, SegmentPreviewResult, SegmentMemberIds,
  SegmentMemberChange, SegmentRefreshResult, MembershipEvent, MembershipEventList,
]
