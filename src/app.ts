import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import Fastify, { type FastifyServerOptions } from 'fastify'
import { trace } from '@opentelemetry/api'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Db } from './db/database.js'
import { buildValidatorFactory } from './lib/validation.js'
import { problem } from './lib/problem.js'
import { JsonValue, Problem } from './lib/schema.js'
import { filterSchemas } from './modules/filters/filter.schemas.js'
import errors, { clientErrorHandler, frameworkErrors } from './plugins/errors.js'
import jsonBody from './plugins/json-body.js'
import dbPlugin from './plugins/db.js'
import auth, { type AuthOptions } from './plugins/auth.js'
import { principalResolver, type PrincipalOptions } from './modules/principals/principals.access.js'
import principalRoutes from './modules/principals/principals.routes.js'
import audit from './plugins/audit.js'
import idempotency, { type IdempotencyOptions } from './plugins/idempotency.js'
import deadline, { type DeadlineOptions } from './plugins/deadline.js'
import limits, { type LimitsOptions } from './plugins/limits.js'
import openapi from './plugins/openapi.js'
import docs from './plugins/docs.js'
import metrics, { metricsRoute } from './plugins/metrics.js'
import replica, { type ReplicaOptions } from './plugins/replica.js'
import tracing from './plugins/tracing.js'
import security from './plugins/security.js'
import pii from './plugins/pii.js'
import { PII_LOG_PATHS } from './lib/pii.js'
import healthRoutes from './modules/health/health.routes.js'
import customerRoutes from './modules/customers/customers.routes.js'
import orderRoutes from './modules/orders/orders.routes.js'
import interactionRoutes from './modules/interactions/interactions.routes.js'
import feedbackRoutes from './modules/feedback/feedback.routes.js'
import timelineRoutes from './modules/timeline/timeline.routes.js'
import auditRoutes from './modules/audit/audit.routes.js'
import auditSealer from './modules/audit/audit.sealer.js'
import lifecycleSweep from './modules/metrics/metrics.sweep.js'
import eventRoutes from './modules/events/events.routes.js'
import eventRetention from './modules/events/events.retention.js'
import scheduler from './plugins/scheduler.js'
import backfills, { type BackfillOptions } from './plugins/backfills.js'
import partitionUpkeep from './plugins/partitions.js'
import importRoutes from './modules/imports/imports.routes.js'
import importRecovery from './modules/imports/imports.recovery.js'
import analyticsRoutes from './modules/analytics/analytics.routes.js'
import segmentRoutes from './modules/segments/segments.routes.js'
import problemRoutes from './modules/problems/problems.routes.js'
import webhookRoutes from './modules/webhooks/webhooks.routes.js'
import webhookWorker from './modules/webhooks/webhooks.plugin.js'
import type { WorkerOptions } from './modules/webhooks/webhooks.worker.js'
import { targetPolicy } from './modules/webhooks/webhooks.ssrf.js'

export interface AppOptions {
  db: Db
  /** Whether closing the app also closes the pool (tests share one pool across apps). */
  ownsDb?: boolean
  auth: AuthOptions
  /** Where roles and teams come from (API or token claims) and the principal cache; default: the API's. */
  principals?: PrincipalOptions
  logger?: FastifyServerOptions['logger']
  bodyLimit?: number
  requestTimeoutMs?: number
  /** Per-request deadlines; default: the defaults of src/config.ts. */
  deadline?: DeadlineOptions
  /** How long /readyz waits for the database before answering 503 (default 2 s). */
  readinessTimeoutMs?: number
  /**
   * Which proxies' X-Forwarded-For is believed (fastify trustProxy): false (none, the default),
   * true (any), a hop count, or a list of addresses and CIDR ranges.
   */
  trustProxy?: boolean | number | string[]
  /** Defaults: the defaults of src/config.ts. */
  rateLimit?: LimitsOptions['rateLimit']
  pressure?: LimitsOptions['pressure']
  idempotency?: IdempotencyOptions
  /** Milliseconds between background seals of the audit hash chain (0 or unset: no schedule). */
  auditSealIntervalMs?: number
  /** Between full verifications of the audit chain (the scheduler's audit-verify-full job); 0 or unset: none. */
  auditFullVerifyIntervalMs?: number
  /** Milliseconds between lifecycle sweeps (0 or unset: no schedule). */
  lifecycleSweepMs?: number
  /** The change feed: retention in days (default 30), purge interval (0 or unset: no schedule), long-poll interval. */
  events?: { retentionDays?: number; purgeIntervalMs?: number; pollIntervalMs?: number }
  /** Between runs of the import-recovery job; 0 or unset: none. */
  importRecoveryMs?: number
  /** Between runs of the partition-upkeep job (src/plugins/partitions.ts); 0 or unset: none. */
  partitionUpkeepMs?: number
  /** The backfills job (src/plugins/backfills.ts); unset: off. */
  backfills?: BackfillOptions
  /** The largest bulk import upload (default 2 GiB). */
  importMaxBytes?: number
  /** Browser origins allowed by CORS; default none. */
  corsOrigins?: string[]
  /**
   * The API's public base URL (PUBLIC_URL): the OpenAPI document's server, and problem type URIs
   * are absolute under it; unset, they are the relative /problems/<code>.
   */
  publicUrl?: string
  /** Tests: a problem that is not exactly its registry entry answers 500 (plugins/errors.ts). */
  strictProblems?: boolean
  /** A streaming replica for heavy reads (DATABASE_REPLICA_URL) and its lag bound; default: none. */
  replica?: Partial<ReplicaOptions>
  webhooks?: WebhookOptions
}

