import { Kysely, PostgresDialect, type Transaction } from 'kysely'
import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from './schema.js'

export type Db = Kysely<Database>
/** Either the pool-backed Kysely or a transaction: repositories accept both. */
export type DbExecutor = Kysely<Database> | Transaction<Database>

// Type parsing is decided once, here, for every query in the process:
// - int8 (count(*), sums of integers) fits a JS number for every figure this API reports;
// - numeric stays a string so money is never a float;
// - date stays 'YYYY-MM-DD' instead of a local-midnight Date.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number.parseInt(v, 10))
pg.types.setTypeParser(pg.types.builtins.DATE, (v) => v)
// - timestamptz becomes RFC 3339 text with all six fraction digits (a JS Date would drop
//   microseconds and break keyset cursors); sessions run in UTC, so the offset is always +00.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMPTZ, toRfc3339)

export function toRfc3339(value: string): string {
  // Always six fraction digits, so the strings also sort correctly as text.
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\+00$/.exec(value)
  if (!m) return value
  return `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(6, '0')}Z`
}

export interface DbOptions {
  connectionString: string
  max?: number
  connectTimeoutMs?: number
  statementTimeoutMs?: number
  idleTimeoutMs?: number
  applicationName?: string
  /**
   * The role every connection takes at start (SET ROLE through the startup options), so the
   * API works with crm_app's privileges, not the login user's. null keeps the login user's:
   * migrations and test set-up need the owner.
   */
  role?: string | null
  log?: Pick<FastifyBaseLogger, 'warn' | 'error'>
}

/** The least-privilege role the API runs as (created by the audit_chain migration). */
export const APP_ROLE = 'crm_app'
const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/

export function createPool(opts: DbOptions): pg.Pool {
  const role = opts.role === undefined ? APP_ROLE : opts.role
  if (role !== null && !ROLE_NAME.test(role)) throw new Error(`invalid database role name: ${role}`)
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: opts.idleTimeoutMs ?? 30000,
    statement_timeout: opts.statementTimeoutMs ?? 10000,
    idle_in_transaction_session_timeout: (opts.statementTimeoutMs ?? 10000) * 3,
    application_name: opts.applicationName ?? 'crm-api',
    keepAlive: true,
    options: `-c TimeZone=UTC${role ? ` -c role=${role}` : ''}`,
  })
  // An idle client whose connection drops emits 'error' on the pool; without a listener
  // Node would treat it as unhandled and crash the process.
  pool.on('error', (err) => {
    opts.log?.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'idle database connection failed')
  })
  // The pool listens only while a client is idle. A checked-out client whose backend is killed
  // gets the error for its running query, then emits 'error' again when the socket closes;
  // unheard, that would crash the process. The pool drops the dead client on release.
  pool.on('connect', (client) => {
    client.on('error', (err) => {
      opts.log?.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'database connection lost')
    })
  })
  return pool
}

const pools = new WeakMap<Db, pg.Pool>()

export function createDb(opts: DbOptions): Db {
  const pool = createPool(opts)
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  pools.set(db, pool)
  return db
}

/**
 * The pg pool behind a Db, for the few things Kysely does not do: COPY streams (pg-copy-streams)
 * in bulk imports. Queries go through Kysely everywhere else.
 */
export function poolOf(db: Db): pg.Pool {
  const pool = pools.get(db)
  if (!pool) throw new Error('poolOf: this Kysely instance was not made by createDb')
  return pool
}
