/**
 * `npm start` (and `node dist/server.js` in production): validates the configuration, starts the
 * embedded PostgreSQL when DATABASE_URL is unset, migrates when MIGRATE_ON_START says so, listens,
 * and on SIGINT/SIGTERM drains in-flight requests before stopping the database.
 */
import closeWithGrace from 'close-with-grace'
import { pino, type LoggerOptions } from 'pino'
import { buildApp, loggerOptions, type App } from './app.js'
import { corsOrigins, loadConfig, migrateOnStart, migrateOptions, orExitOnConfigError, trustProxy, webhookOptions } from './config.js'
import { createDb, type Db } from './db/database.js'
import { createMigrationDb, releaseEmbeddedSignalHandlers, resolveDatabase, type DatabaseTarget } from './db/connect.js'
import { migrateToLatest } from './db/migrate.js'
import { mintDevToken, resolveAuth, type DevKey } from './lib/dev-keys.js'

const config = await orExitOnConfigError(() => loadConfig())
const auth = await orExitOnConfigError(() => resolveAuth(config))

const log = pino(loggerOptions(config.LOG_LEVEL) as LoggerOptions)
let database: DatabaseTarget | undefined
let db: Db | undefined
let app: App | undefined

/** Set by src/instrumentation.ts when it was preloaded (node --import) with an OTLP endpoint. */
const tracing = (globalThis as { crmTracing?: { shutdown(): Promise<void> } }).crmTracing
if (!tracing && (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && process.env.OTEL_SDK_DISABLED !== 'true') {
  log.warn('an OTLP endpoint is set but tracing is off: start with node --import ./dist/instrumentation.js (npm start does)')
}

releaseEmbeddedSignalHandlers()
closeWithGrace({ delay: config.SHUTDOWN_DRAIN_DELAY_MS + config.SHUTDOWN_GRACE_MS, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'shutting down after an error')
  else log.info(`${signal ?? 'exit'}: shutting down`)
  if (app && signal) {
    // /readyz turns 503 at once; requests are still served while load balancers notice.
    app.draining = true
    await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DRAIN_DELAY_MS))
  }
  // app.close() stops accepting, lets in-flight requests finish, then destroys the pool.
  if (app) await app.close()
  else await db?.destroy()
  await database?.embedded?.stop()
  await tracing?.shutdown().catch((e: unknown) => log.warn({ err: e }, 'the last traces were not exported'))
  log.info('stopped')
})

