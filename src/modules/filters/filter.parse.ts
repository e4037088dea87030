import { CURRENCY_MESSAGE, isCurrencyCode } from '../../lib/currency.js'
import { problem, type FieldError, pointerToken } from '../../lib/problem.js'
import { FILTER_LIMITS, FILTER_OPS, type FilterOp } from './filter.schemas.js'
import { ORDER_STATUSES } from '../orders/orders.schemas.js'
import { GENDERS, LIFECYCLE_STAGES, MARITAL_STATUSES, CHANNELS, SOURCES } from '../customers/customers.schemas.js'

/**
 * Semantic validation of a customer filter, producing the typed tree the compiler (and the tests'
 * reference evaluator) work on. It accepts any JSON, so it is safe to run before or instead of the
 * schema check, and reports every problem with a JSON Pointer to the node or value at fault.
 */
export type FieldType = 'text' | 'enum' | 'integer' | 'money' | 'timestamp' | 'list' | 'json'

export interface FieldSpec {
  type: FieldType
  /** Where the value comes from: a customers column, or a computed metric. */
  source: 'column' | 'metric'
  values?: readonly string[]
  /** Value of a metric for a customer with no activity (no metrics row). */
  missing?: 0 | null
}

const col = (type: FieldType, values?: readonly string[]): FieldSpec => ({ type, source: 'column', ...(values ? { values } : {}) })
const metric = (type: FieldType, missing: 0 | null): FieldSpec => ({ type, source: 'metric', missing })

/** Every field a filter may name. Contact values and birthday are left out: they are PII. */
export const FILTER_FIELDS: Record<string, FieldSpec> = {
  name: col('text'), given_name: col('text'), family_name: col('text'), occupation: col('text'), company: col('text'),
  job_title: col('text'), external_ref: col('text'),
  gender: col('enum', GENDERS), marital_status: col('enum', MARITAL_STATUSES), preferred_channel: col('enum', CHANNELS),
  acquisition_source: col('enum', SOURCES), lifecycle_stage: col('enum', LIFECYCLE_STAGES),
  loyalty_points: col('integer'), payment_terms_days: col('integer'), credit_limit: col('money'),
  created_at: col('timestamp'), updated_at: col('timestamp'),
  tags: col('list'), interests: col('list'),
  order_count: metric('integer', 0), interaction_count: metric('integer', 0), open_complaints: metric('integer', 0),
  latest_csat: metric('integer', null), latest_nps: metric('integer', null), recency_days: metric('integer', null),
  first_order_at: metric('timestamp', null), last_order_at: metric('timestamp', null), last_interaction_at: metric('timestamp', null),
  monetary: metric('money', 0), lifetime_value: metric('money', 0),
}

export const OPS_BY_TYPE: Record<FieldType, readonly FilterOp[]> = {
  text: ['eq', 'ne', 'in', 'not_in', 'contains', 'match', 'exists'],
  enum: ['eq', 'ne', 'in', 'not_in', 'exists'],
  integer: ['eq', 'ne', 'in', 'not_in', 'gt', 'gte', 'lt', 'lte', 'exists'],
  money: ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'exists'],
  timestamp: ['gt', 'gte', 'lt', 'lte', 'exists'],
  list: ['has_any', 'has_all', 'exists'],
  json: ['eq', 'ne', 'in', 'not_in', 'gt', 'gte', 'lt', 'lte', 'contains', 'exists'],
}

export const INTERACTION_CHANNELS = ['phone', 'email', 'sms', 'chat', 'meeting', 'visit', 'event', 'social', 'other'] as const
export const INTERACTION_DIRECTIONS = ['inbound', 'outbound', 'internal'] as const
export const FEEDBACK_KINDS = ['survey', 'complaint', 'suggestion', 'review', 'praise'] as const
const ATTRIBUTE_KEY = /^[a-z][a-z0-9_]{0,63}$/
const MONEY = /^-?[0-9]{1,12}(\.[0-9]{1,2})?$/
const DATE = /^\d{4}-\d{2}-\d{2}$/
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/
const INT_LIMIT = 2_147_483_647

/** A moment: absolute (ISO text) or relative to the statement's now(). */
export type TimeBound = { at: string } | { days: number }
export type Scalar = string | number | boolean

export type FilterAst =
  | { kind: 'and' | 'or'; children: FilterAst[] }
  | { kind: 'not'; child: FilterAst }
  | FieldAst
  | RelatedAst

