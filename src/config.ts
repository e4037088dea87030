import { Type, type Static } from 'typebox'
import { Value } from 'typebox/value'
import { targetPolicy } from './modules/webhooks/webhooks.ssrf.js'

/**
 * Every environment variable the service reads, validated once at start.
 * A bad value stops the process with a message naming the variable.
 */
export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Enum(['development', 'test', 'production'], { default: 'development' }),
  HOST: Type.String({ default: '0.0.0.0' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  /** Unset: an embedded PostgreSQL under DATA_DIR is started and used. */
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ default: '.data' }),
  EMBEDDED_PG_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54329 }),
  /**
   * A streaming replica of DATABASE_URL for heavy reads (lists, search, analytics, segment counts,
   * previews and exports, timelines, audit reads); unset: every read goes to the primary.
   */
  DATABASE_REPLICA_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  /** Past this replication lag, the replica's reads go to the primary until it catches up. */
  REPLICA_MAX_LAG_MS: Type.Integer({ minimum: 0, default: 5000 }),
  /** How often the replica's lag and reachability are measured (reads use the last measure). */
  REPLICA_CHECK_INTERVAL_MS: Type.Integer({ minimum: 50, maximum: 60_000, default: 1000 }),
  /** How long an instance sends an actor's reads to the primary after its write, when the read carries no consistency token (0: only the token). */
  REPLICA_READ_YOUR_WRITES_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 10_000 }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 10 }),
  DB_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 5000 }),
  DB_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 10000 }),
  /** Client-side backstop per query, longer than the statement timeout (a frozen server sends no error); 0: off. */
  DB_QUERY_TIMEOUT_MS: Type.Integer({ minimum: 0, default: 15000 }),
  /** Idle time before TCP keepalive probes start on a database connection. */
  DB_KEEPALIVE_DELAY_MS: Type.Integer({ minimum: 1000, default: 10000 }),
  DB_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 30000 }),
  /** Whether start applies pending migrations; unset: yes, except with NODE_ENV=production (see migrateOnStart). */
  MIGRATE_ON_START: Type.Optional(Type.Boolean()),
  /** How long a migration statement waits for a table lock before it gives up (and is retried); 0: forever. */
  MIGRATION_LOCK_TIMEOUT_MS: Type.Integer({ minimum: 0, default: 5000 }),
  /** Retries of a migration that did not get its lock in time, with a doubling pause from 1 s. */
  MIGRATION_LOCK_RETRIES: Type.Integer({ minimum: 0, maximum: 20, default: 3 }),
  /** The role the API's connections take (SET ROLE); "none" keeps the login user's privileges. */
  DB_ROLE: Type.String({ pattern: '^([a-z_][a-z0-9_]{0,62})$', default: 'crm_app' }),
  /** How often the audit trail is sealed into its hash chain; 0 turns the schedule off. */
  AUDIT_SEAL_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 5000 }),
  /** How often the whole audit chain is verified again (GET .../verify is incremental); 0 turns it off. */
  AUDIT_FULL_VERIFY_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 7 * 86_400_000, default: 86_400_000 }),
  /** Public keys that sign access tokens: a JWKS file path or an https URL. */
  AUTH_JWKS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  AUTH_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  AUTH_ISSUER: Type.String({ minLength: 1, default: 'crm-api-dev' }),
  AUTH_AUDIENCE: Type.String({ minLength: 1, default: 'crm-api' }),
  AUTH_ALGORITHMS: Type.String({ pattern: '^[A-Za-z0-9]+(,[A-Za-z0-9]+)*$', default: 'ES256,RS256,EdDSA' }),
  AUTH_CLOCK_TOLERANCE_S: Type.Integer({ minimum: 0, maximum: 300, default: 30 }),
  /**
   * Where an identity provider owns roles and teams: the token claim with role keys, and the one
   * with team ids. Unset: roles and memberships are managed through /v1/users.
   */
  AUTH_ROLES_CLAIM: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_:./-]{1,100}$' })),
  AUTH_TEAMS_CLAIM: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_:./-]{1,100}$' })),
  /** How long a token's resolved principal (user, roles, visible teams) is reused; 0: resolved on every request. */
  ACCESS_CACHE_MS: Type.Integer({ minimum: 0, maximum: 300_000, default: 5000 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 50 * 1024 * 1024, default: 1024 * 1024 }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 30000 }),
  /** From a request's arrival to its 503 (deadline-exceeded); the request's database work is cut off. */
  REQUEST_DEADLINE_MS: Type.Integer({ minimum: 100, default: 25000 }),
  /** The same for the heavy routes (analytics, segment counts and previews, imports). */
  REQUEST_DEADLINE_LONG_MS: Type.Integer({ minimum: 100, default: 120000 }),
  /** How long /readyz waits for the database before answering 503. */
  READINESS_TIMEOUT_MS: Type.Integer({ minimum: 100, default: 2000 }),
  /** After SIGTERM: how long /readyz answers 503 while requests are still served, before the listener closes. */
  SHUTDOWN_DRAIN_DELAY_MS: Type.Integer({ minimum: 0, default: 3000 }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 100, default: 10000 }),
  /**
   * Which proxies' X-Forwarded-For names the client: false (none), true (any: only behind a proxy
   * that overwrites the header), a hop count, or comma-separated addresses and CIDR ranges.
   */
  TRUST_PROXY: Type.String({ pattern: '^(false|true|\\d{1,2}|[0-9A-Fa-f.:]+(/\\d{1,3})?(,[0-9A-Fa-f.:]+(/\\d{1,3})?)*)$', default: 'false' }),
  /** Requests per caller (token subject, else IP) per window; over it: 429 with Retry-After. */
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 1000 }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60000 }),
  /** Failed authentications per client address, and per presented token, per window; over it: 429. */
  AUTH_FAILURE_MAX: Type.Integer({ minimum: 1, default: 100 }),
  /** Unset: counters in memory, per instance. Set: shared by every instance through this Redis. */
  RATE_LIMIT_REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  /** Load shedding (503 with Retry-After) thresholds; 0 turns a check off. */
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1000 }),
  PRESSURE_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  PRESSURE_MAX_HEAP_USED_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  PRESSURE_MAX_RSS_BYTES: Type.Integer({ minimum: 0, default: 0 }),
  PRESSURE_RETRY_AFTER_S: Type.Integer({ minimum: 1, maximum: 3600, default: 10 }),
  /** How long an Idempotency-Key's response is kept, and how often expired ones are deleted (0: never). */
  IDEMPOTENCY_TTL_S: Type.Integer({ minimum: 60, default: 86400 }),
  IDEMPOTENCY_PURGE_INTERVAL_MS: Type.Integer({ minimum: 0, default: 900000 }),
  /** How often the lifecycle rules are applied to everyone (time moves customers to at_risk/churned); 0 turns it off. */
  LIFECYCLE_SWEEP_MS: Type.Integer({ minimum: 0, default: 3_600_000 }),
  /** Whether this process delivers webhooks (on: the API delivers them itself; off: `npm run worker` processes do). */
  WEBHOOK_WORKER: Type.Enum(['on', 'off'], { default: 'on' }),
  /**
   * Webhook targets let through the SSRF guard: comma-separated host names (any address they
   * resolve to) and addresses or CIDR ranges (127.0.0.0/8,::1). Empty: no private target at all.
   */
  WEBHOOK_ALLOWED_HOSTS: Type.String({ maxLength: 4000, pattern: '^[A-Za-z0-9.:/,_\\[\\]-]*$', default: '' }),
  /** Idle time between a worker's polls of the event feed and the delivery queue. */
  WEBHOOK_POLL_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 100 }),
  /** The first retry's delay; each next one doubles up to WEBHOOK_BACKOFF_MAX_MS (±20 % jitter). */
  WEBHOOK_BACKOFF_BASE_MS: Type.Integer({ minimum: 1, default: 10_000 }),
  WEBHOOK_BACKOFF_MAX_MS: Type.Integer({ minimum: 1, default: 43_200_000 }),
  /** Attempts before a delivery is a dead letter and its subscription is disabled (defaults: about 3 days). */
  WEBHOOK_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100, default: 18 }),
  /** How long a receiver has to answer one attempt. */
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 10_000 }),
  /** How long a claimed delivery stays a worker's; past it (the worker died), another takes it. Longer than the timeout. */
  WEBHOOK_LEASE_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  /** Deliveries in flight at once per worker. */
  WEBHOOK_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1000, default: 128 }),
  /** How long a rotated-out secret keeps signing next to the new one (rotate-secret's default overlap). */
  WEBHOOK_SECRET_OVERLAP_S: Type.Integer({ minimum: 0, maximum: 604_800, default: 86_400 }),
  /** The change feed: how many days events are kept (a reader further behind gets 410), how often old ones are purged (0: never), how often long polls look for new ones. */
  EVENTS_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 30 }),
  EVENTS_PURGE_INTERVAL_MS: Type.Integer({ minimum: 0, default: 3_600_000 }),
  EVENTS_POLL_INTERVAL_MS: Type.Integer({ minimum: 10, maximum: 10_000, default: 100 }),
  /** How often imports left by a process that died are resumed or failed; 0 turns it off. */
  IMPORT_RECOVERY_MS: Type.Integer({ minimum: 0, default: 60_000 }),
  /** How often the partitions of audit_events and events are created ahead (src/plugins/partitions.ts); 0 turns it off. */
  PARTITION_UPKEEP_INTERVAL_MS: Type.Integer({ minimum: 0, default: 86_400_000 }),
  /** Between two batches of a pending data backfill (src/plugins/backfills.ts); 0 turns backfills off. */
  BACKFILL_INTERVAL_MS: Type.Integer({ minimum: 0, default: 500 }),
  BACKFILL_BATCH_ROWS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 5000 }),
  /** Comma-separated browser origins allowed by CORS (https://app.example.com,...); empty: none. */
  /** The API's public base URL (https://crm.example.com), the OpenAPI document's server; unset: relative to where it is served. */
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$', maxLength: 2000 })),
  CORS_ORIGINS: Type.String({ pattern: '^(https?://[A-Za-z0-9.:\\[\\]-]+(,https?://[A-Za-z0-9.:\\[\\]-]+)*)?$', maxLength: 4000, default: '' }),
})

