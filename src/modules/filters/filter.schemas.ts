import { Type } from 'typebox'
import { Currency } from '../../lib/schema.js'

/**
 * The customer filter language: the JSON contract (TypeBox, named components in the OpenAPI
 * document) and its TypeScript types. Recursion is a plain `$ref` to the registered `CustomerFilter`
 * component, which both Ajv and @fastify/swagger resolve by $id (TypeBox's Type.Cyclic would emit
 * `$defs`, which OpenAPI 3.0 components do not have).
 *
 * The schema checks the shape; the rules that depend on the field (which operators a field takes,
 * value types, enum values, depth and size limits) live in filter.parse.ts, which reports each
 * violation with a JSON Pointer to the bad node.
 */
export const FILTER_LIMITS = { maxDepth: 8, maxNodes: 100, maxArray: 500, maxString: 200 } as const

export interface RelativeDate {
  last_n_days: number
}
export type DateValue = string | RelativeDate
export type FilterScalar = string | number | boolean
export type FilterValue = FilterScalar | FilterScalar[] | RelativeDate

export const FILTER_OPS = ['eq', 'ne', 'in', 'not_in', 'gt', 'gte', 'lt', 'lte', 'contains', 'match', 'exists', 'has_any', 'has_all'] as const
export type FilterOp = (typeof FILTER_OPS)[number]

export interface FieldCondition {
  field: string
  op: FilterOp
  value?: FilterValue
  currency?: string
  last_n_days?: number
}
export interface CountBounds {
  min_count?: number
  max_count?: number
  since?: DateValue
  before?: DateValue
}
export interface OrdersCondition {
  orders: CountBounds & { status?: string[]; currency?: string; category?: string; sku?: string }
}
export interface InteractionsCondition {
  interactions: CountBounds & { channel?: string[]; direction?: string[] }
}
export interface FeedbackCondition {
  feedback: CountBounds & { kind?: string[]; open?: boolean }
}
export type CustomerFilterT =
  | { and: CustomerFilterT[] }
  | { or: CustomerFilterT[] }
  | { not: CustomerFilterT }
  | FieldCondition
  | OrdersCondition
  | InteractionsCondition
  | FeedbackCondition

const NODE = Type.Unsafe<CustomerFilterT>({ $ref: 'CustomerFilter#' })
const children = (description: string) =>
  Type.Array(NODE, { minItems: 1, maxItems: FILTER_LIMITS.maxNodes, description })

const str = Type.String({ maxLength: FILTER_LIMITS.maxString })

export const RelativeDateSchema = Type.Object(
  { last_n_days: Type.Integer({ minimum: 0, maximum: 36500, description: 'Now minus this many days', example: 90 }) },
  { $id: 'FilterRelativeDate', additionalProperties: false, description: 'A moment relative to now: now minus last_n_days days', example: { last_n_days: 90 } },
)

const DateValueSchema = Type.Union([
  Type.String({ maxLength: 40, description: 'A date (YYYY-MM-DD, midnight UTC) or an RFC 3339 timestamp', example: '2026-01-01' }),
  Type.Unsafe<RelativeDate>({ $ref: 'FilterRelativeDate#' }),
])

const countBounds = {
  min_count: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'At least this many matching records (default 1)', example: 3 })),
  max_count: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'At most this many (0: none at all)', example: 0 })),
  since: Type.Optional(DateValueSchema),
  before: Type.Optional(DateValueSchema),
}

export const FilterAnd = Type.Object({ and: children('All of these hold') }, {
  $id: 'FilterAnd', additionalProperties: false, description: 'Every child node holds', example: { and: [{ field: 'lifecycle_stage', op: 'eq', value: 'loyal' }] },
})
export const FilterOr = Type.Object({ or: children('At least one of these holds') }, {
  $id: 'FilterOr', additionalProperties: false, description: 'At least one child node holds', example: { or: [{ field: 'tags', op: 'has_any', value: ['vip'] }] },
})
export const FilterNot = Type.Object({ not: NODE }, {
  $id: 'FilterNot', additionalProperties: false, description: 'The child node does not hold (a missing value counts as not matching)',
  example: { not: { field: 'tags', op: 'has_any', value: ['blocked'] } },
})