export interface WebhookOptions {
  /** WEBHOOK_ALLOWED_HOSTS: host names, addresses and CIDR ranges the SSRF guard lets through (default none). */
  allowedHosts?: string
  /** Default overlap of a rotated secret (default 24 hours). */
  secretOverlapSeconds?: number
  /**
   * The in-process delivery worker's settings (defaults: DEFAULT_WORKER_OPTIONS), or false for
   * none. Unset: none, so an app built by a test delivers only when asked; the server passes
   * WEBHOOK_WORKER's choice.
   */
  worker?: Partial<Omit<WorkerOptions, 'policy'>> | false
}

/** The limits and idempotency settings from the configuration's defaults. */
export const DEFAULT_LIMITS = {
  rateLimit: { max: 1000, windowMs: 60_000, authFailureMax: 100 },
  pressure: { maxEventLoopDelayMs: 1000, maxEventLoopUtilization: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, retryAfterSeconds: 10 },
  idempotency: { ttlSeconds: 86_400, purgeIntervalMs: 900_000 },
  deadline: { deadlineMs: 25_000, longDeadlineMs: 120_000 },
  replica: { maxLagMs: 5000, checkIntervalMs: 1000, readYourWritesMs: 10_000 },
} satisfies Pick<Required<AppOptions>, 'rateLimit' | 'pressure' | 'idempotency' | 'deadline'> & { replica: Omit<ReplicaOptions, 'db' | 'owned'> }

const CORRELATION_ID = /^[A-Za-z0-9._:-]{1,64}$/

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's own id for this request (x-correlation-id, else x-request-id), when well-formed. */
    correlationId: string | null
  }
}

/**
 * The id a client gave its request, kept as a correlation id: it is logged, echoed in
 * x-correlation-id and recorded in the audit trail next to the server's request id, which it
 * never replaces (a client could otherwise file its changes under another request's id).
 */
export function correlationIdOf(raw: IncomingMessage): string | null {
  for (const name of ['x-correlation-id', 'x-request-id']) {
    const given = raw.headers[name]
    if (typeof given === 'string' && CORRELATION_ID.test(given)) return given
  }
  return null
}

/**
 * Log fields that could carry PII or credentials never reach the log: credentials, bodies,
 * every personal field of the PII registry, and PostgreSQL's error detail, which quotes row
 * values ("Key (value_normalized)=(…) already exists", "Failing row contains (…)").
 */
export const LOG_REDACT = {
  paths: [
    'req.headers.authorization',
    'req.headers.cookie',
    'req.headers["x-api-key"]',
    'res.headers["set-cookie"]',
    'body', 'req.body', 'payload',
    'err.detail',
    ...PII_LOG_PATHS.filter((path) => path !== 'body'),
  ],
  censor: '[redacted]',
}

export function loggerOptions(level: string): FastifyServerOptions['logger'] {
  return {
    level,
    redact: LOG_REDACT,
    serializers: {
      // The query string can hold search terms such as emails or phone numbers: log the path only.
      req: (req: { method: string; url: string; id: string }) => ({ method: req.method, path: req.url.split('?')[0], id: req.id }),
    },
  }
}

/** Trusts the nearest `hops` proxies (Fastify's types have no hop count, its runtime does the same). */
const trustHops = (hops: number) => (_address: string, hop: number) => hop < hops

