import { Kysely, PostgresDialect, type Transaction } from 'kysely'
import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from './rows.js'
import { QUERY_TIMEOUT_MARGIN_MS, scopedPool } from './scope.js'

export type Db = Kysely<Database>
/** Either the pool-backed Kysely or a transaction: repositories accept both. */
export type DbExecutor = Kysely<Database> | Transaction<Database>

// Type parsing is decided once, here, for every query in the process:
// - int8 (count(*), sums of integers) fits a JS number for every figure this API reports;
// - numeric stays a string so money is never a float;
// - date stays 'YYYY-MM-DD' instead of a local-midnight Date.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number.parseInt(v, 10))
pg.types.setTypeParser(pg.types.builtins.DATE, (v) => v)
// - timestamptz becomes RFC 3339 text in UTC with three fraction digits: the API's times are
//   milliseconds, stored as timestamptz(3) (migration timestamps_milliseconds), so a time a
//   client reads, keeps in a millisecond clock (a JS Date) and sends back as a filter bound or
//   cursor is the stored value exactly. Sessions run in UTC, so the offset is always +00.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMPTZ, toRfc3339)
type TypeId = Parameters<typeof pg.types.getTypeParser>[0]
// pg's TypeId enum lists no array types; these are PostgreSQL's fixed OIDs of _text and _varchar.
const TEXT_ARRAY_OID = 1009 as TypeId
const VARCHAR_ARRAY_OID = 1015 as TypeId
const defaultTextArray = pg.types.getTypeParser(TEXT_ARRAY_OID, 'text') as (value: string) => unknown
// - text[] and varchar[] (tags, interests) skip pg's character-by-character array parser, which
//   allocates an object per character, when the literal has no quoting (see parseTextArray).
pg.types.setTypeParser(TEXT_ARRAY_OID, parseTextArray)
pg.types.setTypeParser(VARCHAR_ARRAY_OID, parseTextArray)

const RFC3339_SOURCE = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\+00$/

export function toRfc3339(value: string): string {
  // Always three fraction digits, so the strings also sort correctly as text; digits past the
  // millisecond (audit events stamped before the audit trail moved to milliseconds) are cut, not
  // rounded, so a cut time is never later than the stored one. The common shape
  // ('2026-11-01 01:27:57.804+00', four-digit year) is cut by position: a list page has three
  // timestamps per row, and the regular expression below costs several times as much.
  const n = value.length
  if (
    (n === 22 || (n >= 24 && n <= 29 && value.charCodeAt(19) === 46)) &&
    value.charCodeAt(4) === 45 && value.charCodeAt(10) === 32 && value.endsWith('+00')
  ) {
    return n === 22
      ? `${value.slice(0, 10)}T${value.slice(11, 19)}.000Z`
      : `${value.slice(0, 10)}T${value.slice(11, 19)}.${value.slice(20, Math.min(n - 3, 23)).padEnd(3, '0')}Z`
  }
  const m = RFC3339_SOURCE.exec(value)
  if (!m) return value
  return `${m[1]}T${m[2]}.${(m[3] ?? '').slice(0, 3).padEnd(3, '0')}Z`
}

const NEEDS_FULL_PARSER = /["\\{}]/

/**
 * A one-dimensional text array literal. PostgreSQL quotes every element that is empty, holds
 * whitespace, a comma, a brace, a quote or a backslash, or reads NULL; so a literal with no quote,
 * backslash or inner brace is its elements joined by commas, with an unquoted NULL for null.
 * Anything else (quoted elements, several dimensions, explicit bounds) goes to pg's own parser.
 */
export function parseTextArray(value: string): unknown {
  const n = value.length
  if (n >= 2 && value.charCodeAt(0) === 123 && value.charCodeAt(n - 1) === 125) {
    if (n === 2) return []
    const inner = value.slice(1, n - 1)
    if (!NEEDS_FULL_PARSER.test(inner)) {
      const items: Array<string | null> = inner.split(',')
      for (let i = 0; i < items.length; i++) if (items[i] === 'NULL') items[i] = null
      return items
    }
  }
  return defaultTextArray(value)
}

export interface DbOptions {
  connectionString: string
  max?: number
  connectTimeoutMs?: number
  statementTimeoutMs?: number
  /**
   * Client-side backstop: a query with no answer after this long fails and its connection is
   * closed (a frozen or unreachable server never sends the statement timeout's error). Default:
   * the statement timeout plus 5 s; 0 (or a statement timeout of 0) turns it off.
   */
  queryTimeoutMs?: number
  /** Idle time before TCP keepalive probes start on a connection (a dead peer is then noticed). */
  keepAliveDelayMs?: number
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
  const statementTimeoutMs = opts.statementTimeoutMs ?? 10000
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: opts.idleTimeoutMs ?? 30000,
    statement_timeout: statementTimeoutMs,
    query_timeout: opts.queryTimeoutMs ?? (statementTimeoutMs > 0 ? statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS : 0),
    idle_in_transaction_session_timeout: statementTimeoutMs * 3,
    application_name: opts.applicationName ?? 'crm-api',
    keepAlive: true,
    keepAliveInitialDelayMillis: opts.keepAliveDelayMs ?? 10_000,
    // jit=off: the planner JIT-compiles any plan over jit_above_cost, which at 1M customers
    // includes the analytics and segment counts; compiling took ~0.4 s, more than it saved on
    // queries that read one short row per customer (see the purchase_history migration).
    // client_connection_check_interval: a backend whose client has gone (a request deadline
    // closed the connection) stops its query within a second instead of running it to the end.
    options: `-c TimeZone=UTC -c jit=off -c client_connection_check_interval=1000${role ? ` -c role=${role}` : ''}`,
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
    closeOnQueryTimeout(client)
  })
  return pool
}

/**
 * pg's query_timeout fails the query but leaves it running on the connection: released as it
 * is, the client would go back to the pool with the next query queued behind one that may never
 * answer. Closing it makes the pool drop it on release.
 */
function closeOnQueryTimeout(client: pg.PoolClient): void {
  const query = client.query as (...args: unknown[]) => unknown
  client.query = function (this: pg.PoolClient, ...args: unknown[]) {
    const result = query.apply(this, args)
    if (result instanceof Promise) {
      result.catch((err: unknown) => {
        if ((err as Error | null)?.message === 'Query read timeout') client.end().catch(() => {})
      })
    }
    return result
  } as typeof client.query
}

const pools = new WeakMap<Db, pg.Pool>()

export function createDb(opts: DbOptions): Db {
  const pool = createPool(opts)
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: scopedPool(pool) }) })
  pools.set(db, pool)
  return db
}

/**
 * The pg pool behind a Db, for the few things Kysely does not do: COPY streams (pg-copy-streams)
 * in bulk imports. Queries go through Kysely everywhere else.
 */
export function poolOf(db: Db): pg.Pool {
  const pool = findPool(db)
  if (!pool) throw new Error('poolOf: this Kysely instance was not made by createDb')
  return pool
}

/** The pool under a Kysely instance made by createDb; undefined for one a caller built itself (a test's logging instance). */
export function findPool(db: Db): pg.Pool | undefined {
  return pools.get(db)
}
