/**
 * `npm run worker` (in production `node dist/cli/worker.js`): delivers webhooks without serving
 * the API, for deployments that run the API with WEBHOOK_WORKER=off and scale delivery apart.
 * Any number of workers (and API processes with their own worker) share one database: fan-out
 * cursors and deliveries are claimed with SKIP LOCKED and leases (modules/webhooks/webhooks.worker.ts).
 * SIGTERM/SIGINT drain: no new claims, in-flight deliveries finish and are recorded, leases
 * still held are released.
 *
 * Reads the same configuration as the server (DATABASE_URL, DB_*, WEBHOOK_*); it never migrates.
 */
import closeWithGrace from 'close-with-grace'
import { pino, type LoggerOptions } from 'pino'
import { loggerOptions } from '../app.js'
import { loadConfig, orExitOnConfigError, webhookOptions } from '../config.js'
import { createDb } from '../db/database.js'
import { releaseEmbeddedSignalHandlers, resolveDatabase } from '../db/connect.js'
import { targetPolicy } from '../modules/webhooks/webhooks.ssrf.js'
import { DEFAULT_WORKER_OPTIONS, DeliveryWorker } from '../modules/webhooks/webhooks.worker.js'

const config = await orExitOnConfigError(() => loadConfig())
const log = pino(loggerOptions(config.LOG_LEVEL) as LoggerOptions)
const settings = webhookOptions(config, true)

releaseEmbeddedSignalHandlers()
const database = await resolveDatabase(config, log)
const db = createDb({
  connectionString: database.url,
  max: Math.min(config.DB_POOL_MAX, 5),
  connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
  statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
  queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS,
  keepAliveDelayMs: config.DB_KEEPALIVE_DELAY_MS,
  idleTimeoutMs: config.DB_IDLE_TIMEOUT_MS,
  role: config.DB_ROLE === 'none' ? null : config.DB_ROLE,
  log,
})
const worker = new DeliveryWorker(db, { ...DEFAULT_WORKER_OPTIONS, ...settings.worker, policy: targetPolicy(settings.allowedHosts) }, log)

// The worker's own timers are unref'd (inside the API the server keeps the process up): here this does.
const keepAlive = setInterval(() => {}, 1 << 30)

closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + config.WEBHOOK_TIMEOUT_MS, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'worker stopping after an error')
  else log.info(`${signal ?? 'exit'}: draining webhook deliveries`)
  await worker.stop()
  clearInterval(keepAlive)
  await db.destroy()
  await database.embedded?.stop()
  log.info('worker stopped')
})

worker.start()
log.info({ worker: worker.id }, 'webhook worker started')
