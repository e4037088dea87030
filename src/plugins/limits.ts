import { createHash } from 'node:crypto'
import { once } from 'node:events'
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import underPressure from '@fastify/under-pressure'
import { Redis } from 'ioredis'
import type { FastifyRequest } from 'fastify'
import { HttpProblem, unavailable } from '../lib/problem.js'
import type { AuthFailures } from './auth.js'

/**
 * Load limits (API.md § Errors: 429 and 503, both with Retry-After).
 *
 * - Rate limit per caller: the token's `sub` once authenticated, else the client address, `max`
 *   requests per `windowMs` (RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_MS). Every limited response carries
 *   the IETF draft headers RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset; a refused one
 *   answers 429 problem+json with Retry-After. The check runs after authentication (a route-level
 *   onRequest hook runs after the app's), so one subject's budget is shared by all its tokens and
 *   clients behind one NAT do not share a budget. Public ops and docs routes are not limited.
 * - Failed authentications never reach that check: the auth plugin counts each one per client
 *   address and per presented token (a fingerprint of the header), `authFailureMax` per window
 *   (AUTH_FAILURE_MAX); past either, a failure answers 429 instead of 401. Only failures are
 *   counted and a token is always verified first, so a flood of bad tokens from an address (or
 *   from every client of a proxy) never locks out a valid token sent from there.
 * - The client address is the socket's, or the one a trusted proxy names (TRUST_PROXY).
 * - Counters live in memory, per instance, unless `redisUrl` (RATE_LIMIT_REDIS_URL) is set: then
 *   every instance counts in that Redis, and the limits hold across them. Redis waits are bounded
 *   (no offline queue, short connect and command timeouts); while Redis is unreachable, requests
 *   are not limited rather than refused (logged).
 * - Shedding (@fastify/under-pressure): while the event loop lags or memory exceeds its
 *   threshold (PRESSURE_*; 0 turns a check off), every request but the public ops and docs
 *   routes answers 503 problem+json with Retry-After before any work is done (even before the
 *   token is verified).
 */
export interface LimitsOptions {
  rateLimit: {
    max: number
    windowMs: number
    /** Failed authentications per address, and per token, per window (default: max). */
    authFailureMax?: number
    /** Shared counters in this Redis (redis:// or rediss://); unset: in memory. */
    redisUrl?: string
  }
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
        throw unavailable('overloaded', 'The service is overloaded. Try again shortly.', p.retryAfterSeconds)
      },
    })

    const tooMany = (code: 'rate-limited' | 'authentication-throttled', max: number, ttlMs: number, after?: string) =>
      new HttpProblem(code, {
        detail: `Rate limit of ${max} requests exceeded. Retry in ${after ?? `${Math.ceil(ttlMs / 1000)} s`}.`,
        headers: { 'retry-after': String(Math.max(1, Math.ceil(ttlMs / 1000))) },
      })

    const redis = opts.rateLimit.redisUrl ? await connectRedis(opts.rateLimit.redisUrl, app.log) : undefined
    if (redis) app.addHook('onClose', async () => void (await redis.quit().catch(() => redis.disconnect())))

    await app.register(rateLimit, {
      global: true,
      max: opts.rateLimit.max,
      timeWindow: opts.rateLimit.windowMs,
      enableDraftSpec: true,
      ...(redis ? { redis, nameSpace: 'crm-api:rate-limit:' } : {}),
      // A store failure (Redis down) lets the request through: an outage of the limiter must not
      // become an outage of the API.
      skipOnError: true,
      keyGenerator: (request) => (request.auth ? `sub:${request.auth.sub}` : `ip:${request.ip}`),
      allowList: (request) => request.routeOptions.config?.scope === 'public',
      errorResponseBuilder: (_request, context) => tooMany('rate-limited', context.max, context.ttl, context.after),
    })

    const max = opts.rateLimit.authFailureMax ?? opts.rateLimit.max
    const byAddress = app.createRateLimit({ max, keyGenerator: (request) => `auth-failures:ip:${request.ip}` })
    const byToken = app.createRateLimit({ max, keyGenerator: (request) => `auth-failures:token:${tokenFingerprint(request)}` })
    const failures: AuthFailures = {
      async count(request, problem) {
        const counts = await Promise.all([byAddress(request), ...(request.headers.authorization ? [byToken(request)] : [])])
        const over = counts.find((c) => !c.isAllowed && c.isExceeded)
        if (!over || over.isAllowed) return problem
        request.log.info({ key: over.key.split(':').slice(0, 2).join(':') }, 'authentication failures throttled')
        return tooMany('authentication-throttled', over.max, over.ttl)
      },
    }
    app.decorate('authFailures', failures)
  },
  { name: 'limits', dependencies: ['errors'] },
)

/** A short, one-way name for the presented credential: never logged, never stored whole. */
function tokenFingerprint(request: FastifyRequest): string {
  return createHash('sha256').update(request.headers.authorization ?? '').digest('base64url').slice(0, 22)
}

const REDIS_CONNECT_TIMEOUT_MS = 2000
const REDIS_COMMAND_TIMEOUT_MS = 500

/**
 * A Redis connection whose every wait is bounded: commands fail at once while disconnected (no
 * offline queue), and after REDIS_COMMAND_TIMEOUT_MS when Redis does not answer. Start waits
 * for the first connection at most REDIS_CONNECT_TIMEOUT_MS, then goes on without it (limits
 * are not enforced until it connects; ioredis keeps reconnecting).
 */
async function connectRedis(url: string, log: { warn(obj: object, msg: string): void }): Promise<Redis> {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  })
  let lastWarning = 0
  redis.on('error', (err: Error) => {
    if (Date.now() - lastWarning < 10_000) return
    lastWarning = Date.now()
    log.warn({ err: { message: err.message } }, 'rate-limit store (Redis) unavailable: requests are not limited meanwhile')
  })
  const timeout = AbortSignal.timeout(REDIS_CONNECT_TIMEOUT_MS)
  await once(redis, 'ready', { signal: timeout }).catch(() => {})
  return redis
}