try {
  database = await resolveDatabase(config, log)
  if (migrateOnStart(config)) await migrate(database.url)
  else log.info('MIGRATE_ON_START is off: not migrating (/readyz answers 503 while migrations are pending)')
  db = createDb({
    connectionString: database.url,
    max: config.DB_POOL_MAX,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
    keepAliveDelayMs: config.DB_KEEPALIVE_DELAY_MS,
    idleTimeoutMs: config.DB_IDLE_TIMEOUT_MS,
    role: config.DB_ROLE === 'none' ? null : config.DB_ROLE,
    log,
  })

  const replicaDb = config.DATABASE_REPLICA_URL
    ? createDb({
        connectionString: config.DATABASE_REPLICA_URL,
        max: config.DB_POOL_MAX,
        connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
        statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
        queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
        keepAliveDelayMs: config.DB_KEEPALIVE_DELAY_MS,
        idleTimeoutMs: config.DB_IDLE_TIMEOUT_MS,
        applicationName: 'crm-api-replica',
        role: config.DB_ROLE === 'none' ? null : config.DB_ROLE,
        log,
      })
    : undefined

  app = await buildApp({
    db,
    auth: auth.auth,
    principals: { rolesClaim: config.AUTH_ROLES_CLAIM, teamsClaim: config.AUTH_TEAMS_CLAIM, cacheMs: config.ACCESS_CACHE_MS },
    logger: loggerOptions(config.LOG_LEVEL),
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    deadline: { deadlineMs: config.REQUEST_DEADLINE_MS, longDeadlineMs: config.REQUEST_DEADLINE_LONG_MS },
    readinessTimeoutMs: config.READINESS_TIMEOUT_MS,
    trustProxy: trustProxy(config),
    rateLimit: {
      max: config.RATE_LIMIT_MAX,
      windowMs: config.RATE_LIMIT_WINDOW_MS,
      authFailureMax: config.AUTH_FAILURE_MAX,
      ...(config.RATE_LIMIT_REDIS_URL ? { redisUrl: config.RATE_LIMIT_REDIS_URL } : {}),
    },
    pressure: {
      maxEventLoopDelayMs: config.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: config.PRESSURE_MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: config.PRESSURE_MAX_HEAP_USED_BYTES,
      maxRssBytes: config.PRESSURE_MAX_RSS_BYTES,
      retryAfterSeconds: config.PRESSURE_RETRY_AFTER_S,
    },
    idempotency: { ttlSeconds: config.IDEMPOTENCY_TTL_S, purgeIntervalMs: config.IDEMPOTENCY_PURGE_INTERVAL_MS },
    auditSealIntervalMs: config.AUDIT_SEAL_INTERVAL_MS,
    auditFullVerifyIntervalMs: config.AUDIT_FULL_VERIFY_INTERVAL_MS,
    lifecycleSweepMs: config.LIFECYCLE_SWEEP_MS,
    events: { retentionDays: config.EVENTS_RETENTION_DAYS, purgeIntervalMs: config.EVENTS_PURGE_INTERVAL_MS, pollIntervalMs: config.EVENTS_POLL_INTERVAL_MS },
    importRecoveryMs: config.IMPORT_RECOVERY_MS,
    partitionUpkeepMs: config.PARTITION_UPKEEP_INTERVAL_MS,
    backfills: { intervalMs: config.BACKFILL_INTERVAL_MS, batchRows: config.BACKFILL_BATCH_ROWS },
    corsOrigins: corsOrigins(config),
    replica: {
      ...(replicaDb ? { db: replicaDb } : {}),
      maxLagMs: config.REPLICA_MAX_LAG_MS,
      checkIntervalMs: config.REPLICA_CHECK_INTERVAL_MS,
      readYourWritesMs: config.REPLICA_READ_YOUR_WRITES_MS,
    },
    ...(config.PUBLIC_URL ? { publicUrl: config.PUBLIC_URL.replace(/\/+$/, '') } : {}),
    webhooks: webhookOptions(config, config.WEBHOOK_WORKER === 'on'),
  })
  await app.listen({ host: config.HOST, port: config.PORT })
} catch (err) {
  log.error({ err }, 'start failed')
  await (app ? app.close() : db?.destroy())?.catch(() => {})
  await database?.embedded?.stop().catch(() => {})
  process.exit(1)
}

if (auth.devKey) await printDevBanner(auth.devKey, app)

async function migrate(url: string): Promise<void> {
  const migrationDb = createMigrationDb(url, log)
  try {
    const { results = [] } = await migrateToLatest(migrationDb, undefined, migrateOptions(config))
    log.info(results.length ? `applied migrations: ${results.map((r) => r.migrationName).join(', ')}` : 'database schema is up to date')
  } finally {
    await migrationDb.destroy()
  }
}

async function printDevBanner(key: DevKey, app: App): Promise<void> {
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.PORT
  const base = `http://localhost:${port}`
  const token = await mintDevToken(key, { scope: 'admin pii:read financial:read', sub: 'dev:admin', ttl: '12h', issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE })
  process.stdout.write(
    [
      '',
      `crm-api is running at ${base} (embedded PostgreSQL, local development key${key.created ? ' created' : ''} in ${key.privateFile})`,
      '',
      `  Swagger UI:  ${base}/docs   (click "Authorize" and paste the token below)`,
      `  OpenAPI:     ${base}/openapi.json`,
      '',
      '  Admin token (scope "admin pii:read financial:read", sub "dev:admin", valid 12h):',
      '',
      token,
      '',
      `  curl -H "Authorization: Bearer <token>" ${base}/v1/customers`,
      '  Other tokens: npm run token -- --scope "customers:read" [--sub me] [--ttl 1h]',
      '',
      '',
    ].join('\n'),
  )
}
