import fp from 'fastify-plugin'
import { sql } from 'kysely'
import type { FastifyReply } from 'fastify'
import type { Transaction } from 'kysely'
import type { Db } from '../db/database.js'
import type { Database } from '../db/schema.js'

/** Who and what the audit rows of a transaction name. */
export interface AuditContext {
  actor: string
  requestId: string
  route: string
}

/**
 * Runs `fn` in one transaction whose audit rows name the given actor, request and route: the
 * same context the request wrapper below sets. Work that outlives its request (an import's merge)
 * uses this so it is audited as the request that asked for it.
 */
export async function inAuditedTransaction<T>(db: Db, context: AuditContext, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config('crm.actor', ${context.actor}, true),
                     set_config('crm.request_id', ${context.requestId}, true),
                     set_config('crm.route', ${context.route}, true)`.execute(trx)
    return fn(trx)
  })
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * 'manual': the handler opens its own audited transactions with inAuditedTransaction (a bulk
     * import streams its upload for longer than a transaction may stay idle). The audit triggers
     * still record every row; the handler must pass the request's context so they name it.
     */
    transaction?: 'manual'
  }
}

/**
 * Serialization failures and deadlocks roll the whole transaction back and say so: running it
 * again is safe and usually succeeds. After the last attempt the error answers 503 Retry-After.
 */
const TRANSIENT = new Set(['40001', '40P01'])
export const MAX_ATTEMPTS = 4
const RETRY_BASE_MS = 10

const isTransient = (err: unknown) => TRANSIENT.has((err as { code?: string } | null)?.code ?? '')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The request transaction and its audit context. Every mutating route's handler is wrapped,
 * at registration, in one database transaction that first hands the actor, request id and route
 * to PostgreSQL (set_config(..., true): local to the transaction). The audit triggers on every
 * audited table read them, so the change and its audit rows commit or roll back together and
 * no route can forget either. Handlers use request.db, which is that transaction.
 * A transaction that fails with a serialization failure or deadlock is retried a few times
 * (with a fresh reply: status and headers as before the first attempt).
 */
export default fp(
  async (app) => {
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      if (!methods.some((m) => MUTATING.has(m))) return
      if (route.config?.transaction === 'manual') return
      const handler = route.handler
      const routeName = `${methods.join(',')} ${route.url}`
      route.handler = async function transactional(request, reply) {
        const initial = snapshotReply(reply)
        const context = { actor: request.auth?.sub ?? 'anonymous', requestId: request.id, route: routeName }
        for (let attempt = 1; ; attempt++) {
          const held = holdSend(reply)
          let result: unknown
          try {
            result = await inAuditedTransaction(app.db, context, async (trx) => {
              request.db = trx
              try {
                return await handler.call(this, request, reply)
              } finally {
                request.db = app.db
              }
            })
          } catch (err) {
            if (attempt >= MAX_ATTEMPTS || !isTransient(err)) throw err
            // The transaction rolled back as a whole: run the handler again on a clean reply.
            request.log.info({ code: (err as { code?: string }).code, attempt }, 'transaction conflicted; retrying')
            initial.restore()
            await sleep(RETRY_BASE_MS * 2 ** (attempt - 1) * (0.5 + Math.random()))
            continue
          } finally {
            held.release()
          }
          return held.called ? reply.send(held.payload) : result
        }
      }
    })
  },
  { name: 'audit', dependencies: ['db'] },
)

/**
 * A handler's reply.send() is held until the transaction has committed: otherwise the client
 * could be told 201/204 about a change that a failing COMMIT then rolls back. While held,
 * `return reply` must not wait (reply is a thenable that settles when the response ends).
 */
function holdSend(reply: FastifyReply) {
  const own = reply as unknown as Record<string, unknown>
  const held = {
    called: false,
    payload: undefined as unknown,
    release() {
      delete own.send
      delete own.then
    },
  }
  own.send = (payload: unknown) => {
    held.called = true
    held.payload = payload
    return reply
  }
  own.then = undefined
  return held
}

/** The reply's status and headers as they are now, to put back before a retry. */
function snapshotReply(reply: FastifyReply) {
  const statusCode = reply.statusCode
  const headers = { ...reply.getHeaders() }
  return {
    restore() {
      for (const name of Object.keys(reply.getHeaders())) {
        if (!(name in headers)) reply.removeHeader(name)
      }
      reply.headers(headers)
      reply.code(statusCode)
    },
  }
}
