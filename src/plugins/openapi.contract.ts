import type { RouteOptions } from 'fastify'
import { SCOPES, type RouteScope } from './auth.js'

/**
 * # What the contract says beyond the route schemas
 *
 * The routes declare their bodies and success responses; everything the cross-cutting plugins add
 * to every route (headers read or sent, the problems they answer, the scope a token needs) is added
 * here, once, from the route's config. A new route declares its scope and, where they apply:
 * - `contract.etag`: its 2xx answers carry ETag (a GET that declares 304 implies it, with If-None-Match);
 * - `contract.ifMatch`: it honours If-Match (412 when stale);
 * - `contract.creates`: its 201/202 answers carry Location.
 * The rest follows from what the other plugins already know: POST without config.transaction
 * 'manual' takes Idempotency-Key (plugins/idempotency.ts), a route whose responses carry personal
 * data sends Cache-Control and X-PII-Masked (config.pii, plugins/pii.ts), a non-public route is
 * rate limited and authenticated (plugins/limits.ts, plugins/auth.ts).
 */
export interface RouteContract {
  etag?: boolean
  ifMatch?: boolean
  creates?: boolean
  /** Other headers its 2xx answers always carry: header name → components.headers name. */
  sends?: Record<string, keyof typeof HEADERS & string>
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The headers this route reads or sends beyond the defaults (see plugins/openapi.contract.ts). */
    contract?: RouteContract
  }
}

type Json = Record<string, unknown>
const ref = (kind: string, name: string) => ({ $ref: `#/components/${kind}/${name}` })

const PROBLEM_MEDIA = 'application/problem+json'

/** Each status the server can answer, with what it means in this API. */
export const STATUS_DESCRIPTIONS: Record<number, string> = {
  400: 'Bad Request: malformed or schema-invalid input; errors[] has a JSON Pointer per bad value',
  401: 'Unauthorized: no token, or a token that is invalid or expired',
  403: 'Forbidden: the token lacks the scope this operation needs',
  404: 'Not Found: no such record, or one the caller may not see',
  408: 'Request Timeout: the request did not arrive in time',
  409: 'Conflict with existing data (a unique value taken, an archived record, an Idempotency-Key in use)',
  412: 'Precondition Failed: If-Match does not name the current version',
  413: 'Content Too Large: the body exceeds the route\'s limit',
  414: 'URI Too Long: a path parameter is longer than the API accepts',
  415: 'Unsupported Media Type: the body is not in a media type this operation takes',
  422: 'Unprocessable Content: a valid request that breaks a business rule, or an Idempotency-Key reused with another request',
  429: 'Too Many Requests: rate limited; retry after Retry-After seconds',
  431: 'Request Header Fields Too Large: answered before routing',
  500: 'Internal Server Error: a bug, logged with the request id; never carries internals',
  503: 'Service Unavailable: overloaded, the database unavailable or slow, the request past its deadline, or the instance shutting down (then with Connection: close); retry after Retry-After seconds',
}

