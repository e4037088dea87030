import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import underPressure from '@fastify/under-pressure'
import { HttpProblem, serviceUnavailable } from '../lib/problem.js'

/**
 * Load limits (API.md § Errors: 429 and 503, both with Retry-After).
 *
 * - Rate limit per caller: the token's `sub` once authenticated, else the client IP, `max`
 *   requests per `windowMs` (RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_MS). Every limited response carries
 *   the IETF draft headers RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset; a refused one
 *   answers 429 problem+json with Retry-After. The check runs after authentication (a route-level
 *   onRequest hook runs after the app's), so one subject's budget is shared by all its tokens and
 *   clients behind one NAT do not share a budget. Public ops and docs routes are not limited.
 * - Requests that fail authentication never reach that check, so they are counted per client IP
 *   instead: after `max` 401s in a window, the IP gets 429 before its tokens are even verified.
 *   Guessing tokens costs the guesser, not the server.
 * - Shedding (@fastify/under-pressure): while the event loop lags or memory exceeds its
 *   threshold (PRESSURE_*; 0 turns a check off), every request but the public ops and docs
 *   routes answers 503 problem+json with Retry-After before any work is done (even before the
 *   token is verified).
 */
export interface LimitsOptions {
  rateLimit: { max: number; windowMs: number }
  pressure: {
    maxEventLoopDelayMs: number
    maxEventLoopUtilization: number
    maxHeapUsedBytes: number
    maxRssBytes: number
    retryAfterSeconds: number
    /** How often the measures are sampled (default 1 s). */
    sampleIntervalMs?: number
  }
}

export default fp<LimitsOptions>(
  async (app, opts) => {
    // The contract says so on every operation: any of them can be limited or shed.
    app.addHook('onRoute', (route) => {
      const response = (route.schema as { response?: Record<string, unknown> } | undefined)?.response
      if (!response || route.config?.scope === 'public') return
      for (const status of [429, 503]) response[status] ??= { $ref: 'Problem#' }
    })

    const p = opts.pressure
    const sampleIntervalMs = p.sampleIntervalMs ?? 1000
    // Building the app (schema compilation) blocks the event loop for seconds before it is
    // ready; the first samples would report that as lag and shed the first requests.
    let settledAt = Infinity
    app.addHook('onReady', async () => {
      settledAt = Date.now() + 2 * sampleIntervalMs
    })
    await app.register(underPressure, {
      maxEventLoopDelay: p.maxEventLoopDelayMs,
      maxEventLoopUtilization: p.maxEventLoopUtilization,
      maxHeapUsedBytes: p.maxHeapUsedBytes,
      maxRssBytes: p.maxRssBytes,
      sampleInterval: sampleIntervalMs,
      retryAfter: p.retryAfterSeconds,
      pressureHandler: async (request, _reply, type) => {
        // Health probes and docs stay up: a shedding instance is alive, not dead.
        if (request.routeOptions.config?.scope === 'public') return
        if (type === 'eventLoopDelay' && Date.now() < settledAt) return
        request.log.warn({ type }, 'shedding load')
        throw serviceUnavailable('The service is overloaded. Try again shortly.', p.retryAfterSeconds)
      },
    })

    const tooMany = (max: number, ttlMs: number, after?: string) =>
      new HttpProblem({
        status: 429,
        title: 'Too Many Requests',
        detail: `Rate limit of ${max} requests exceeded. Retry in ${after ?? `${Math.ceil(ttlMs / 1000)} s`}.`,
        headers: { 'retry-after': String(Math.max(1, Math.ceil(ttlMs / 1000))) },
      })

    await app.register(rateLimit, {
      global: true,
      max: opts.rateLimit.max,
      timeWindow: opts.rateLimit.windowMs,
      enableDraftSpec: true,
      keyGenerator: (request) => (request.auth ? `sub:${request.auth.sub}` : `ip:${request.ip}`),
      allowList: (request) => request.routeOptions.config?.scope === 'public',
      errorResponseBuilder: (_request, context) => tooMany(context.max, context.ttl, context.after),
    })

    // Failed authentications per IP: checked before auth (this hook is registered before it),
    // counted once the 401 has been answered.
    const authFailures = app.createRateLimit({ keyGenerator: (request) => `auth-failures:${request.ip}` })
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config?.scope === 'public') return
      const state = await authFailures(request, { increment: false })
      if (!state.isAllowed && state.remaining === 0) throw tooMany(state.max, state.ttl)
    })
    app.addHook('onResponse', (request, reply, done) => {
      if (reply.statusCode !== 401) return done()
      authFailures(request).then(() => done(), done)
    })
  },
  { name: 'limits', dependencies: ['errors'] },
)
