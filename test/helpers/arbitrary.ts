import fc from 'fast-check'
import { resolve, type JsonSchema, type OpenApiDoc } from './openapi.js'
import { CURRENCY_CODES } from '../../src/lib/currency.js'
import { CURRENCY_FORMAT } from '../../src/lib/schema.js'

/**
 * fast-check arbitraries derived from the OpenAPI document's JSON schemas: `valid` values that
 * satisfy a schema (the subset TypeBox emits here: objects, arrays, strings with format, pattern
 * or enum, integers, booleans, nullable, $ref, anyOf/oneOf), and `mutated` values that break it
 * somewhere. Sizes are kept small: the point is breadth of shapes, not volume.
 */
export interface ArbitraryOptions {
  /** A uuid for a field or parameter of this name (lets callers mix in ids of existing records). */
  uuid?: (name: string) => fc.Arbitrary<string>
  /** Upper bound for generated strings and arrays, below the schema's own maxLength/maxItems. */
  maxLength?: number
  maxItems?: number
}

const TEXT = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme-ascii' }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme' }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary' }) },
  { weight: 1, arbitrary: fc.constantFrom("'; drop table customers; --", '<script>alert(1)</script>', '../../etc/passwd', '%00', '\u0000', '${jndi:x}', '{{7*7}}', '🙂🙂', 'ℌ', '\u202e', ' ') },
)

const DATE_MIN = new Date('1900-01-01T00:00:00Z')
const DATE_MAX = new Date('2099-12-31T23:59:59Z')
const dateTime = fc.date({ min: DATE_MIN, max: DATE_MAX, noInvalidDate: true }).map((d) => d.toISOString())
const dateOnly = dateTime.map((s) => s.slice(0, 10))

export function valid(doc: OpenApiDoc, schema: JsonSchema, opts: ArbitraryOptions = {}, name = '', depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(doc, schema)
  let base = validNotNull(doc, s, opts, name, depth)
  // A leaf's example is a realistic value (an include list, a sort spec): draw it often. Not for
  // ids, which are the caller's to choose, nor for objects, whose examples may hold such ids.
  const leaf = s.type !== 'object' && s.type !== 'array' && s.format !== 'uuid'
  if (leaf && s.example !== undefined && s.example !== null) base = fc.oneof(base, fc.constant(s.example))
  return s.nullable && !s.enum ? fc.oneof({ weight: 4, arbitrary: base }, { weight: 1, arbitrary: fc.constant(null) }) : base
}

/** Past this depth a schema with an example yields its example: recursive schemas (the customer filter) end. */
const MAX_GENERATED_DEPTH = 6

function validNotNull(doc: OpenApiDoc, s: JsonSchema, opts: ArbitraryOptions, name: string, depth: number): fc.Arbitrary<unknown> {
  if (depth > MAX_GENERATED_DEPTH && s.example !== undefined) return fc.constant(s.example)
  if (s.enum) return fc.constantFrom(...s.enum)
  if ('const' in s) return fc.constant(s.const)
  const alternatives = s.anyOf ?? s.oneOf
  if (alternatives) return fc.oneof(...alternatives.map((a) => valid(doc, a, opts, name, depth)))
  if (s.allOf) return valid(doc, Object.assign({}, ...s.allOf.map((a) => resolve(doc, a))) as JsonSchema, opts, name, depth)
  const type = Array.isArray(s.type) ? s.type[0] : s.type
  switch (type) {
    case 'string':
      return stringOf(s, opts, name)
    case 'integer': {
      const min = typeof s.minimum === 'number' ? s.minimum : -1_000_000
      const max = typeof s.maximum === 'number' ? s.maximum : 1_000_000
      return fc.oneof(fc.integer({ min, max }), fc.constantFrom(min, max))
    }
    case 'number':
      return fc.double({ min: (s.minimum as number) ?? -1e9, max: (s.maximum as number) ?? 1e9, noNaN: true, noDefaultInfinity: true })
    case 'boolean':
      return fc.boolean()
    case 'null':
      return fc.constant(null)
    case 'array': {
      const minLength = (s.minItems as number | undefined) ?? 0
      const maxLength = Math.max(minLength, Math.min((s.maxItems as number | undefined) ?? 10, opts.maxItems ?? 3))
      const item = s.items ? valid(doc, s.items, opts, name, depth + 1) : fc.jsonValue({ maxDepth: 1 })
      return fc.array(item, { minLength, maxLength, ...(s.uniqueItems ? { selector: (v: unknown) => JSON.stringify(v) } : {}) }).map((a) => a)
    }
    case 'object':
    default:
      return objectOf(doc, s, opts, depth)
  }
}