/** Response headers the server sends, as components.headers (required: sent on every answer that declares it). */
export const HEADERS: Record<string, Json> = {
  XRequestId: { required: true, description: 'The server\'s id for this request (also request_id in problems and in the audit trail)', schema: { type: 'string', format: 'uuid' } },
  XCorrelationId: { description: 'The client\'s own id for the request (X-Correlation-Id, else X-Request-Id), echoed when well-formed', schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$' } },
  ETag: { required: true, description: 'The record\'s version as a strong entity tag ("3"); send it back in If-Match or If-None-Match', schema: { type: 'string', pattern: '^"[0-9]+"$', example: '"3"' } },
  Location: { required: true, description: 'Path of the created record (or job)', schema: { type: 'string', example: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11' } },
  IdempotentReplayed: { description: 'true when this is the stored first response to the same Idempotency-Key and request, replayed', schema: { type: 'string', enum: ['true'] } },
  RateLimitLimit: { description: 'Requests allowed per window (IETF RateLimit header fields draft); absent while the shared limiter is unreachable', schema: { type: 'integer', minimum: 0 } },
  RateLimitRemaining: { description: 'Requests left in the current window', schema: { type: 'integer', minimum: 0 } },
  RateLimitReset: { description: 'Seconds until the window resets', schema: { type: 'integer', minimum: 0 } },
  RetryAfter: { required: true, description: 'Seconds to wait before retrying', schema: { type: 'string', pattern: '^[0-9]+$', example: '2' } },
  WWWAuthenticate: { required: true, description: 'Bearer challenge (RFC 6750)', schema: { type: 'string', example: 'Bearer' } },
  XPiiMasked: { description: 'true when personal fields (phone, email, address, birthday) were masked because the token lacks pii:read', schema: { type: 'string', enum: ['true'] } },
  CacheControl: { required: true, description: 'no-store on every answer that carries personal data', schema: { type: 'string', example: 'no-store' } },
  XConsistencyToken: { description: 'With a read replica configured: the commit position of this write; send it back on a read (X-Consistency-Token) to read it', schema: { type: 'string', pattern: '^[0-9A-F]{1,8}/[0-9A-F]{1,8}$', example: '0/1A2B3C4D' } },
  Connection: { description: 'close when the instance is shutting down (problem shutting-down): the server closes this connection after the answer; retry on a new one', schema: { type: 'string', enum: ['close', 'keep-alive'], example: 'close' } },
  ContentDisposition: { required: true, description: 'attachment with a file name', schema: { type: 'string', example: 'attachment; filename="segment-0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11.csv"' } },
}

/** Request headers the server reads, as components.parameters. */
export const PARAMETERS: Record<string, Json> = {
  IfMatch: {
    name: 'If-Match', in: 'header', required: false,
    description: 'The ETag you read ("3"): the change applies only to that version, else 412. A weak tag never matches; * or absent applies unconditionally.',
    schema: { type: 'string', maxLength: 64, example: '"3"' },
  },
  IfNoneMatch: {
    name: 'If-None-Match', in: 'header', required: false,
    description: 'ETags you hold: when one names the current version the answer is 304 without a body.',
    schema: { type: 'string', maxLength: 1024, example: '"3"' },
  },
  IdempotencyKey: { name: 'Idempotency-Key', in: 'header', required: false, description: 'Makes the POST safe to retry (see the IdempotencyKey schema).', schema: ref('schemas', 'IdempotencyKey') },
  XCorrelationId: {
    name: 'X-Correlation-Id', in: 'header', required: false,
    description: 'Your own id for the request (1-64 of A-Za-z0-9._:-): logged, echoed and recorded in the audit trail next to the server\'s id, which it never replaces.',
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$' },
  },
  XRequestId: {
    name: 'X-Request-Id', in: 'header', required: false,
    description: 'Taken as X-Correlation-Id when that is absent; the response\'s X-Request-Id is always the server\'s own.',
    schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,64}$' },
  },
}

/** What an operation's route says about itself, collected when it is registered. */
interface RouteFacts {
  scope: RouteScope
  contract: RouteContract
  idempotent: boolean
  pii?: { masks: boolean }
  /** A write that answers X-Consistency-Token when a replica is configured (plugins/replica.ts). */
  consistencyToken: boolean
}

/** `GET /v1/customers/{id}` → the route's facts; filled by onRoute, read when the document is built. */
export class RouteRegistry {
  private readonly routes = new Map<string, RouteOptions>()

  add(route: RouteOptions): void {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const m of methods) this.routes.set(`${m.toLowerCase()} ${openApiPath(route.url)}`, route)
  }

  facts(method: string, path: string): RouteFacts | undefined {
    const route = this.routes.get(`${method} ${path}`)
    if (!route) return undefined
    const config = route.config ?? {}
    return {
      scope: config.scope ?? 'public',
      contract: config.contract ?? {},
      idempotent: method === 'post' && config.transaction !== 'manual',
      consistencyToken: method !== 'get' && config.reads !== 'replica',
      ...(config.pii ? { pii: { masks: config.pii.masks } } : {}),
    }
  }
}

/** Fastify's path (/v1/customers/:id) in OpenAPI's form (/v1/customers/{id}). */
export const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const

interface Operation {
  parameters?: Json[]
  requestBody?: { content?: Record<string, unknown> }
  responses: Record<string, { description?: string; content?: Record<string, unknown>; headers?: Record<string, unknown> }>
  security?: unknown[]
  [key: string]: unknown
}

/**
 * Completes the generated document: shared header and parameter components declared on each
 * operation that uses them, every error as application/problem+json with the one Problem schema,
 * every status the server can answer, the scope each operation needs.
 */
export function completeDocument(doc: Json, registry: RouteRegistry): Json {
  const components = (doc.components ??= {}) as Record<string, Record<string, unknown>>
  components.headers = { ...components.headers, ...HEADERS }
  components.parameters = { ...components.parameters, ...PARAMETERS }
  const paths = (doc.paths ?? {}) as Record<string, Record<string, Operation>>
  for (const [path, item] of Object.entries(paths)) {
    for (const method of METHODS) {
      const op = item[method]
      if (!op) continue
      const facts = registry.facts(method, path)
      if (!facts) throw new Error(`no route behind ${method.toUpperCase()} ${path}`)
      completeOperation(op, facts, path)
    }
  }
  return doc
}

function completeOperation(op: Operation, facts: RouteFacts, path: string): void {
  const isPublic = facts.scope === 'public'
  const responses = op.responses
  const conditionalGet = '304' in responses
  const etag = facts.contract.etag || conditionalGet
  const hasBody = op.requestBody !== undefined
  const hasPathParams = /\{[^}]+\}/.test(path)

  // Request headers: the generated Idempotency-Key parameter becomes the shared one.
  const parameters = (op.parameters ?? []).filter((p) => !(p.in === 'header' && String(p.name).toLowerCase() === 'idempotency-key'))
  const shared: string[] = ['XCorrelationId', 'XRequestId']
  if (facts.idempotent) shared.push('IdempotencyKey')
  if (facts.contract.ifMatch) shared.push('IfMatch')
  if (conditionalGet) shared.push('IfNoneMatch')
  op.parameters = [...parameters, ...shared.map((name) => ref('parameters', name))]

  // Every status the server can answer for this operation.
  const statuses = new Set<number>([400, 431, 500, 503])
  if (!isPublic) for (const s of [401, 403, 429]) statuses.add(s)
  if (hasPathParams) for (const s of [404, 414]) statuses.add(s)
  if (hasBody) for (const s of [408, 413, 415]) statuses.add(s)
  if (facts.contract.ifMatch) statuses.add(412)
  if (facts.idempotent) for (const s of [409, 422]) statuses.add(s)
  for (const s of statuses) responses[String(s)] ??= {}

  for (const [key, response] of Object.entries(responses)) {
    const status = Number(key)
    const headers: Record<string, unknown> = { 'X-Request-Id': header('XRequestId', true), 'X-Correlation-Id': header('XCorrelationId') }
    if (!isPublic) {
      headers['RateLimit-Limit'] = header('RateLimitLimit')
      headers['RateLimit-Remaining'] = header('RateLimitRemaining')
      headers['RateLimit-Reset'] = header('RateLimitReset')
    }
    if (status >= 400) {
      response.description = STATUS_DESCRIPTIONS[status] ?? response.description ?? 'Problem details'
      response.content = { [PROBLEM_MEDIA]: { schema: ref('schemas', 'Problem') } }
      if (status === 401) headers['WWW-Authenticate'] = header('WWWAuthenticate', true)
      if (status === 429 || status === 503) headers['Retry-After'] = header('RetryAfter', true)
      if (status === 503) headers.Connection = header('Connection')
      if (status === 409 && facts.idempotent) headers['Retry-After'] = header('RetryAfter')
    } else {
      const success = status >= 200 && status < 300
      if (etag && (status === 304 || (success && status !== 204))) headers.ETag = header('ETag', true)
      if (facts.contract.creates && (status === 201 || status === 202)) headers.Location = header('Location', true)
      if (facts.idempotent && success) headers['Idempotent-Replayed'] = header('IdempotentReplayed')
      if (facts.consistencyToken && success) headers['X-Consistency-Token'] = header('XConsistencyToken')
      if (success) for (const [name, component] of Object.entries(facts.contract.sends ?? {})) headers[name] = header(component, true)
      if (facts.pii && success) {
        headers['Cache-Control'] = header('CacheControl', true)
        if (facts.pii.masks) headers['X-PII-Masked'] = header('XPiiMasked')
      }
    }
    response.headers = { ...headers, ...response.headers }
  }
  op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  op.security = isPublic ? [] : [{ bearerAuth: [facts.scope] }]
}

/** A reference to the shared header, or (where this use differs in being required) a copy of it. */
function header(name: string, required = false) {
  const shared = HEADERS[name]!
  if (Boolean(shared.required) === required) return ref('headers', name)
  const { required: _required, ...rest } = shared
  return required ? { ...rest, required: true } : rest
}

/** The security scheme: a bearer JWT whose `scope` claim carries the scopes listed per operation. */
export const BEARER_SCHEME = {
  type: 'http' as const,
  scheme: 'bearer',
  bearerFormat: 'JWT',
  description:
    'A JWT from the identity provider, verified against its keys (issuer, audience, algorithm allowlist). Its `scope` claim ' +
    `(space-separated) carries scopes: ${SCOPES.join(', ')}. Each operation lists the one scope it needs; admin grants every ` +
    'operation\'s scope, `domain:*` a domain\'s read and write; pii:read (never implied) unmasks phone, email, address and birthday.',
}
