import { Type, type Static, type TSchema } from 'typebox'
import { PROBLEM_CODES } from './problem-types.js'

/** The schema format of a currency code (registered with Ajv in lib/validation.ts). */
export const CURRENCY_FORMAT = 'iso-4217'

/**
 * Helpers for TypeBox schemas that become named OpenAPI components.
 * A schema with an $id is registered once with app.addSchema (see modules' schema lists) and
 * used in routes through ref(), which keeps the static type and emits a $ref.
 */
export function ref<T extends TSchema & { $id?: string }>(schema: T) {
  if (!schema.$id) throw new Error('ref() needs a schema with an $id')
  return Type.Unsafe<Static<T>>({ $ref: `${schema.$id}#` })
}

/** A string enumeration: `{ type: 'string', enum: [...] }`, as OpenAPI generators expect. */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options })
}

/** `T | null`: `nullable` on a typed schema (the document lists null among its types), a union for a reference. */
export function Nullable<T extends TSchema>(schema: T, options: Record<string, unknown> = {}) {
  // A reference has no type to widen: the union says it (OpenAPI 3.1 keeps it as it is).
  if (typeof (schema as { $ref?: unknown }).$ref === 'string') return Type.Unsafe<Static<T> | null>({ anyOf: [{ ...schema }, { type: 'null' }], ...options })
  // An enum must list null itself: `nullable` widens the type, not the enum.
  const values = (schema as { enum?: unknown[] }).enum
  return Type.Unsafe<Static<T> | null>({ ...schema, ...(values ? { enum: [...values, null] } : {}), nullable: true, ...options })
}