function stringOf(s: JsonSchema, opts: ArbitraryOptions, name: string): fc.Arbitrary<string> {
  const minLength = (s.minLength as number | undefined) ?? 0
  const maxLength = Math.max(minLength, Math.min((s.maxLength as number | undefined) ?? 200, opts.maxLength ?? 40))
  const fits = (v: string) => [...v].length >= minLength && [...v].length <= ((s.maxLength as number | undefined) ?? Infinity)
  if (s.format === 'uuid') return opts.uuid ? opts.uuid(name) : fc.uuid({ version: 7 })
  if (s.format === 'date-time') return dateTime
  if (s.format === 'date') return dateOnly
  if (s.format === 'email') return fc.emailAddress()
  if (s.format === CURRENCY_FORMAT) return fc.constantFrom(...CURRENCY_CODES)
  if (typeof s.pattern === 'string') return fc.stringMatching(new RegExp(s.pattern)).filter(fits)
  return fc.oneof(
    { weight: 3, arbitrary: TEXT },
    { weight: 1, arbitrary: fc.string({ minLength: maxLength, maxLength, unit: 'grapheme-ascii' }) },
  ).map((v) => [...v].slice(0, maxLength).join('')).filter(fits)
}

function objectOf(doc: OpenApiDoc, s: JsonSchema, opts: ArbitraryOptions, depth: number): fc.Arbitrary<unknown> {
  const props = s.properties ?? {}
  const required = new Set(s.required ?? [])
  const model: Record<string, fc.Arbitrary<unknown>> = {}
  for (const [key, prop] of Object.entries(props)) model[key] = valid(doc, prop, opts, key, depth + 1)
  let arb: fc.Arbitrary<Record<string, unknown>> = fc.record(model, { requiredKeys: [...required].filter((k) => k in model) })
  const open = s.additionalProperties === true || (s.additionalProperties === undefined && Object.keys(props).length === 0)
  if (open && depth < 4) {
    const names = (s.propertyNames as JsonSchema | undefined)?.pattern
    const key = names ? fc.stringMatching(new RegExp(names as string)) : fc.string({ minLength: 1, maxLength: 20 })
    const maxKeys = Math.min((s.maxProperties as number | undefined) ?? 5, 3)
    arb = fc.tuple(arb, fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys })).map(([known, extra]) => ({ ...extra, ...known }))
  }
  const minProperties = (s.minProperties as number | undefined) ?? 0
  const maxProperties = (s.maxProperties as number | undefined) ?? Infinity
  return arb.filter((o) => Object.keys(o).length >= minProperties && Object.keys(o).length <= maxProperties)
}

type Path = Array<string | number>

/** An own property even for __proto__ (plain assignment would set the prototype instead). */
function put(target: object, key: string, value: unknown): object {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
  return target
}

function paths(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at)
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...at, i], out))
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out)
  return out
}

function setAt(root: unknown, path: Path, fn: (parent: Record<string | number, unknown>, key: string | number) => void): unknown {
  if (path.length === 0) return root
  const copy = structuredClone(root) as Record<string | number, unknown>
  let parent = copy
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>
  fn(parent, path[path.length - 1]!)
  return copy
}

const HOSTILE = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, -1, 0, 2 ** 53, -(2 ** 63), 1e308, 1.5, '', ' ', 'x'.repeat(5000), [], {}, [null], { $gt: '' }, true, '0', 'NaN', '1e999', '2026-02-30', '2026-13-01T00:00:00Z', '00000000-0000-0000-0000-000000000000', '-1.999', '9999999999999.99'),
)

/**
 * A valid value broken in one place: a value replaced by something hostile, a property removed
 * or added (unknown, or server-owned), the whole thing replaced, or wrapped in an array.
 * Some mutations still happen to be valid; the server must answer either way without a 5xx.
 */
export function mutated(validArb: fc.Arbitrary<unknown>, extraKeys: string[] = []): fc.Arbitrary<unknown> {
  const keys = fc.constantFrom('id', 'version', 'created_at', 'updated_at', 'archived_at', '__proto__', 'constructor', 'x-unknown', ...extraKeys)
  return fc.tuple(validArb, fc.nat(), HOSTILE, fc.constantFrom('replace', 'replace', 'replace', 'delete', 'add', 'root', 'wrap'), keys).map(([value, n, hostile, op, key]) => {
    const all = paths(value)
    const target = all[n % all.length]!
    switch (op) {
      case 'replace':
        return target.length === 0 ? hostile : setAt(value, target, (p, k) => { p[k] = hostile })
      case 'delete':
        return target.length === 0 ? undefined : setAt(value, target, (p, k) => { if (Array.isArray(p)) p.splice(k as number, 1); else delete p[k] })
      case 'add': {
        const objects = all.filter((p) => { let v: unknown = value; for (const k of p) v = (v as Record<string | number, unknown>)[k]; return v !== null && typeof v === 'object' && !Array.isArray(v) })
        if (objects.length === 0) return hostile
        const at = objects[n % objects.length]!
        if (at.length === 0) return put(structuredClone(value) as object, key, hostile)
        return setAt(value, at, (p, k) => { put(p[k] as object, key, hostile) })
      }
      case 'root':
        return hostile
      default:
        return [value]
    }
  })
}