export interface FieldAst {
  kind: 'field'
  field: string
  spec: FieldSpec
  /** For attributes.<key>. */
  attribute?: string
  op: FilterOp
  /** Normalised: boolean for exists; string/number/boolean; arrays for in/not_in/has_*; TimeBound for timestamps. */
  value: Scalar | Scalar[] | TimeBound
  currency?: string
  days?: number
}

export interface RelatedAst {
  kind: 'orders' | 'interactions' | 'feedback'
  min: number
  max?: number
  since?: TimeBound
  before?: TimeBound
  /** orders: statuses; interactions: channels; feedback: kinds. */
  values?: string[]
  directions?: string[]
  currency?: string
  category?: string
  sku?: string
  open?: boolean
}

type Json = unknown
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v)

class Parser {
  errors: FieldError[] = []
  nodes = 0

  fail(at: string, message: string): undefined {
    if (this.errors.length < 50) this.errors.push({ pointer: at, message })
    return undefined
  }

  node(raw: Json, at: string, depth: number): FilterAst | undefined {
    if (depth > FILTER_LIMITS.maxDepth) return this.fail(at, `nests deeper than ${FILTER_LIMITS.maxDepth} levels`)
    if (++this.nodes > FILTER_LIMITS.maxNodes) {
      return this.nodes === FILTER_LIMITS.maxNodes + 1 ? this.fail(at, `the filter has more than ${FILTER_LIMITS.maxNodes} nodes`) : undefined
    }
    if (!isObject(raw)) return this.fail(at, 'must be a filter node (an object)')
    const keys = Object.keys(raw)
    // A combinator node has one property: the first other one is the pointer of the error.
    const extra = (k: string) => `${at}/${pointerToken(keys.find((other) => other !== k)!)}`
    for (const k of ['and', 'or'] as const) {
      if (!(k in raw)) continue
      if (keys.length !== 1) return this.fail(extra(k), `is not an accepted property: an "${k}" node has no other properties`)
      const list = raw[k]
      if (!Array.isArray(list) || list.length === 0) return this.fail(`${at}/${k}`, 'must be a non-empty array of filter nodes')
      if (list.length > FILTER_LIMITS.maxNodes) return this.fail(`${at}/${k}`, `must have at most ${FILTER_LIMITS.maxNodes} items`)
      const children = list.map((c, i) => this.node(c, `${at}/${k}/${i}`, depth + 1))
      return children.every(Boolean) ? { kind: k, children: children as FilterAst[] } : undefined
    }
    if ('not' in raw) {
      if (keys.length !== 1) return this.fail(extra('not'), 'is not an accepted property: a "not" node has no other properties')
      const child = this.node(raw.not, `${at}/not`, depth + 1)
      return child ? { kind: 'not', child } : undefined
    }
    for (const k of ['orders', 'interactions', 'feedback'] as const) {
      if (!(k in raw)) continue
      if (keys.length !== 1) return this.fail(extra(k), `is not an accepted property: an "${k}" node has no other properties`)
      return this.related(k, raw[k], `${at}/${pointerToken(k)}`)
    }
    if ('field' in raw) return this.condition(raw, at)
    return this.fail(at, 'must be one of: {and: [...]}, {or: [...]}, {not: {...}}, {field, op, value}, {orders: {...}}, {interactions: {...}}, {feedback: {...}}')
  }

