import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { isCurrencyCode } from '../../src/lib/currency.js'
import { CURRENCY_FORMAT } from '../../src/lib/schema.js'
import type { App } from '../../src/app.js'

// ajv-formats is CommonJS with a default export; under NodeNext it arrives wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv2020) => Ajv2020

/**
 * The built app's OpenAPI document as tests walk it: every operation with its parameters, body
 * and response schemas, so that security and fuzz tests cover routes added later without edits.
 */
export type JsonSchema = Record<string, unknown> & {
  $ref?: string
  type?: string | string[]
  properties?: Record<string, JsonSchema>
  required?: string[]
  items?: JsonSchema
  enum?: unknown[]
  nullable?: boolean
  additionalProperties?: boolean | JsonSchema
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  allOf?: JsonSchema[]
  example?: unknown
  readOnly?: boolean
}

export interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema: JsonSchema
}

export interface Operation {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE'
  /** OpenAPI path: /v1/customers/{id} */
  path: string
  operationId: string
  parameters: Parameter[]
  pathParams: Parameter[]
  query: Parameter[]
  /** The request body schema as written in the document (often a $ref), if any. */
  body?: JsonSchema
  /** The body's media types (application/json first when accepted). */
  bodyMediaTypes: string[]
  /** True when the body is JSON (not a streamed upload such as CSV or NDJSON). */
  jsonBody: boolean
  bodyRequired: boolean
  /** Response schemas by status code; undefined for a response without content (204, 304). */
  responses: Record<string, JsonSchema | undefined>
}

export interface OpenApiResponse {
  description?: string
  content?: Record<string, { schema: JsonSchema }>
  headers?: Record<string, JsonSchema & { required?: boolean; schema?: JsonSchema }>
}

export interface OpenApiOperation {
  operationId?: string
  parameters?: Array<Parameter | { $ref: string }>
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonSchema }> }
  responses: Record<string, OpenApiResponse>
  security?: Array<Record<string, string[]>>
}

export interface OpenApiDoc {
  paths: Record<string, Record<string, OpenApiOperation>>
  components: {
    schemas: Record<string, JsonSchema>
    headers?: Record<string, { required?: boolean; description?: string; schema: JsonSchema }>
    parameters?: Record<string, Parameter>
  }
  security?: unknown[]
}

const METHODS = ['get', 'post', 'patch', 'put', 'delete'] as const

export function openApiDocument(app: App): OpenApiDoc {
  return JSON.parse(JSON.stringify(app.swagger())) as OpenApiDoc
}

export function operations(doc: OpenApiDoc): Operation[] {
  const out: Operation[] = []
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) {
      const op = item[m]
      if (!op) continue
      // Shared parameters (components.parameters: If-Match, Idempotency-Key, ...) as written out.
      const parameters = (op.parameters ?? []).map((p) => resolveParameter(doc, p))
      const content = op.requestBody?.content ?? {}
      const bodyMedia = content['application/json'] ?? Object.values(content)[0]
      const responses: Record<string, JsonSchema | undefined> = {}
      for (const [status, r] of Object.entries(op.responses)) {
        const media = r.content?.['application/json'] ?? r.content?.['application/problem+json'] ?? (r.content ? Object.values(r.content)[0] : undefined)
        responses[status] = media?.schema
      }
      out.push({
        method: m.toUpperCase() as Operation['method'],
        path,
        operationId: op.operationId ?? `${m} ${path}`,
        parameters,
        pathParams: parameters.filter((p) => p.in === 'path'),
        query: parameters.filter((p) => p.in === 'query'),
        ...(bodyMedia ? { body: bodyMedia.schema } : {}),
        bodyMediaTypes: Object.keys(content).sort((a, b) => Number(b === 'application/json') - Number(a === 'application/json')),
        jsonBody: Object.keys(content).some((m) => m === 'application/json' || m.endsWith('+json')),
        bodyRequired: op.requestBody?.required ?? false,
        responses,
      })
    }
  }
  return out
}

/** A parameter as written, or the shared one (#/components/parameters/X) it refers to. */
export function resolveParameter(doc: OpenApiDoc, p: Parameter | { $ref: string }): Parameter {
  if (!('$ref' in p)) return p
  const name = /^#\/components\/parameters\/(.+)$/.exec(p.$ref)?.[1]
  const target = name ? doc.components.parameters?.[name] : undefined
  if (!target) throw new Error(`unresolvable $ref ${p.$ref}`)
  return target
}

/** Follows $refs (#/components/schemas/X) until a schema without one. */
export function resolve(doc: OpenApiDoc, schema: JsonSchema): JsonSchema {
  let s = schema
  for (let i = 0; s.$ref && i < 20; i++) {
    const name = /^#\/components\/schemas\/(.+)$/.exec(s.$ref)?.[1]
    const target = name ? doc.components.schemas[decodeURIComponent(name)] : undefined
    if (!target) throw new Error(`unresolvable $ref ${s.$ref}`)
    s = target
  }
  return s
}

/** The component name a schema refers to, if it is a $ref. */
export const refName = (schema: JsonSchema | undefined) => (schema?.$ref ? /([^/]+)$/.exec(schema.$ref)?.[1] : undefined)

/** Fills an OpenAPI path template: /v1/customers/{id} with { id: 'x' }. */
export function fillPath(path: string, values: Record<string, string>): string {
  return path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'))
}

/** Fastify's form of the path (/v1/customers/:id), as request.routeOptions.url has it. */
export const routeUrl = (path: string) => path.replace(/\{([^}]+)\}/g, ':$1')

/**
 * Ajv compiled against the document's components, the way a client would validate responses:
 * OpenAPI 3.1 schemas are JSON Schema 2020-12 (null is a type), formats checked.
 */
export function responseValidator(doc: OpenApiDoc) {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true })
  addFormats(ajv)
  // The API's own format (lib/schema.ts Currency): a client validating responses knows the codes too.
  ajv.addFormat(CURRENCY_FORMAT, { type: 'string', validate: isCurrencyCode })
  ajv.addFormat('binary', true)
  // Annotations: oneOf decides a union by itself, the discriminator only helps generators.
  for (const keyword of ['example', 'discriminator', 'x-streamed-body']) ajv.addKeyword({ keyword })
  ajv.addSchema({ components: doc.components }, 'openapi.json')
  // By the schema's text: the same $ref written in many places compiles once.
  const cache = new Map<string, ValidateFunction>()
  return (schema: JsonSchema, value: unknown): string | undefined => {
    const text = JSON.stringify(schema)
    let validate = cache.get(text)
    if (!validate) {
      // Rebase local refs onto the document added above.
      validate = ajv.compile(JSON.parse(text.replace(/"#\/components\//g, '"openapi.json#/components/')) as object)
      cache.set(text, validate)
    }
    if (validate(value)) return undefined
    return ajv.errorsText(validate.errors, { dataVar: 'body' })
  }
}

/** A JSON Pointer (RFC 6901) as a well-formed string: empty, or /token/token with ~0 ~1 escapes only. */
export const WELL_FORMED_POINTER = /^(\/([^~/]|~[01])*)*$/