export const Uuid = (options: Record<string, unknown> = {}) =>
  Type.String({ format: 'uuid', example: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', ...options })

/**
 * The API's times have millisecond precision: it answers UTC with three fraction digits and
 * stores what it answers, so a time read, kept in a millisecond clock (a JS Date) and sent back
 * as a filter bound or in a search compares equal to the record's.
 */
export const TIMESTAMP_PRECISION =
  'RFC 3339, answered in UTC with millisecond precision (2026-11-22T08:30:00.123Z) and stored as answered; ' +
  'a time sent with more fraction digits is rounded to the millisecond when stored and compared as sent in filters'

/** RFC 3339; at most 35 characters (nanoseconds and a numeric offset): the format alone has no bound. */
export const Timestamp = (options: Record<string, unknown> = {}) =>
  Type.String({
    format: 'date-time',
    maxLength: 35,
    example: '2026-11-22T08:30:00.000Z',
    ...options,
    description: typeof options.description === 'string' ? `${options.description}. ${TIMESTAMP_PRECISION}` : TIMESTAMP_PRECISION,
  })

export const DateOnly = (options: Record<string, unknown> = {}) =>
  Type.String({ format: 'date', example: '1990-05-17', ...options })

/**
 * Exact money: a decimal string, never a float, written with its currency's minor units
 * (JPY "1500", CNY "129.90", KWD "1.234"). The pattern admits up to 3 fraction digits; an amount
 * with more than its currency has is a 400 (lib/money.ts minorUnitsError).
 * Patterns in this API never nest quantifiers (star height 1, checked by safe-regex2 in
 * test/plugins/openapi.test.ts), hence two anchored alternatives instead of `(\.[0-9]{1,3})?`.
 */
export const Money = (options: Record<string, unknown> = {}) =>
  Type.String({
    pattern: '^-?[0-9]{1,12}$|^-?[0-9]{1,12}\\.[0-9]{1,3}$',
    maxLength: 17,
    example: '129.90',
    description: 'Decimal string with the currency\'s minor units (JPY 1500, CNY 129.90, KWD 1.234)',
    ...options,
  })

/**
 * A sum of amounts (receivables, spend, revenue): the Money representation with room for the
 * digits a sum of many 12-digit amounts reaches. Answers only; no request takes one.
 */
export const MoneySum = (options: Record<string, unknown> = {}) =>
  Money({ pattern: '^-?[0-9]{1,20}$|^-?[0-9]{1,20}\\.[0-9]{1,3}$', maxLength: 25, ...options })

/**
 * Any JSON value, bounded at every level: strings up to 1,000 characters, arrays up to 100
 * items, objects up to 100 properties, nested (depth is bounded by the JSON parser, 32 levels).
 * The values of free-form maps such as a customer's attributes; null is accepted (merge patch).
 */
const JSON_SCALARS = [{ type: 'string', maxLength: 1000 }, { type: 'number' }, { type: 'boolean', nullable: true }]
const JSON_OBJECT = { type: 'object', maxProperties: 100, additionalProperties: { $ref: 'JsonValue#' } }

export const JsonValue = Type.Unsafe<unknown>({
  $id: 'JsonValue',
  description: 'Any JSON value: a string (up to 1,000 characters), number, boolean, null, array (up to 100 items, not themselves arrays) or object (up to 100 properties)',
  example: 38,
  anyOf: [
    ...JSON_SCALARS,
    // An array's items are any JsonValue but an array: a directly self-referencing array makes
    // openapi-typescript's output fail to compile (TS2502); arrays nest through objects.
    { type: 'array', maxItems: 100, items: { anyOf: [...JSON_SCALARS, JSON_OBJECT] } },
    JSON_OBJECT,
  ],
})

/** A free-form object with snake_case keys and JsonValue values (attributes, preferences). */
export const JsonMap = (maxProperties: number, options: Record<string, unknown> = {}) =>
  Type.Unsafe<Record<string, unknown>>({
    type: 'object',
    maxProperties,
    propertyNames: { pattern: '^[a-z][a-z0-9_]{0,63}$' },
    additionalProperties: { $ref: 'JsonValue#' },
    ...options,
  })

/**
 * An ISO 4217 code the API accepts (lib/currency.ts): the format `iso-4217` is checked by the
 * API's validators (lib/validation.ts), so every body, query and filter that takes a currency
 * rejects ABC or XXX the same way (one error per field: no pattern besides the format).
 */
export const Currency = (options: Record<string, unknown> = {}) =>
  Type.String({
    format: CURRENCY_FORMAT,
    example: 'CNY',
    description: 'ISO 4217 currency code with a minor unit of at most 3 decimals (JPY 0, CNY 2, KWD 3); codes without one (XXX, XTS, XAU) are not accepted',
    ...options,
  })

export const IdParams = Type.Object({ id: Uuid({ description: 'Resource id (UUID v7)' }) }, { additionalProperties: false })

/** Problem details (RFC 9457), the body of every error. */
export const Problem = Type.Object(
  {
    type: Type.String({ description: 'URI reference of the problem type (/problems/<code>, absolute under PUBLIC_URL when set): its page says when it happens and what to do', example: '/problems/validation-failed' }),
    code: StringEnum(PROBLEM_CODES, { description: 'Stable code of the cause (the last segment of type): clients branch on it, never on title or detail. GET /problems lists them all.', example: 'validation-failed' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String({ description: 'The request path' })),
    request_id: Type.String({ description: 'The server\'s id of the request (the X-Request-Id header)' }),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          pointer: Type.String({ description: 'JSON Pointer to the offending field', example: '/name' }),
          message: Type.String(),
        }),
      ),
    ),
  },
  {
    $id: 'Problem',
    description: 'RFC 9457 problem details',
    example: {
      type: '/problems/validation-failed',
      code: 'validation-failed',
      title: 'Validation failed',
      status: 400,
      detail: 'The request body is invalid.',
      instance: '/v1/customers',
      request_id: 'req-1',
      errors: [{ pointer: '/name', message: 'must have required property' }],
    },
  },
)

/** Error responses every route can answer; spread into a route's `response`. */
export function problemResponses(...statuses: number[]) {
  const out: Record<number, ReturnType<typeof ref<typeof Problem>>> = {}
  for (const s of statuses) out[s] = ref(Problem)
  return out
}

/** The errors every write operation (create, update, archive) documents. */
export const WRITE_ERRORS = problemResponses(400, 401, 403, 404, 409, 412, 413, 415, 422)
/** The errors every read operation documents. */
export const READ_ERRORS = problemResponses(400, 401, 403, 404)

/** A list's `archived` filter: false (the default) lists live records, true archived ones, all both. */
export const ARCHIVED_FILTERS = ['false', 'true', 'all'] as const
export type ArchivedFilter = (typeof ARCHIVED_FILTERS)[number]

/** The `archived` query parameter of a list of archivable records (`plural`: "orders"). */
export const ArchivedQuery = (plural: string) =>
  Type.Optional(StringEnum(ARCHIVED_FILTERS, {
    default: 'false',
    description: `false (the default) lists only live ${plural}, true only archived ones, all both`,
    example: 'all',
  }))