  condition(raw: Record<string, Json>, at: string): FieldAst | undefined {
    for (const k of Object.keys(raw)) {
      if (!['field', 'op', 'value', 'currency', 'last_n_days'].includes(k)) return this.fail(`${at}/${pointerToken(k)}`, 'is not an accepted property')
    }
    const field = raw.field
    if (typeof field !== 'string') return this.fail(`${at}/field`, 'must be a field name')
    let spec = FILTER_FIELDS[field]
    let attribute: string | undefined
    if (field.startsWith('attributes.')) {
      attribute = field.slice('attributes.'.length)
      if (!ATTRIBUTE_KEY.test(attribute)) return this.fail(`${at}/field`, 'attribute keys are lower-case snake_case, 1 to 64 characters')
      spec = { type: 'json', source: 'column' }
    }
    if (!spec || !Object.hasOwn(FILTER_FIELDS, field) && !attribute) {
      return this.fail(`${at}/field`, `is not a filterable field (one of ${Object.keys(FILTER_FIELDS).join(', ')}, or attributes.<key>)`)
    }
    const op = raw.op as FilterOp
    if (typeof op !== 'string' || !(FILTER_OPS as readonly string[]).includes(op)) return this.fail(`${at}/op`, `must be one of: ${FILTER_OPS.join(', ')}`)
    if (!OPS_BY_TYPE[spec.type].includes(op)) return this.fail(`${at}/op`, `${field} takes only: ${OPS_BY_TYPE[spec.type].join(', ')}`)
    const out: FieldAst = { kind: 'field', field, spec, op, value: true, ...(attribute ? { attribute } : {}) }
    if (raw.currency !== undefined) {
      if (field !== 'monetary' && field !== 'lifetime_value') return this.fail(`${at}/currency`, 'applies to monetary and lifetime_value only')
      if (!isCurrencyCode(raw.currency)) return this.fail(`${at}/currency`, CURRENCY_MESSAGE)
      out.currency = raw.currency
    }
    if (raw.last_n_days !== undefined) {
      if (field !== 'monetary') return this.fail(`${at}/last_n_days`, 'applies to monetary only')
      if (!Number.isInteger(raw.last_n_days) || (raw.last_n_days as number) < 1 || (raw.last_n_days as number) > 36500) {
        return this.fail(`${at}/last_n_days`, 'must be an integer from 1 to 36500')
      }
      out.days = raw.last_n_days as number
    }
    const value = this.value(spec, field, op, raw.value, `${at}/value`)
    if (value === undefined) return undefined
    out.value = value
    return out
  }

  value(spec: FieldSpec, field: string, op: FilterOp, v: Json, at: string): FieldAst['value'] | undefined {
    if (op === 'exists') {
      if (v === undefined) return true
      return typeof v === 'boolean' ? v : this.fail(at, 'must be true or false')
    }
    if (v === undefined) return this.fail(at, 'is required')
    if (op === 'in' || op === 'not_in' || op === 'has_any' || op === 'has_all') {
      if (!Array.isArray(v) || v.length === 0) return this.fail(at, 'must be a non-empty array')
      if (v.length > FILTER_LIMITS.maxArray) return this.fail(at, `must have at most ${FILTER_LIMITS.maxArray} values`)
      const out: Scalar[] = []
      for (let i = 0; i < v.length; i++) {
        const one = this.scalar(spec, field, op, v[i], `${at}/${i}`)
        if (one === undefined) return undefined
        out.push(one)
      }
      return out
    }
    if (spec.type === 'timestamp') return this.time(v, at)
    return this.scalar(spec, field, op, v, at)
  }

