import { sql } from 'kysely'
import type { Db, DbExecutor } from '../db/database.js'

/** All SQL of the idempotency mechanism (plugins/idempotency.ts). */

export interface IdempotencyScope {
  actor: string
  /** Method and route pattern, e.g. "POST /v1/customers/:id/contact-points". */
  route: string
  key: string
}

export interface StoredResponse {
  fingerprint: string
  status: number
  headers: Record<string, string>
  body: string | null
}

/**
 * Takes the transaction-scoped advisory lock of one (actor, route, key). False when another
 * transaction holds it: a request with the same key is in flight. Released at COMMIT/ROLLBACK.
 */
export async function tryLock(trx: DbExecutor, scope: IdempotencyScope): Promise<boolean> {
  const id = JSON.stringify([scope.actor, scope.route, scope.key])
  const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtextextended(${id}, 0)) as locked`.execute(trx)
  return rows[0]!.locked
}

/** The live (unexpired) stored response of a key, if any. */
export async function findResponse(trx: DbExecutor, scope: IdempotencyScope): Promise<StoredResponse | undefined> {
  return trx
    .selectFrom('idempotency_keys')
    .select(['fingerprint', 'status', 'headers', 'body'])
    .where('actor', '=', scope.actor)
    .where('route', '=', scope.route)
    .where('key', '=', scope.key)
    .where('expires_at', '>', sql<string>`now()`)
    .executeTakeFirst()
}

/** Stores a key's response; an expired row of the same key is replaced. */
export async function saveResponse(trx: DbExecutor, scope: IdempotencyScope, response: StoredResponse, ttlSeconds: number): Promise<void> {
  const expires = sql<string>`now() + make_interval(secs => ${ttlSeconds})`
  await trx
    .insertInto('idempotency_keys')
    .values({ ...scope, ...response, headers: JSON.stringify(response.headers), expires_at: expires })
    .onConflict((oc) =>
      oc.columns(['actor', 'route', 'key']).doUpdateSet({
        fingerprint: (eb) => eb.ref('excluded.fingerprint'),
        status: (eb) => eb.ref('excluded.status'),
        headers: (eb) => eb.ref('excluded.headers'),
        body: (eb) => eb.ref('excluded.body'),
        created_at: sql<string>`now()`,
        expires_at: (eb) => eb.ref('excluded.expires_at'),
      }).where('idempotency_keys.expires_at', '<=', sql<string>`now()`),
    )
    .execute()
}

/** Deletes up to `limit` expired keys; returns how many. Cheap: it walks the expiry index. */
export async function purgeExpired(db: DbExecutor, limit = 5000): Promise<number> {
  const result = await sql`
    delete from idempotency_keys where ctid = any (array(
      select ctid from idempotency_keys where expires_at <= now() order by expires_at limit ${limit}))`.execute(db)
  return Number(result.numAffectedRows ?? 0)
}
