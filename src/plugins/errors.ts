import { randomUUID } from 'node:crypto'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import FindMyWay, { type HTTPMethod } from 'find-my-way'
import type { FastifyBaseLogger, FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { violatedConstraint } from '../lib/constraints.js'
import { HttpProblem, problem, unavailable, type FieldError } from '../lib/problem.js'
import { PROBLEM_TYPES, isProblemCode, type ProblemCode } from '../lib/problem-types.js'
import { toFieldErrors } from '../lib/validation.js'
import { securityHeaders } from './security.js'

export interface ErrorsOptions {
  /**
   * The API's public base URL (PUBLIC_URL): problem `type` URIs are absolute under it. Unset, they
   * are the relative reference `/problems/<code>` (RFC 9457 allows a URI reference), which a
   * client resolves against the URL it called.
   */
  publicUrl?: string | undefined
  /**
   * Tests: a problem that is not exactly its registry entry (an unregistered code, another status)
   * or that fell through to the generic framework mapping answers 500 and logs the bug, so any
   * test that meets one fails.
   */
  strict?: boolean | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** What problem type paths are resolved against ('' for relative type URIs). */
    problemBase: string
    problemsStrict: boolean
  }
}

/**
 * Turns every error into RFC 9457 problem+json with a registered code (src/lib/problem-types.ts).
 * Known client errors keep their 4xx status; database errors are mapped by SQLSTATE; anything else
 * is a 500 that is logged in full and answered with no detail (no stack, SQL or constraint name
 * ever reaches a client).
 */
export default fp<ErrorsOptions>(
  async (app, opts) => {
    app.decorate('problemBase', (opts.publicUrl ?? '').replace(/\/+$/, ''))
    app.decorate('problemsStrict', opts.strict ?? false)
    // Routes known to the app, so a known path with another method answers 405, not 404.
    const known = FindMyWay({ ignoreTrailingSlash: true })
    const noop = () => {}
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      for (const m of methods) {
        if (m === 'HEAD' || m === 'OPTIONS') continue
        try {
          known.on(m as HTTPMethod, route.url, noop)
        } catch {
          // already registered (a route added in two encapsulated contexts): nothing to add
        }
      }
    })

    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0] ?? '/'
      const allowed = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => known.find(m as HTTPMethod, path))
      if (allowed.length > 0) {
        return sendProblem(request, reply, problem(
          'method-not-allowed',
          `${request.method} is not allowed here. Allowed: ${allowed.join(', ')}.`,
          undefined,
          { allow: allowed.join(', ') },
        ))
      }
      return sendProblem(request, reply, problem('route-not-found', `No route ${request.method} ${path}.`))
    })

    app.setErrorHandler((error: FastifyError, request, reply) => {
      const problem = toProblem(error)
      const database = databaseErrorFields(error)
      if (problem.status >= 500) {
        const bug = database && problem.status === 500
        request.log.error(database ? { database } : { err: error }, bug ? 'request failed: a database error the server caused (bug)' : 'request failed')
      } else if (!(error instanceof HttpProblem)) {
        request.log.info({ code: error.code, status: problem.status, ...(database ? { database } : {}) }, problem.title)
      }
      return sendProblem(request, reply, problem)
    })
  },
  { name: 'errors' },
)

/**
 * Whether a problem is exactly its registry entry. Only a cast can build one that is not; in strict
 * mode (tests) the generic framework fallback counts as a gap too.
 */
function registered(problem: HttpProblem, strict: boolean): boolean {
  if (!isProblemCode(problem.code)) return false
  const entry = PROBLEM_TYPES[problem.code]
  if (entry.status !== problem.status || entry.title !== problem.title) return false
  return !(strict && problem.code === 'request-rejected')
}

/** The absolute type URI under PUBLIC_URL, else the relative /problems/<code>. */
export const problemTypeUri = (base: string, problem: HttpProblem): string => base + problem.type

