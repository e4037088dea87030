import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ConnectionScope, runInScope } from '../db/scope.js'
import { SEES_NOTHING } from '../lib/access.js'
import { HttpProblem } from '../lib/problem.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's own deadline: 'long' for the heavy routes (REQUEST_DEADLINE_LONG_MS), or milliseconds. */
    deadline?: 'long' | number
  }
  interface FastifyRequest {
    /** The request's database connections, closed when its deadline passes. */
    connections: ConnectionScope
  }
}

export interface DeadlineOptions {
  /** Milliseconds from arrival to the 503 (REQUEST_DEADLINE_MS). */
  deadlineMs: number
  /** The same for routes with config.deadline 'long' (REQUEST_DEADLINE_LONG_MS). */
  longDeadlineMs: number
}

export const DEADLINE_RETRY_AFTER_S = 2

export const deadlineExceeded = (ms: number) =>
  new HttpProblem('deadline-exceeded', {
    detail: `The request did not complete within ${ms} ms. Nothing it started was committed unless it was already committing. Try again shortly.`,
    headers: { 'retry-after': String(DEADLINE_RETRY_AFTER_S) },
  })

const deadlineOf = (request: FastifyRequest, opts: DeadlineOptions): number => {
  const configured = request.routeOptions.config?.deadline
  return typeof configured === 'number' ? configured : configured === 'long' ? opts.longDeadlineMs : opts.deadlineMs
}

/**
 * The per-request deadline. Every request has one, counted from its arrival: when it passes
 * before the answer has started, the request answers 503 problem+json (type deadline-exceeded)
 * with Retry-After, and every database connection it holds is closed, so its queries stop, its
 * transaction rolls back and no stuck connection goes back to the pool (src/db/scope.ts). A
 * response that is already streaming (an export) is left to finish; each of its queries is
 * bounded by the pool's query timeout.
 *
 * Fastify's own handlerTimeout is not used: on Node 20 the request's 'close' event fires once a
 * body has been read, which clears that timer for every request with a body.
 *
 * Registered after the audit plugin, so the handler wrapper below is the outermost one: the
 * request transaction takes its connection inside the request's scope.
 */
export default fp<DeadlineOptions>(
  async (app, opts) => {
    app.decorateRequest('connections', null as unknown as ConnectionScope)
    const timers = new WeakMap<FastifyRequest, NodeJS.Timeout>()
    const exceeded = new Counter({
      name: 'crm_http_deadline_exceeded_total',
      help: 'Requests answered 503 deadline-exceeded, by route pattern',
      labelNames: ['route'],
      registers: [app.metrics],
    })

    app.addHook('onRequest', (request, reply, done) => {
      // Its connections see what the request's principal may (src/lib/access.ts); with no
      // principal (ops and docs routes), no customer.
      request.connections = new ConnectionScope(undefined, () => request.auth?.access ?? SEES_NOTHING)
      const ms = deadlineOf(request, opts)
      // Counted from arrival: the hooks before this one (shedding, authentication) took some of it.
      const elapsed = reply.elapsedTime
      const timer = setTimeout(() => expire(request, reply, ms, exceeded), Number.isFinite(elapsed) ? Math.max(0, ms - elapsed) : ms)
      timer.unref()
      timers.set(request, timer)
      done()
    })
    app.addHook('onResponse', (request, _reply, done) => {
      clearTimeout(timers.get(request))
      done()
    })

    app.addHook('onRoute', (route) => {
      const handler = route.handler
      route.handler = async function withDeadline(request, reply) {
        try {
          const result = await runInScope(request.connections, () => handler.call(this, request, reply))
          return reply.sent ? undefined : result
        } catch (err) {
          // The deadline has answered already; this is the cut-off work failing, as it should.
          if (request.connections.expired && reply.sent) {
            request.log.debug({ err }, 'work stopped by the deadline')
            return undefined
          }
          throw err
        }
      }
    })
  },
  { name: 'deadline', dependencies: ['errors', 'audit', 'metrics'] },
)

function expire(request: FastifyRequest, reply: FastifyReply, ms: number, exceeded: Counter<'route'>): void {
  if (reply.sent || reply.raw.headersSent) return
  exceeded.inc({ route: request.routeOptions.url ?? 'unmatched' })
  const problem = deadlineExceeded(ms)
  request.log.warn({ deadline_ms: ms, connections: request.connections.size }, 'request deadline passed')
  request.connections.expire(problem)
  reply.send(problem)
}