  scalar(spec: FieldSpec, field: string, op: FilterOp, v: Json, at: string): Scalar | undefined {
    if (typeof v === 'string' && v.length > FILTER_LIMITS.maxString) return this.fail(at, `must be at most ${FILTER_LIMITS.maxString} characters`)
    switch (spec.type) {
      case 'text':
      case 'list': {
        if (typeof v !== 'string') return this.fail(at, 'must be a string')
        const s = field === 'tags' ? v.trim().toLowerCase() : v
        if ((op === 'contains' || op === 'match' || spec.type === 'list') && s.trim() === '') return this.fail(at, 'must not be empty')
        return s
      }
      case 'enum':
        if (typeof v !== 'string' || !spec.values!.includes(v)) return this.fail(at, `must be one of: ${spec.values!.join(', ')}`)
        return v
      case 'integer':
        if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) > INT_LIMIT) return this.fail(at, 'must be an integer')
        return v
      case 'money':
        if (typeof v === 'number' && Number.isFinite(v) && MONEY.test(String(v))) return String(v)
        if (typeof v !== 'string' || !MONEY.test(v)) return this.fail(at, 'must be a decimal amount such as "129.90"')
        return v
      case 'json':
        if (op === 'gt' || op === 'gte' || op === 'lt' || op === 'lte') {
          if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(at, 'must be a number (ranges compare numeric attributes)')
          return v
        }
        if (op === 'contains') {
          if (typeof v !== 'string' || v === '') return this.fail(at, 'must be a non-empty string')
          return v
        }
        if (typeof v !== 'string' && typeof v !== 'boolean' && !(typeof v === 'number' && Number.isFinite(v))) {
          return this.fail(at, 'must be a string, number or boolean')
        }
        return v
      default:
        return this.fail(at, 'is not valid here')
    }
  }

  time(v: Json, at: string): TimeBound | undefined {
    if (isObject(v)) {
      const keys = Object.keys(v)
      const n = v.last_n_days
      if (keys.length !== 1 || !Number.isInteger(n) || (n as number) < 0 || (n as number) > 36500) {
        return this.fail(at, 'a relative date is { "last_n_days": <integer 0..36500> }')
      }
      return { days: n as number }
    }
    if (typeof v === 'string' && (DATE.test(v) || TIMESTAMP.test(v))) {
      const ms = Date.parse(DATE.test(v) ? `${v}T00:00:00Z` : v)
      const year = new Date(ms).getUTCFullYear()
      if (Number.isFinite(ms) && year >= 1900 && year <= 2200) return { at: new Date(ms).toISOString() }
    }
    return this.fail(at, 'must be a date (YYYY-MM-DD), an RFC 3339 timestamp or { "last_n_days": n }')
  }

  related(kind: RelatedAst['kind'], raw: Json, at: string): RelatedAst | undefined {
    if (!isObject(raw)) return this.fail(at, 'must be an object')
    const allowed: Record<RelatedAst['kind'], string[]> = {
      orders: ['status', 'currency', 'category', 'sku'],
      interactions: ['channel', 'direction'],
      feedback: ['kind', 'open'],
    }
    const out: RelatedAst = { kind, min: 1 }
    for (const [k, v] of Object.entries(raw)) {
      const p = `${at}/${pointerToken(k)}`
      if (k === 'min_count' || k === 'max_count') {
        if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 1_000_000) return this.fail(p, 'must be an integer from 0 to 1000000')
        if (k === 'min_count') out.min = v as number
        else out.max = v as number
      } else if (k === 'since' || k === 'before') {
        const t = this.time(v, p)
        if (!t) return undefined
        out[k] = t
      } else if (!allowed[kind].includes(k)) {
        return this.fail(p, 'is not an accepted property')
      } else if (k === 'open') {
        if (typeof v !== 'boolean') return this.fail(p, 'must be true or false')
        out.open = v
      } else if (k === 'currency') {
        if (!isCurrencyCode(v)) return this.fail(p, CURRENCY_MESSAGE)
        out.currency = v
      } else if (k === 'category' || k === 'sku') {
        if (typeof v !== 'string' || v === '' || v.length > FILTER_LIMITS.maxString) return this.fail(p, `must be a string of 1 to ${FILTER_LIMITS.maxString} characters`)
        out[k] = v
      } else {
        const domain = k === 'status' ? ORDER_STATUSES : k === 'channel' ? INTERACTION_CHANNELS : k === 'direction' ? INTERACTION_DIRECTIONS : FEEDBACK_KINDS
        const list = this.enumList(v, domain, p)
        if (!list) return undefined
        if (k === 'direction') out.directions = list
        else out.values = list
      }
    }
    if (out.max !== undefined && out.max < out.min) {
      // {max_count: 0} alone means "none": the default min_count of 1 yields to it.
      if (!('min_count' in raw)) out.min = 0
      else return this.fail(`${at}/max_count`, 'must not be less than min_count')
    }
    return out
  }

  enumList(v: Json, domain: readonly string[], at: string): string[] | undefined {
    if (!Array.isArray(v) || v.length === 0 || v.length > domain.length * 2) return this.fail(at, 'must be a non-empty array')
    for (let i = 0; i < v.length; i++) {
      if (typeof v[i] !== 'string' || !domain.includes(v[i] as string)) return this.fail(`${at}/${i}`, `must be one of: ${domain.join(', ')}`)
    }
    return [...new Set(v as string[])]
  }
}

/** Validates a filter; `at` is the pointer of the filter in the request (e.g. "/filter"). */
export function checkFilter(raw: unknown, at: string): { ast?: FilterAst; errors: FieldError[] } {
  const p = new Parser()
  const ast = p.node(raw, at, 1)
  return p.errors.length === 0 && ast ? { ast, errors: [] } : { errors: p.errors.length ? p.errors : [{ pointer: at, message: 'is not a valid filter' }] }
}

/** Validates a filter or throws a 400 whose errors point at the bad nodes. */
export function parseFilter(raw: unknown, at: string): FilterAst {
  const { ast, errors } = checkFilter(raw, at)
  if (!ast) throw problem('invalid-filter', 'The filter is invalid.', errors)
  return ast
}
