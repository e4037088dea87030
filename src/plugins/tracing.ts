import fp from 'fastify-plugin'
import { trace, type Span } from '@opentelemetry/api'
import type { FastifyRequest } from 'fastify'

/**
 * Ties a request's trace to the rest of what it leaves behind, when tracing is on
 * (src/instrumentation.ts; without it there is no active span and this does nothing):
 * - its log lines carry trace_id and span_id next to the request id (reqId), so a log line leads
 *   to the trace and back (set where the request's logger is made: childLoggerFactory in app.ts);
 * - its Fastify request span carries the request id (crm.request_id, the id the audit trail and
 *   the x-request-id header give) and, once authenticated, the actor (enduser.id: the token's
 *   subject, an opaque id, never a name or an email).
 */
export default fp(
  async (app) => {
    app.addHook('onRequest', (request, _reply, done) => {
      if (trace.getActiveSpan()) requestSpan(request)?.setAttribute('crm.request_id', request.id)
      done()
    })
    app.addHook('preHandler', (request, _reply, done) => {
      if (request.auth?.sub) requestSpan(request)?.setAttribute('enduser.id', request.auth.sub)
      done()
    })
  },
  { name: 'tracing', dependencies: ['auth'] },
)

/** The request's span made by @fastify/otel, else the active one (the HTTP server span). */
function requestSpan(request: FastifyRequest): Span | undefined {
  const otel = typeof request.opentelemetry === 'function' ? request.opentelemetry() : undefined
  return otel?.span ?? trace.getActiveSpan()
}