export const FilterCondition = Type.Object(
  {
    field: Type.String({
      maxLength: 80,
      pattern: '^([a-z_]{1,40}|attributes\\.[a-z][a-z0-9_]{0,63})$',
      description: 'A customer field (name, lifecycle_stage, tags, created_at, …), a computed metric (recency_days, order_count, ' +
        'monetary, lifetime_value, interaction_count, open_complaints, latest_csat, latest_nps, first_order_at, last_order_at, ' +
        'last_interaction_at) or attributes.<key>',
      example: 'order_count',
    }),
    op: Type.Unsafe<FilterOp>({ type: 'string', enum: [...FILTER_OPS], description: 'Which operators a field takes depends on its type', example: 'gte' }),
    value: Type.Optional(Type.Union([
      str,
      Type.Number(),
      Type.Boolean(),
      Type.Array(Type.Union([str, Type.Number(), Type.Boolean()]), { maxItems: FILTER_LIMITS.maxArray }),
      Type.Unsafe<RelativeDate>({ $ref: 'FilterRelativeDate#' }),
    ], { description: 'The operand: a scalar, a list (in, not_in, has_any, has_all), a relative date, or a boolean for exists (default true)' })),
    currency: Type.Optional(Currency({ description: 'monetary and lifetime_value only: spend in this currency (default: all currencies, nominal sum)' })),
    last_n_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 36500, description: 'monetary only: spend over the last N days (default: all time)' })),
  },
  {
    $id: 'FilterCondition', additionalProperties: false,
    description: 'A condition on a customer field, attribute or computed metric. Operators by field type: ' +
      'text (name, given_name, family_name, occupation, company, job_title, external_ref): eq ne in not_in contains match exists; ' +
      'enums (gender, marital_status, preferred_channel, acquisition_source, lifecycle_stage): eq ne in not_in exists; ' +
      'integers (loyalty_points, payment_terms_days, order_count, interaction_count, open_complaints, latest_csat, latest_nps, recency_days): eq ne in not_in gt gte lt lte exists; ' +
      'money as decimal strings (credit_limit, monetary, lifetime_value): eq ne gt gte lt lte exists; ' +
      'timestamps (created_at, updated_at, first_order_at, last_order_at, last_interaction_at; a date, timestamp or {last_n_days}): gt gte lt lte exists; ' +
      'lists (tags, interests): has_any has_all exists (non-empty); attributes.<key>: eq ne in not_in (JSON equality), gt gte lt lte (numbers), contains (strings), exists (key present). ' +
      'contains is a case-insensitive substring; match requires every word, in any order and case. A missing value fails every operator except ne, not_in and exists:false.',
    example: { field: 'order_count', op: 'gte', value: 3 },
  },
)

export const FilterOrders = Type.Object(
  {
    orders: Type.Object(
      {
        ...countBounds,
        status: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 10, description: 'Default: purchases (paid, fulfilled, partially_refunded)' })),
        currency: Type.Optional(Currency()),
        category: Type.Optional(Type.String({ minLength: 1, maxLength: FILTER_LIMITS.maxString, description: 'Only orders with an item of this category' })),
        sku: Type.Optional(Type.String({ minLength: 1, maxLength: FILTER_LIMITS.maxString, description: 'Only orders with an item of this SKU' })),
      },
      { additionalProperties: false },
    ),
  },
  {
    $id: 'FilterOrders', additionalProperties: false,
    description: 'Counts the customer\'s non-archived orders that match (status, window, item category or SKU) against min_count/max_count',
    example: { orders: { min_count: 3, status: ['paid'], since: { last_n_days: 90 } } },
  },
)

export const FilterInteractions = Type.Object(
  {
    interactions: Type.Object(
      {
        ...countBounds,
        channel: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 20 })),
        direction: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 3 })),
      },
      { additionalProperties: false },
    ),
  },
  {
    $id: 'FilterInteractions', additionalProperties: false,
    description: 'Counts the customer\'s non-archived interactions that match; { since, max_count: 0 } means "no interaction since"',
    example: { interactions: { since: '2026-01-01', max_count: 0 } },
  },
)

export const FilterFeedback = Type.Object(
  {
    feedback: Type.Object(
      {
        ...countBounds,
        kind: Type.Optional(Type.Array(Type.String({ maxLength: 40 }), { minItems: 1, maxItems: 5 })),
        open: Type.Optional(Type.Boolean({ description: 'true: complaints still open or in progress; false: resolved or closed complaints' })),
      },
      { additionalProperties: false },
    ),
  },
  {
    $id: 'FilterFeedback', additionalProperties: false,
    description: 'Counts the customer\'s non-archived feedback that matches; { open: true } is "any complaint still open"',
    example: { feedback: { open: true } },
  },
)

export const CustomerFilter = Type.Unsafe<CustomerFilterT>({
  $id: 'CustomerFilter',
  description: `A customer filter: a tree of and/or/not nodes over conditions. At most ${FILTER_LIMITS.maxDepth} levels deep, ` +
    `${FILTER_LIMITS.maxNodes} nodes, ${FILTER_LIMITS.maxArray} values per list and ${FILTER_LIMITS.maxString} characters per string.`,
  anyOf: ['FilterAnd', 'FilterOr', 'FilterNot', 'FilterCondition', 'FilterOrders', 'FilterInteractions', 'FilterFeedback'].map((id) => ({ $ref: `${id}#` })),
  example: {
    and: [
      { field: 'lifecycle_stage', op: 'in', value: ['repeat', 'loyal'] },
      { orders: { min_count: 3, status: ['paid', 'fulfilled'], since: { last_n_days: 90 } } },
      { not: { feedback: { open: true } } },
    ],
  },
})

/** Registered once, in app.ts: search (customers) and segments both refer to them. */
export const filterSchemas = [RelativeDateSchema, FilterAnd, FilterOr, FilterNot, FilterCondition, FilterOrders, FilterInteractions, FilterFeedback, CustomerFilter]
