import t from 'tap'
import safeRegex from 'safe-regex2'
import { setup } from '../helpers/app.js'
import { resolveParameter } from '../helpers/openapi.js'

/**
 * Resource limits in the contract (API.md, issue "Hardening" § Limits), checked on the OpenAPI
 * document the app serves, so every route present and future is covered:
 * - every string a client sends is bounded: maxLength, or an enum, or a bounded format, or an
 *   anchored pattern with bounded repetition;
 * - every array a client sends has maxItems; every object has additionalProperties false, or is
 *   a map with maxProperties whose values are bounded too;
 * - every `pattern` in the document is a linear-time regex (safe-regex2 star height check).
 */
type Schema = Record<string, unknown>
interface Doc {
  paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string; schema: Schema } | { $ref: string }>; requestBody?: { content: Record<string, { schema: Schema }> } }>>
  components: { schemas: Record<string, Schema> }
}

const ctx = await setup()
const doc = ctx.app.swagger() as unknown as Doc

/** Formats whose values have a fixed maximum length: uuid and date under ajv-formats, iso-4217 (three letters) under lib/validation.ts. */
const BOUNDED_FORMATS = new Set(['uuid', 'date', 'iso-4217'])

function resolve(schema: Schema): { schema: Schema; name?: string } {
  const ref = schema.$ref
  if (typeof ref !== 'string') return { schema }
  const name = ref.replace('#/components/schemas/', '')
  const target = doc.components.schemas[name]
  if (!target) throw new Error(`unresolved $ref ${ref}`)
  return { schema: target, name }
}

/** A pattern whose matches have a bounded length: anchored, no *, + or open {n,}. */
function boundedPattern(pattern: unknown): boolean {
  if (typeof pattern !== 'string') return false
  if (!pattern.startsWith('^') || !pattern.endsWith('$')) return false
  return !/(?<!\\)[*+]|\{\d+,\}/.test(pattern)
}

function types(schema: Schema): string[] {
  const type = schema.type
  return Array.isArray(type) ? (type as string[]) : typeof type === 'string' ? [type] : []
}

/** Collects the reasons a request schema is unbounded, with a JSON-pointer-like path. */
function audit(schema: Schema, at: string, problems: string[], seen: Set<string>) {
  const { schema: s, name } = resolve(schema)
  if (name) {
    if (seen.has(name)) return
    seen.add(name)
    at = `${at}(${name})`
  }
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const list = s[key] as Schema[] | undefined
    list?.forEach((sub, i) => audit(sub, `${at}/${key}/${i}`, problems, seen))
  }
  const ts = types(s)
  if (ts.length === 0 && !s.anyOf && !s.oneOf && !s.allOf && !s.enum && !('const' in s)) {
    problems.push(`${at}: accepts any value (no type)`)
  }
  if (ts.includes('string')) {
    const bounded = typeof s.maxLength === 'number' || Array.isArray(s.enum) || 'const' in s ||
      (typeof s.format === 'string' && BOUNDED_FORMATS.has(s.format)) || boundedPattern(s.pattern)
    if (!bounded) problems.push(`${at}: string without maxLength`)
  }
  if (ts.includes('array')) {
    if (typeof s.maxItems !== 'number') problems.push(`${at}: array without maxItems`)
    if (s.items) audit(s.items as Schema, `${at}/items`, problems, seen)
    else problems.push(`${at}: array without items schema`)
  }
  if (ts.includes('object')) {
    const extra = s.additionalProperties
    const patterned = s.patternProperties as Record<string, Schema> | undefined
    if (extra === false && !patterned) {
      // closed object: fine
    } else if ((typeof extra === 'object' && extra !== null) || patterned) {
      if (typeof s.maxProperties !== 'number') problems.push(`${at}: map without maxProperties`)
      if (typeof extra === 'object' && extra !== null) audit(extra as Schema, `${at}/additionalProperties`, problems, seen)
      for (const [p, sub] of Object.entries(patterned ?? {})) audit(sub, `${at}/patternProperties/${p}`, problems, seen)
    } else problems.push(`${at}: object without additionalProperties: false`)
    for (const [prop, sub] of Object.entries((s.properties as Record<string, Schema> | undefined) ?? {})) {
      audit(sub, `${at}/${prop}`, problems, seen)
    }
  }
}

t.test('every request body is bounded: strings, arrays and objects', async (t) => {
  let bodies = 0
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
        // Streamed uploads (CSV, NDJSON) are bounded by their route's byte limit, not a schema.
        if (!type.includes('json') || type.includes('ndjson')) continue
        bodies++
        const problems: string[] = []
        audit(media.schema, '', problems, new Set())
        t.same(problems, [], `${method.toUpperCase()} ${path} (${type})`)
      }
    }
  }
  t.ok(bodies >= 8, `${bodies} request bodies checked`)
})

t.test('every string parameter (path, query, header) is bounded', async (t) => {
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      for (const p of (op.parameters ?? []).map((p) => resolveParameter(doc as never, p as never))) {
        const problems: string[] = []
        audit(p.schema, '', problems, new Set())
        t.same(problems, [], `${method.toUpperCase()} ${path} ${p.in} ${p.name}`)
      }
    }
  }
})

t.test('every pattern in the document is a safe (linear-time) regex', async (t) => {
  const patterns = new Map<string, string>()
  const walk = (node: unknown, at: string, inProperties: boolean) => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${at}/${i}`, false))
    if (!node || typeof node !== 'object') return
    for (const [k, v] of Object.entries(node)) {
      if (!inProperties && k === 'pattern' && typeof v === 'string') patterns.set(v, `${at}/pattern`)
      if (!inProperties && k === 'patternProperties' && v && typeof v === 'object') for (const p of Object.keys(v)) patterns.set(p, `${at}/patternProperties`)
      walk(v, `${at}/${k}`, !inProperties && (k === 'properties' || k === 'patternProperties'))
    }
  }
  walk(doc, '', false)
  t.ok(patterns.size >= 3, `${patterns.size} distinct patterns`)
  for (const [pattern, at] of patterns) {
    t.doesNotThrow(() => new RegExp(pattern, 'u'), `${at}: compiles as a unicode regex`)
    t.ok(safeRegex(pattern), `${at}: ${pattern} is safe`)
  }
})

t.test('the checks themselves catch what they should', async (t) => {
  const problems: string[] = []
  audit({ type: 'object', properties: { s: { type: 'string' }, a: { type: 'array', items: { type: 'integer' } }, o: { type: 'object', additionalProperties: false }, m: { type: 'object', additionalProperties: { type: 'string', maxLength: 5 } } } }, '', problems, new Set())
  t.same(problems.sort(), ['/a: array without maxItems', '/m: map without maxProperties', '/s: string without maxLength', ': object without additionalProperties: false'])
  t.ok(boundedPattern('^[A-Z]{3}$'))
  t.notOk(boundedPattern('^[A-Z]+$'))
  t.notOk(boundedPattern('[A-Z]{3}'))
  t.notOk(safeRegex('^(a+)+$'), 'a nested quantifier is unsafe')
})
