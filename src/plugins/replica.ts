import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import type { Db } from '../db/database.js'
import { currentWalLsn, formatLsn, parseLsn, ReplicaRouter, type ReadTarget } from '../db/replica.js'
import { fromDatabaseError } from './errors.js'

/** The header that carries a write's commit position out, and back in on later reads. */
export const CONSISTENCY_HEADER = 'x-consistency-token'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Which server may serve the route: 'replica' (a heavy read, when a replica is configured and
     * fresh enough) or 'primary'. Unset: decided by readsFrom() below.
     */
    reads?: ReadTarget
  }
  interface FastifyRequest {
    /** Where the request's reads went ('primary' for every request but replica-routed reads). */
    readTarget: ReadTarget
  }
  interface FastifyInstance {
    /** The read replica router, when DATABASE_REPLICA_URL is set. */
    replica: ReplicaRouter | null
  }
}

export interface ReplicaOptions {
  /** The replica's pool; unset: every read goes to the primary. */
  db?: Db
  maxLagMs: number
  checkIntervalMs: number
  /** How long this instance remembers an actor's last write, for reads that carry no token. */
  readYourWritesMs: number
  /** Whether closing the app closes the replica's pool (false when the caller owns it). */
  owned?: boolean
}

export const ConsistencyTokenHeader = {
  $id: 'ConsistencyToken',
  type: 'string',
  maxLength: 64,
  description:
    'Read-your-writes: the X-Consistency-Token a write answered with (its commit position in the write-ahead log, e.g. 0/1A2B3C4D). ' +
    'With it, this read is served by a read replica only once the replica has replayed that write, else by the primary. ' +
    'Optional: without it, reads may be served by a replica up to REPLICA_MAX_LAG_MS behind (the instance that took your write still remembers it for a few seconds).',
  example: '0/1A2B3C4D',
} as const

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
/** A token that is not an LSN can only be satisfied by the primary. */
const UNREADABLE_TOKEN = (1n << 64n) - 1n

/**
 * The routing rule: a route may read from the replica when it reads only (its scope is a
 * `<domain>:read` scope) and answers for a collection or a computed view, not one record by id
 * (its path does not end in a parameter): lists, search, analytics, segment counts, previews,
 * members and exports, timelines and audit reads. A record read by id stays on the primary, so
 * the ETag a client sends back in If-Match is the current one and "create, then GET" needs no
 * token. A route can say otherwise with config.reads.
 */
export function readsFrom(route: Pick<RouteOptions, 'url' | 'method' | 'config'>): ReadTarget {
  const config = (route.config ?? {}) as { reads?: ReadTarget; scope?: string }
  if (config.reads) return config.reads
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  if (!methods.every((m) => m === 'GET' || m === 'HEAD' || m === 'POST')) return 'primary'
  if (typeof config.scope !== 'string' || !/^[a-z_]+:read$/.test(config.scope)) return 'primary'
  const last = route.url.split('/').filter(Boolean).pop() ?? ''
  return last.startsWith(':') ? 'primary' : 'replica'
}

/**
 * Read replicas (DATABASE_REPLICA_URL): heavy reads go to the replica (readsFrom), everything
 * else, writes and every read inside a transaction, to the primary; when the replica lags past
 * REPLICA_MAX_LAG_MS or is down, its reads go to the primary too (db/replica.ts).
 *
 * Read-your-writes: every successful write answers with X-Consistency-Token, the primary's WAL
 * position after its commit. A read that sends it back goes to the replica only once the replica
 * has replayed that far. This instance also remembers each actor's last write for
 * `readYourWritesMs`, so a client that does not send the token reads its own writes when its
 * reads reach the instance that took the write.
 *
 * Registered before the audit plugin: read routes marked here run without the request
 * transaction (a POST search or preview writes nothing).
 */
