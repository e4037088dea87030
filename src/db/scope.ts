import { AsyncLocalStorage } from 'node:async_hooks'
import type pg from 'pg'
import type { PostgresPool, PostgresPoolClient } from 'kysely'
import { SEES_ALL, accessKey, accessSettingsQuery, type AccessContext } from '../lib/access.js'

/**
 * Which work the connections Kysely takes from the pool belong to. A request runs its handler in
 * a scope with a deadline: when the deadline passes, every connection the request still holds is
 * closed (its query is cut off, its transaction can never commit) and the request cannot take
 * another, so no wait on the database outlives the request and no stuck connection goes back to
 * the pool. Work that may run longer than the client-side query timeout (an import's merge) runs
 * in a scope that lifts it for its own connections.
 */
export class ConnectionScope {
  /** Set once the deadline has passed: the error every later connection request fails with. */
  expired: Error | undefined
  private readonly held = new Set<pg.PoolClient>()
  private readonly waiters = new Set<(err: Error) => void>()

  /**
   * @param access what the scope's connections may see (row-level security, src/lib/access.ts),
   *   asked at each checkout; default: everything (scheduled jobs, work outliving its request).
   */
  constructor(readonly queryTimeoutMs?: number, readonly access: () => AccessContext = () => SEES_ALL) {}

  /** Closes every connection held now and refuses new ones; waits for a connection end at once. */
  expire(reason: Error): void {
    if (this.expired) return
    this.expired = reason
    for (const fail of this.waiters) fail(reason)
    this.waiters.clear()
    // end() destroys the socket when a query is running (a frozen server never answers it); the
    // pool drops the client when Kysely releases it, since it is no longer queryable.
    for (const client of this.held) client.end().catch(() => {})
    this.held.clear()
  }

  /** How many connections the scope holds right now. */
  get size(): number {
    return this.held.size
  }

  /** @internal */
  async acquire(pool: pg.Pool): Promise<pg.PoolClient> {
    if (this.expired) throw this.expired
    const pending = pool.connect()
    const client = await new Promise<pg.PoolClient>((resolve, reject) => {
      const fail = (err: Error) => {
        reject(err)
        // The pool hands the connection over later: it is healthy, give it back.
        pending.then((c) => c.release(), () => {})
      }
      this.waiters.add(fail)
      pending.then(
        (c) => {
          this.waiters.delete(fail)
          resolve(c)
        },
        (err: unknown) => {
          this.waiters.delete(fail)
          reject(err as Error)
        },
      )
    })
    this.held.add(client)
    const release = client.release
    const restore = this.queryTimeoutMs === undefined ? undefined : setQueryTimeout(client, this.queryTimeoutMs)
    // pg-pool gives every checkout its own release function, so this wrapper lives for one checkout.
    client.release = (err?: Error | boolean) => {
      this.held.delete(client)
      restore?.()
      release.call(client, err)
    }
    return client
  }
}

const storage = new AsyncLocalStorage<ConnectionScope>()

/** Runs fn (and everything it starts) with its pool connections in the given scope. */
export function runInScope<T>(scope: ConnectionScope, fn: () => T): T {
  return storage.run(scope, fn)
}

/** How much longer the client waits than the server's statement_timeout before giving up on it. */
export const QUERY_TIMEOUT_MARGIN_MS = 5000

/**
 * Runs fn, whose transactions raise statement_timeout to `ms` (0: none), with the client-side
 * query timeout of its connections fitted to that, and outside any request deadline: for work
 * that outlives its request (an import's merge) or has none (a scheduled job).
 */
export function withStatementTimeout<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const current = storage.getStore()
  return storage.run(new ConnectionScope(ms > 0 ? ms + QUERY_TIMEOUT_MARGIN_MS : 0, current?.access), fn)
}

/**
 * Sets the client-side timeout of the client's next queries (pg reads it per query); returns the
 * function that puts the previous one back.
 */
export function setQueryTimeout(client: pg.ClientBase, ms: number): () => void {
  const params = (client as unknown as { connectionParameters: { query_timeout?: number } }).connectionParameters
  const previous = params.query_timeout
  params.query_timeout = ms
  return () => {
    params.query_timeout = previous
  }
}

const ACCESS = Symbol('crm.access')
type AccessAware = pg.PoolClient & { [ACCESS]?: string }

/**
 * Gives the connection the scope's access context for the session, unless it holds it already
 * (a read outside any transaction sees only what its actor may: the policies read these
 * settings). Set outside any transaction, so no rollback undoes it; a transaction sets the same
 * context again, locally, with its audit context (src/plugins/audit.ts).
 */
async function applyAccess(client: AccessAware, access: AccessContext): Promise<void> {
  const key = accessKey(access)
  if (client[ACCESS] === key) return
  delete client[ACCESS]
  try {
    await client.query(accessSettingsQuery(access))
  } catch (err) {
    client.release(err as Error)
    throw err
  }
  client[ACCESS] = key
}

/**
 * The pool as Kysely sees it: each connection is taken in the current scope, if there is one,
 * with the scope's access context (outside any scope: a job's, which sees everything).
 */
export function scopedPool(pool: pg.Pool): PostgresPool {
  return {
    connect: async () => {
      const scope = storage.getStore()
      const client = await (scope ? scope.acquire(pool) : pool.connect())
      await applyAccess(client, scope ? scope.access() : SEES_ALL)
      return client as unknown as PostgresPoolClient
    },
    end: () => pool.end(),
  }
}
