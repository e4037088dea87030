import { Ajv, type Options, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import { CURRENCY_MESSAGE, isCurrencyCode } from './currency.js'
import { HttpProblem, type FieldError } from './problem.js'
import { CURRENCY_FORMAT } from './schema.js'

// ajv-formats is CommonJS with a default export; under NodeNext it arrives wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv

/**
 * Two Ajv instances: bodies are validated strictly (no coercion, unknown properties are errors,
 * not silently dropped); query strings, params and headers keep coercion because they are text.
 */
function makeAjv(overrides: Options, externalSchemas: Record<string, unknown>): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    strict: false,
    useDefaults: true,
    removeAdditional: false,
    ...overrides,
  })
  addFormats(ajv)
  ajv.addFormat(CURRENCY_FORMAT, { type: 'string', validate: isCurrencyCode })
  ajv.addKeyword({ keyword: 'example' })
  for (const schema of Object.values(externalSchemas)) {
    const id = (schema as { $id?: string }).$id
    if (id && !ajv.getSchema(id)) ajv.addSchema(schema as object, id)
  }
  return ajv
}

/**
 * A validator for values that do not arrive as a request body but must meet the same rules (rows
 * of a bulk import): strict, no coercion, unknown properties are errors. Errors go through
 * toFieldErrors like a body's.
 */
export function compileStrictValidator(schema: object): ValidateFunction {
  return makeAjv({ coerceTypes: false }, {}).compile(schema)
}

/** Marks a body schema whose content the handler reads as a stream: documented, never buffered or validated here. */
export const STREAMED_BODY = 'x-streamed-body'

export function buildValidatorFactory() {
  // Typed loosely: Fastify's ValidatorFactory type is tied to its bundled Ajv version.
  return ((externalSchemas: Record<string, unknown> = {}): FastifySchemaCompiler<unknown> => {
    const body = makeAjv({ coerceTypes: false }, externalSchemas)
    const text = makeAjv({ coerceTypes: 'array' }, externalSchemas)
    return ({ schema, httpPart }) => {
      if ((schema as Record<string, unknown>)[STREAMED_BODY]) return () => true
      const ajv = httpPart === 'body' ? body : text
      return ajv.compile(schema as object) as ValidateFunction
    }
  }) as never
}

interface AjvLikeError {
  instancePath: string
  keyword: string
  message?: string
  params: Record<string, unknown>
}

/** One entry per bad field, each with a JSON Pointer relative to the validated part. */
export function toFieldErrors(errors: AjvLikeError[]): FieldError[] {
  const out: FieldError[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    let ptr = e.instancePath
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'required') {
      ptr += '/' + escape(String(e.params.missingProperty))
      message = 'is required'
    } else if (e.keyword === 'additionalProperties') {
      ptr += '/' + escape(String(e.params.additionalProperty))
      message = 'is not an accepted property (unknown or read-only)'
    } else if (e.keyword === 'format' && e.params.format === CURRENCY_FORMAT) {
      message = CURRENCY_MESSAGE
    } else if (e.keyword === 'enum') {
      message = `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`
    }
    // anyOf/oneOf add a summary error after their branches; the branches already say more.
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') {
      if (out.some((o) => o.pointer === ptr)) continue
    }
    const key = ptr + '\u0000' + message
    if (seen.has(key)) continue
    seen.add(key)
    out.push({ pointer: ptr, message })
  }
  return out
}

function escape(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1')
}

/** Rejects JSON nested deeper than `max` before it is parsed: deep nesting is a cheap DoS. */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92 /* \ */) i++
      else if (c === 34 /* " */) inString = false
    } else if (c === 34) inString = true
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) return true
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--
  }
  return false
}

/**
 * Values a parsed JSON document holds that cannot be stored as sent, with pointers: numbers beyond
 * a 64-bit double (JSON.parse made them ±Infinity, which JSON.stringify writes as null) and text or
 * member names with a NUL character (PostgreSQL's text and jsonb cannot hold U+0000). At most 20.
 */
export function unstorableValues(value: unknown, at: Array<string | number> = [], found: FieldError[] = []): FieldError[] {
  if (found.length >= 20) return found
  const here = () => at.map((t) => '/' + escape(String(t))).join('')
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) found.push({ pointer: here(), message: 'is a number too large to represent' })
  } else if (typeof value === 'string') {
    if (value.includes('\u0000')) found.push({ pointer: here(), message: NUL_MESSAGE })
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => unstorableValues(v, [...at, i], found))
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes('\u0000')) found.push({ pointer: here(), message: 'has a member whose name contains a NUL character (U+0000)' })
      else unstorableValues(v, [...at, k], found)
    }
  }
  return found
}

export const NUL_MESSAGE = 'contains a NUL character (U+0000), which cannot be stored'

/** Text that may hold what unstorableValues finds: a 3-digit exponent, 309 digits in a row, or an escaped NUL. */
export const MAYBE_UNSTORABLE = /[eE]\+?\d{3}|\d{309}|\\u0000/

/** The problem for values unstorableValues found. */
export const unstorable = (errors: FieldError[], part = 'body') =>
  new HttpProblem('unstorable-value', {
    detail: `A value in the ${part} cannot be stored as sent (a number beyond a 64-bit double, or a NUL character).`,
    errors,
  })