export function sendProblem(request: FastifyRequest, reply: FastifyReply, sent: HttpProblem) {
  let problem = sent
  if (!registered(sent, request.server.problemsStrict)) {
    request.log.error({ code: sent.code, status: sent.status }, 'a problem that is not in the registry (bug): answered as internal-server-error')
    problem = internalError()
  }
  reply.code(problem.status).type('application/problem+json')
  for (const [k, v] of Object.entries(problem.headers)) reply.header(k, v)
  if (problem.status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer')
  const body: Record<string, unknown> = {
    type: problemTypeUri(request.server.problemBase, problem),
    code: problem.code,
    title: problem.title,
    status: problem.status,
    ...(problem.detail ? { detail: problem.detail } : {}),
    instance: request.url.split('?')[0],
    request_id: request.id,
    ...(problem.errors ? { errors: problem.errors } : {}),
  }
  return reply.send(body)
}

/**
 * Fastify's `frameworkErrors` option: errors the router raises before any route or hook runs
 * (a malformed percent-encoding, a path parameter over routerOptions.maxParamLength). Without
 * it Fastify answers them with its own JSON, which echoes the URL and names its error code.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  // No route was found, so no hook runs: set what the app's onSend hook would.
  reply.header('x-request-id', request.id)
  return sendProblem(request, reply, toProblem(error))
}

const PARSER_REFUSALS: Record<string, { code: ProblemCode; detail: string }> = {
  HPE_HEADER_OVERFLOW: { code: 'request-header-fields-too-large', detail: 'The request headers are larger than this server accepts.' },
  ERR_HTTP_REQUEST_TIMEOUT: { code: 'request-timeout', detail: 'The request did not arrive in time.' },
}

/**
 * Fastify's `clientErrorHandler` option: Node's HTTP parser refused the request (headers over
 * maxHeaderSize, a malformed request line, a request that took too long) before Fastify made a
 * request of it, so no hook runs. The answer is still a problem with the security headers and a
 * request id, written to the socket, which is then closed.
 */
export function clientErrorHandler(this: { log: FastifyBaseLogger; problemBase?: string }, err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const refusal = PARSER_REFUSALS[err.code ?? ''] ?? { code: 'malformed-request', detail: 'The request is not valid HTTP.' }
  const problem = new HttpProblem(refusal.code, { detail: refusal.detail })
  const requestId = randomUUID()
  this.log.info({ code: err.code, status: problem.status, request_id: requestId }, 'request refused by the HTTP parser')
  if (socket.writable) {
    const body = JSON.stringify({ type: problemTypeUri(this.problemBase ?? '', problem), code: problem.code, title: problem.title, status: problem.status, detail: problem.detail, request_id: requestId })
    const headers: Record<string, string> = {
      ...securityHeaders(),
      'content-type': 'application/problem+json; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      'x-request-id': requestId,
      connection: 'close',
    }
    const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    socket.write(`HTTP/1.1 ${problem.status} ${STATUS_LINE[problem.status] ?? 'Error'}\r\n${head}\r\n${body}`)
  }
  socket.destroy(err)
}

/** Fastify's own 4xx errors by their code; anything else with a 4xx status is request-rejected. */
const FRAMEWORK: Record<string, { code: ProblemCode; detail: string }> = {
  FST_ERR_BAD_URL: { code: 'bad-url', detail: 'The URL path is not valid (bad percent-encoding).' },
  FST_ERR_MAX_PARAM_LENGTH: { code: 'uri-too-long', detail: 'A path parameter is longer than this API accepts.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'unsupported-media-type', detail: 'Send the body as application/json.' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'content-length-mismatch', detail: 'Content-Length does not match the body.' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'payload-too-large', detail: 'The request body is larger than this route accepts.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'malformed-json', detail: 'The body is empty but Content-Type says JSON.' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'malformed-json', detail: 'The body is not valid JSON.' },
  FST_ERR_CTP_INVALID_TYPE: { code: 'unsupported-media-type', detail: 'The Content-Type header is not valid.' },
  FST_ERR_CTP_EMPTY_TYPE: { code: 'unsupported-media-type', detail: 'The Content-Type header is empty.' },
  FST_ERR_ROUTE_MISSING_CONTENT_TYPE: { code: 'unsupported-media-type', detail: 'The request has a body but no Content-Type.' },
  FST_ERR_ROUTE_MISSING_CONTENT: { code: 'validation-failed', detail: 'The request body is missing.' },
}

const VALIDATION_PART: Record<string, string> = {
  body: 'request body',
  querystring: 'query string',
  params: 'path parameters',
  headers: 'request headers',
}

export function toProblem(error: unknown): HttpProblem {
  if (error instanceof HttpProblem) return error
  const err = error as FastifyError & { validation?: unknown[]; validationContext?: string; code?: string; status?: number }

  if (Array.isArray(err.validation)) {
    const part = VALIDATION_PART[err.validationContext ?? 'body'] ?? 'request'
    const errors: FieldError[] = toFieldErrors(err.validation as Parameters<typeof toFieldErrors>[0])
    return problem('validation-failed', `The ${part} is invalid.`, errors)
  }
  const framework = err.code ? FRAMEWORK[err.code] : undefined
  if (framework) return problem(framework.code, framework.detail)

  const db = fromDatabaseError(err)
  if (db) return db

  if (err instanceof SyntaxError && (err as { statusCode?: number }).statusCode === 400) {
    return problem('malformed-json', 'The body is not valid JSON.')
  }
  const status = typeof err.statusCode === 'number' ? err.statusCode : 500
  // A framework 4xx we have no mapping for: never its internals. Strict mode (tests) flags it.
  if (status >= 400 && status < 500) return problem('request-rejected', 'The request cannot be served as sent.')
  if (status === 503) return unavailable('overloaded', 'The service cannot take the request now. Try again shortly.')
  return internalError()
}

const internalError = () => problem('internal-server-error', 'An unexpected error occurred. It has been logged with this request id.')

/** Reason phrases of the statuses written straight to the socket (the phrase is informational only). */
const STATUS_LINE: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'])

/**
 * PostgreSQL errors by SQLSTATE: known constraints (lib/constraints.ts) name the field; lost
 * connections, conflicts and timeouts are 503. Undefined for the rest, which answer 500.
 */
export function fromDatabaseError(err: { code?: string; message?: string }): HttpProblem | undefined {
  const code = err.code
  const message = err.message ?? ''
  if (code && CONNECTION_ERRORS.has(code)) return unavailable('database-unavailable', 'The database is unreachable. Try again shortly.')
  // pg's own messages for a connection that died or could not be made (no SQLSTATE): the
  // rollback after a lost connection fails with "Client was closed and is not queryable".
  if (/Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end|is not queryable|Query read timeout/i.test(message)) {
    return unavailable('database-unavailable', 'The database is unreachable. Try again shortly.')
  }
  if (!code || !/^[0-9A-Z]{5}$/.test(code)) return undefined
  const violation = violatedConstraint(err)
  if (violation) return violation
  switch (code) {
    case '40001':
    case '40P01':
      return unavailable('concurrent-change', 'The change conflicted with a concurrent change. Retry the request.')
    case '42501':
      // A write the row-level security policy's WITH CHECK refused: the record would belong to
      // an owner or team outside the actor's visibility (a privilege error is a 500 still).
      if (/row-level security/.test(message)) {
        return problem('outside-visibility', 'The record would belong to an owner or team outside your visibility.')
      }
      break
    case '57014':
      return unavailable('database-timeout', 'The database took too long to answer. Try again shortly.')
    case '53300':
    case '53400':
      return unavailable('database-at-capacity', 'The database is at capacity. Try again shortly.')
  }
  if (code.startsWith('08') || code.startsWith('57P')) return unavailable('database-unavailable', 'The database is unreachable. Try again shortly.')
  // Everything else, data exceptions (22xxx), NOT NULL (23502) and constraints missing from the
  // map included, is the server's bug: the routes validate client input before it reaches SQL.
  return undefined
}

/**
 * What the log keeps of a database error: its SQLSTATE and where it happened, never its message,
 * detail or stack (they quote the values, which can be personal data).
 */
export function databaseErrorFields(err: unknown): Record<string, string> | undefined {
  const e = err as Record<string, unknown> | null
  if (!e || typeof e.code !== 'string' || !/^[0-9A-Z]{5}$/.test(e.code) || typeof e.severity !== 'string') return undefined
  const fields: Record<string, string> = { sqlstate: e.code }
  for (const key of ['constraint', 'table', 'column', 'dataType', 'routine'] as const) {
    if (typeof e[key] === 'string') fields[key] = e[key]
  }
  return fields
}