export default fp<ReplicaOptions>(
  async (app, opts) => {
    const router = opts.db
      ? new ReplicaRouter({ primary: app.db, replica: opts.db, maxLagMs: opts.maxLagMs, checkIntervalMs: opts.checkIntervalMs, log: app.log })
      : null
    app.decorate('replica', router)
    app.decorateRequest('readTarget', 'primary')

    app.addSchema(ConsistencyTokenHeader)
    app.addHook('onRoute', (route) => {
      const reads = readsFrom(route)
      route.config = { ...(route.config ?? {}), reads } as typeof route.config
      if (reads !== 'replica') return
      // Declared in the contract of every route that may read from a replica.
      const schema = (route.schema ??= {}) as { headers?: { type?: string; properties?: Record<string, unknown> } }
      schema.headers = { ...schema.headers, type: 'object', properties: { ...schema.headers?.properties, [CONSISTENCY_HEADER]: { $ref: 'ConsistencyToken#' } } }
    })

    const routed = new Counter({
      name: 'crm_db_reads_routed_total',
      help: 'Replica-eligible requests by the server that served them and why',
      labelNames: ['target', 'reason'],
      registers: [app.metrics],
    })
    // Registered with or without a replica, so dashboards and alerts find every name; without
    // one they have no samples.
    const status = () => router?.status
    new Gauge({
      name: 'crm_db_replica_up', help: '1 while the last check reached the read replica, else 0', registers: [app.metrics],
      collect() {
        const s = status()
        if (s) this.set(s.reachable ? 1 : 0)
      },
    })
    new Gauge({
      name: 'crm_db_replica_lag_seconds', help: 'Replication lag: 0 when everything is replayed, else the age of the last replayed commit', registers: [app.metrics],
      collect() {
        const lag = status()?.lagMs
        if (lag === null || lag === undefined) this.reset()
        else this.set(lag / 1000)
      },
    })
    new Gauge({
      name: 'crm_db_replica_lag_bytes', help: 'WAL bytes the replica has yet to replay', registers: [app.metrics],
      collect() {
        const lag = status()?.lagBytes
        if (lag === null || lag === undefined) this.reset()
        else this.set(lag)
      },
    })
    if (!router) {
      app.addHook('preHandler', (request, _reply, done) => {
        if (request.routeOptions.config?.reads === 'replica') routed.inc({ target: 'primary', reason: 'no_replica' })
        done()
      })
      return
    }
    app.observePool('replica', router.replica)

    const lastWrites = new Map<string, { lsn: bigint; until: number }>()
    const remember = (actor: string, lsn: bigint) => {
      const now = Date.now()
      if (lastWrites.size > 10_000) for (const [k, v] of lastWrites) if (v.until < now) lastWrites.delete(k)
      lastWrites.set(actor, { lsn, until: now + opts.readYourWritesMs })
    }
    const tokenOf = (request: FastifyRequest): bigint | null => {
      const given = request.headers[CONSISTENCY_HEADER]
      let token: bigint | null = null
      if (typeof given === 'string' && given !== '') token = parseLsn(given) ?? UNREADABLE_TOKEN
      const actor = request.auth?.sub
      const remembered = actor ? lastWrites.get(actor) : undefined
      if (remembered && remembered.until >= Date.now() && (token === null || remembered.lsn > token)) token = remembered.lsn
      return token
    }

    app.addHook('preHandler', async (request) => {
      if (request.routeOptions.config?.reads !== 'replica') return
      // A POST read with an Idempotency-Key runs in the request transaction (plugins/audit.ts).
      if (request.method === 'POST' && request.headers['idempotency-key'] !== undefined) {
        routed.inc({ target: 'primary', reason: 'transaction' })
        return
      }
      const { target, reason } = await router.route(tokenOf(request))
      routed.inc({ target, reason })
      if (target === 'replica') {
        request.db = router.replica
        request.readTarget = 'replica'
      }
    })

    // A read the replica failed to serve (it went down, or a query conflicted with replay) runs
    // again on the primary, once, if nothing has been sent yet.
    app.addHook('onRoute', (route) => {
      if (route.config?.reads !== 'replica') return
      const handler = route.handler
      route.handler = async function replicaFallback(request: FastifyRequest, reply: FastifyReply) {
        try {
          return await handler.call(this, request, reply)
        } catch (err) {
          if (request.readTarget !== 'replica' || reply.sent || fromDatabaseError(err as { code?: string })?.status !== 503) throw err
          const code = (err as { code?: string }).code
          if (code !== '40001' && code !== '57014') router.markDown((err as Error).message)
          routed.inc({ target: 'primary', reason: 'replica_failed' })
          request.log.warn({ code }, 'read replica failed; reading from the primary')
          request.db = app.db
          request.readTarget = 'primary'
          return handler.call(this, request, reply)
        }
      }
    })

    app.addHook('onSend', async (request, reply, payload) => {
      if (!MUTATING.has(request.method) || reply.statusCode >= 300 || request.routeOptions.config?.reads === 'replica') return payload
      try {
        const lsn = await currentWalLsn(app.db)
        reply.header(CONSISTENCY_HEADER, formatLsn(lsn))
        if (request.auth?.sub) remember(request.auth.sub, lsn)
      } catch (err) {
        request.log.warn({ err: { message: (err as Error).message } }, 'no consistency token: the primary did not answer')
      }
      return payload
    })

    app.addHook('onReady', async () => router.start())
    app.addHook('onClose', async () => {
      await router.stop()
      if (opts.owned !== false) await router.replica.destroy()
    })
  },
  { name: 'replica', dependencies: ['db', 'metrics'] },
)