export type Config = Static<typeof ConfigSchema>

/** TRUST_PROXY as Fastify's trustProxy option. */
export function trustProxy(config: Pick<Config, 'TRUST_PROXY'>): boolean | number | string[] {
  const value = config.TRUST_PROXY
  if (value === 'false') return false
  if (value === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  return value.split(',')
}

/** CORS_ORIGINS as a list. */
export const corsOrigins = (config: Pick<Config, 'CORS_ORIGINS'>): string[] => config.CORS_ORIGINS.split(',').filter(Boolean)

/**
 * Development and test migrate at start; production by default leaves it to a release step
 * (`node dist/cli/migrate.js`), so a rollout of many instances does not race to migrate and an
 * instance never runs DDL as a side effect of a restart.
 */
export const migrateOnStart = (config: Pick<Config, 'MIGRATE_ON_START' | 'NODE_ENV'>): boolean => config.MIGRATE_ON_START ?? config.NODE_ENV !== 'production'

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** What a command does with a bad configuration: prints the ConfigError's message and exits 1. */
export async function orExitOnConfigError<T>(load: () => T | Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    process.exit(1)
  }
}

/** Parses process.env (or the given record) into a Config, throwing a readable ConfigError. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const known = Object.keys(ConfigSchema.properties)
  const input: Record<string, unknown> = {}
  for (const key of known) {
    const raw = env[key]
    if (raw !== undefined && raw !== '') input[key] = raw
  }
  const converted = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, input))
  const errors = [...Value.Errors(ConfigSchema, converted)]
  if (errors.length > 0) {
    const lines = errors.map((e) => {
      const name = e.instancePath.replace(/^\//, '') || (e.params as { requiredProperties?: string[] }).requiredProperties?.join(', ') || '(config)'
      return `  ${name}: ${e.message} (got ${JSON.stringify(input[name] ?? null)})`
    })
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`)
  }
  const config = converted as Config
  if (config.AUTH_JWKS_FILE && config.AUTH_JWKS_URL) {
    throw new ConfigError('Invalid configuration:\n  AUTH_JWKS_FILE, AUTH_JWKS_URL: set one, not both')
  }
  if (config.DB_QUERY_TIMEOUT_MS !== 0 && config.DB_QUERY_TIMEOUT_MS <= config.DB_STATEMENT_TIMEOUT_MS) {
    throw new ConfigError('Invalid configuration:\n  DB_QUERY_TIMEOUT_MS: must be longer than DB_STATEMENT_TIMEOUT_MS (or 0), or it would cut off queries the server is still allowed to run')
  }
  if (config.WEBHOOK_LEASE_MS <= config.WEBHOOK_TIMEOUT_MS) {
    throw new ConfigError('Invalid configuration:\n  WEBHOOK_LEASE_MS: must be longer than WEBHOOK_TIMEOUT_MS, or a slow receiver would have its delivery taken over by another worker while still answering')
  }
  try {
    targetPolicy(config.WEBHOOK_ALLOWED_HOSTS)
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  ${(err as Error).message}`)
  }
  return config
}

/** The webhook settings of AppOptions (and of `npm run worker`) from the configuration. */
export function webhookOptions(config: Config, worker: boolean) {
  return {
    allowedHosts: config.WEBHOOK_ALLOWED_HOSTS,
    secretOverlapSeconds: config.WEBHOOK_SECRET_OVERLAP_S,
    worker: worker
      ? {
          pollMs: config.WEBHOOK_POLL_MS,
          backoffBaseMs: config.WEBHOOK_BACKOFF_BASE_MS,
          backoffMaxMs: config.WEBHOOK_BACKOFF_MAX_MS,
          maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
          timeoutMs: config.WEBHOOK_TIMEOUT_MS,
          leaseMs: config.WEBHOOK_LEASE_MS,
          concurrency: config.WEBHOOK_CONCURRENCY,
        }
      : false as const,
  }
}

/** What the migrator takes from the configuration (src/db/migrate.ts, MigrateOptions). */
export const migrateOptions = (config: Pick<Config, 'MIGRATION_LOCK_TIMEOUT_MS' | 'MIGRATION_LOCK_RETRIES'>) => ({
  lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS,
  lockRetries: config.MIGRATION_LOCK_RETRIES,
})