export async function buildApp(opts: AppOptions) {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    // Fastify's own answer while closing is plain JSON outside the contract: see 'shutting-down' below.
    return503OnClosing: false,
    trustProxy: typeof opts.trustProxy === 'number' ? trustHops(opts.trustProxy) : (opts.trustProxy ?? false),
    genReqId: () => randomUUID(),
    childLoggerFactory: (logger, bindings, options, raw) => {
      const correlation = correlationIdOf(raw as IncomingMessage)
      // With tracing on (src/instrumentation.ts) the HTTP server span is active here: every log
      // line of the request names its trace.
      const span = trace.getActiveSpan()
      const traced = span ? { trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId } : undefined
      return logger.child({ ...bindings, ...(correlation ? { correlation_id: correlation } : {}), ...traced }, options)
    },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    frameworkErrors,
    clientErrorHandler,
    ajv: { customOptions: {} },
    schemaController: { compilersFactory: { buildValidator: buildValidatorFactory() } },
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Set as the request arrives (a synchronous hook: no promise per request), so every answer,
  // errors included, carries it.
  app.decorateRequest('correlationId', null)
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    request.correlationId = correlationIdOf(request.raw)
    if (request.correlationId) reply.header('x-correlation-id', request.correlationId)
    done()
  })

  app.decorate('draining', false)

  // Cross-cutting plugins first, one concern each; then the domains.
  await app.register(errors, { publicUrl: opts.publicUrl, strict: opts.strictProblems ?? false })
  await app.register(security, { corsOrigins: opts.corsOrigins ?? [] })
  // A request that still arrives while the app closes (on a connection already open) is answered
  // shutting-down, with the security headers, and its connection is closed: the client's retry
  // opens a new one, which a load balancer gives to another instance.
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  app.addHook('onRequest', (_request, _reply, done) => {
    if (!closing) return done()
    done(problem('shutting-down', 'The instance is shutting down; retry on a new connection.', undefined, { 'retry-after': '1', connection: 'close' }))
  })
  await app.register(jsonBody)
  await app.register(dbPlugin, { db: opts.db, owned: opts.ownsDb ?? true })
  await app.register(metrics)
  // Before audit and idempotency: they leave the read routes it marks without a transaction.
  await app.register(replica, { ...DEFAULT_LIMITS.replica, ...opts.replica })
  await app.register(scheduler)
  await app.register(backfills, opts.backfills ?? { intervalMs: 0, batchRows: 5000 })
  // Before auth: shedding answers before any token is verified. The rate limit still keys on
  // the verified subject (its hooks are per route, and those run after the app's).
  await app.register(limits, { rateLimit: opts.rateLimit ?? DEFAULT_LIMITS.rateLimit, pressure: opts.pressure ?? DEFAULT_LIMITS.pressure })
  const resolver = principalResolver(opts.db, opts.principals ?? {})
  app.decorate('principals', resolver)
  await app.register(auth, { ...opts.auth, resolvePrincipal: resolver })
  await app.register(tracing)
  // Before audit: the request transaction must capture the payload as the caller sees it.
  await app.register(pii)
  await app.register(audit)
  await app.register(idempotency, opts.idempotency ?? DEFAULT_LIMITS.idempotency)
  // After audit: its handler wrapper must be the outermost, so the request transaction's
  // connection belongs to the request's deadline.
  await app.register(deadline, opts.deadline ?? DEFAULT_LIMITS.deadline)
  await app.register(auditSealer, { intervalMs: opts.auditSealIntervalMs ?? 0, fullVerifyIntervalMs: opts.auditFullVerifyIntervalMs ?? 0 })
  await app.register(lifecycleSweep, { intervalMs: opts.lifecycleSweepMs ?? 0 })
  const webhookPolicy = targetPolicy(opts.webhooks?.allowedHosts ?? '')
  await app.register(webhookWorker, { policy: webhookPolicy, worker: opts.webhooks?.worker ?? false })
  await app.register(eventRetention, { retentionDays: opts.events?.retentionDays ?? 30, intervalMs: opts.events?.purgeIntervalMs ?? 0 })
  await app.register(importRecovery, { intervalMs: opts.importRecoveryMs ?? 0 })
  await app.register(partitionUpkeep, { intervalMs: opts.partitionUpkeepMs ?? 0 })
  await app.register(openapi, opts.publicUrl ? { publicUrl: opts.publicUrl } : {})
  await app.register(docs)
  await app.register(metricsRoute)
  app.addSchema(Problem)
  app.addSchema(JsonValue)
  // The customer filter language is shared by customers (search) and segments: registered once.
  for (const schema of filterSchemas) app.addSchema(schema)

  await app.register(problemRoutes)
  await app.register(healthRoutes, { readinessTimeoutMs: opts.readinessTimeoutMs ?? 2000 })
  await app.register(auditRoutes, { prefix: '/v1' })
  await app.register(customerRoutes, { prefix: '/v1' })
  await app.register(orderRoutes, { prefix: '/v1' })
  await app.register(interactionRoutes, { prefix: '/v1' })
  await app.register(feedbackRoutes, { prefix: '/v1' })
  await app.register(timelineRoutes, { prefix: '/v1' })
  await app.register(importRoutes, { prefix: '/v1', ...(opts.importMaxBytes ? { maxBytes: opts.importMaxBytes } : {}) })
  await app.register(analyticsRoutes, { prefix: '/v1' })
  await app.register(segmentRoutes, { prefix: '/v1' })
  await app.register(principalRoutes, { prefix: '/v1' })
  await app.register(webhookRoutes, { prefix: '/v1', policy: webhookPolicy, secretOverlapSeconds: opts.webhooks?.secretOverlapSeconds ?? 86_400 })
  await app.register(eventRoutes, {
    prefix: '/v1',
    deadlineMs: (opts.deadline ?? DEFAULT_LIMITS.deadline).deadlineMs,
    retentionDays: opts.events?.retentionDays ?? 30,
    ...(opts.events?.pollIntervalMs ? { pollIntervalMs: opts.events.pollIntervalMs } : {}),
  })

  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
