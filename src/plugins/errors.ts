import { randomUUID } from 'node:crypto'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import FindMyWay, { type HTTPMethod } from 'find-my-way'
import type { FastifyBaseLogger, FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { violatedConstraint } from '../lib/constraints.js'
import { HttpProblem, type FieldError } from '../lib/problem.js'
import { toFieldErrors } from '../lib/validation.js'
import { securityHeaders } from './security.js'

/**
 * Turns every error into RFC 9457 problem+json. Known client errors keep their 4xx status;
 * database errors are mapped by SQLSTATE; anything else is a 500 that is logged in full and
 * answered with no detail (no stack, SQL or constraint name ever reaches a client).
 */
export default fp(
  async (app) => {
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
        return sendProblem(request, reply, new HttpProblem({
          status: 405,
          title: 'Method Not Allowed',
          detail: `${request.method} is not allowed here. Allowed: ${allowed.join(', ')}.`,
          headers: { allow: allowed.join(', ') },
        }))
      }
      return sendProblem(request, reply, new HttpProblem({ status: 404, title: 'Not Found', detail: `No route ${request.method} ${path}.` }))
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

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: HttpProblem) {
  reply.code(problem.status).type('application/problem+json')
  for (const [k, v] of Object.entries(problem.headers)) reply.header(k, v)
  if (problem.status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer')
  const body: Record<string, unknown> = {
    type: problem.type,
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

const PARSER_REFUSALS: Record<string, { status: number; detail: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, detail: 'The request headers are larger than this server accepts.' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, detail: 'The request did not arrive in time.' },
}

/**
 * Fastify's `clientErrorHandler` option: Node's HTTP parser refused the request (headers over
 * maxHeaderSize, a malformed request line, a request that took too long) before Fastify made a
 * request of it, so no hook runs. The answer is still a problem with the security headers and a
 * request id, written to the socket, which is then closed.
 */
export function clientErrorHandler(this: { log: FastifyBaseLogger }, err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const refusal = PARSER_REFUSALS[err.code ?? ''] ?? { status: 400, detail: 'The request is not valid HTTP.' }
  const problem = new HttpProblem({ status: refusal.status, title: statusTitle(refusal.status), detail: refusal.detail })
  const requestId = randomUUID()
  this.log.info({ code: err.code, status: problem.status, request_id: requestId }, 'request refused by the HTTP parser')
  if (socket.writable) {
    const body = JSON.stringify({ type: problem.type, code: problem.code, title: problem.title, status: problem.status, detail: problem.detail, request_id: requestId })
    const headers: Record<string, string> = {
      ...securityHeaders(),
      'content-type': 'application/problem+json; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      'x-request-id': requestId,
      connection: 'close',
    }
    const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    socket.write(`HTTP/1.1 ${problem.status} ${problem.title}\r\n${head}\r\n${body}`)
  }
  socket.destroy(err)
}

const FRAMEWORK: Record<string, { status: number; title: string; detail: string }> = {
  FST_ERR_BAD_URL: { status: 400, title: 'Bad Request', detail: 'The URL path is not valid (bad percent-encoding).' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, title: 'URI Too Long', detail: 'A path parameter is longer than this API accepts.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, title: 'Unsupported Media Type', detail: 'Send the body as application/json.' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, title: 'Bad Request', detail: 'Content-Length does not match the body.' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, title: 'Content Too Large', detail: 'The request body is larger than this route accepts.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, title: 'Bad Request', detail: 'The body is empty but Content-Type says JSON.' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, title: 'Bad Request', detail: 'The body is not valid JSON.' },
  FST_ERR_CTP_INVALID_TYPE: { status: 415, title: 'Unsupported Media Type', detail: 'The Content-Type header is not valid.' },
  FST_ERR_CTP_EMPTY_TYPE: { status: 415, title: 'Unsupported Media Type', detail: 'The Content-Type header is empty.' },
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
    return new HttpProblem({ status: 400, title: 'Bad Request', detail: `The ${part} is invalid.`, errors })
  }
  const framework = err.code ? FRAMEWORK[err.code] : undefined
  if (framework) return new HttpProblem(framework)

  const db = fromDatabaseError(err)
  if (db) return db

  if (err instanceof SyntaxError && (err as { statusCode?: number }).statusCode === 400) {
    return new HttpProblem({ status: 400, title: 'Bad Request', detail: 'The body is not valid JSON.' })
  }
  const status = typeof err.statusCode === 'number' ? err.statusCode : 500
  if (status >= 400 && status < 500) {
    // A framework 4xx we have no mapping for: keep its status, never its internals.
    return new HttpProblem({ status, title: statusTitle(status), detail: status === 429 ? 'Too many requests.' : 'The request cannot be served as sent.' })
  }
  if (status === 503) return new HttpProblem({ status: 503, title: 'Service Unavailable', detail: 'Try again shortly.', headers: { 'retry-after': '2' } })
  return new HttpProblem({ status: 500, title: 'Internal Server Error', detail: 'An unexpected error occurred. It has been logged with this request id.' })
}

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict', 412: 'Precondition Failed', 413: 'Content Too Large',
  414: 'URI Too Long', 415: 'Unsupported Media Type', 422: 'Unprocessable Content', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
}
const statusTitle = (s: number) => TITLES[s] ?? 'Client Error'

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'])

/**
 * PostgreSQL errors by SQLSTATE: known constraints (lib/constraints.ts) name the field; lost
 * connections, conflicts and timeouts are 503. Undefined for the rest, which answer 500.
 */
export function fromDatabaseError(err: { code?: string; message?: string }): HttpProblem | undefined {
  const code = err.code
  const message = err.message ?? ''
  const unavailable = (detail: string) =>
    new HttpProblem({ status: 503, title: 'Service Unavailable', detail, headers: { 'retry-after': '2' } })
  if (code && CONNECTION_ERRORS.has(code)) return unavailable('The database is unreachable. Try again shortly.')
  // pg's own messages for a connection that died or could not be made (no SQLSTATE): the
  // rollback after a lost connection fails with "Client was closed and is not queryable".
  if (/Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end|is not queryable|Query read timeout/i.test(message)) {
    return unavailable('The database is unreachable. Try again shortly.')
  }
  if (!code || !/^[0-9A-Z]{5}$/.test(code)) return undefined
  const violation = violatedConstraint(err)
  if (violation) return violation
  switch (code) {
    case '40001':
    case '40P01':
      return unavailable('The change conflicted with a concurrent change. Retry the request.')
    case '57014':
      return unavailable('The database took too long to answer. Try again shortly.')
    case '53300':
    case '53400':
      return unavailable('The database is at capacity. Try again shortly.')
  }
  if (code.startsWith('08') || code.startsWith('57P')) return unavailable('The database is unreachable. Try again shortly.')
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
