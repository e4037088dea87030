import fp from 'fastify-plugin'
import { sql } from 'kysely'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Transaction } from 'kysely'
import type { Db, DbExecutor } from '../db/database.js'
import type { Database } from '../db/rows.js'
import { shareWriteGate } from '../db/write-gate.js'
import { SEES_ALL, SEES_NOTHING, accessSettingsSql, type AccessContext } from '../lib/access.js'

/** Who and what the audit rows of a transaction name. */
export interface AuditContext {
  actor: string
  /** The server's id of the request (never the client's). */
  requestId: string
  route: string
  /** The client's own id of the request, if it sent one (see correlationIdOf in app.ts). */
  correlationId?: string | null
  /**
   * What the actor may see (row-level security), set in the same statement as the audit context;
   * default: everything (a scheduled job, a system actor).
   */
  access?: AccessContext
}

/** The audit context of a request: its authenticated subject, the server's request id, the client's correlation id. */
export const requestAuditContext = (request: FastifyRequest, route: string): AuditContext => ({
  actor: request.auth?.sub ?? 'anonymous',
  requestId: request.id,
  route,
  correlationId: request.correlationId,
  access: request.auth?.access ?? SEES_NOTHING,
})

/**
 * Runs `fn` in one transaction whose audit rows name the given actor, request and route: the
 * same context the request wrapper below sets. It first passes the write gate (src/db/write-gate.ts)
 * so that a running migration and the writes never deadlock. Work that outlives its request (an import's merge)
 * uses this so it is audited as the request that asked for it.
 */
export async function inAuditedTransaction<T>(db: Db, context: AuditContext, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select ${shareWriteGate}, ${auditContextSql(context)}`.execute(trx)
    return fn(trx)
  })
}

/**
 * Names another actor and request for the audit rows written from here to the end of the
 * transaction: a job that finishes work a request asked for (an import's merge resumed after a
 * crash) records it as that request's.
 */
export async function switchAuditContext(trx: DbExecutor, context: AuditContext): Promise<void> {
  await sql`select ${auditContextSql(context)}`.execute(trx)
}

const auditContextSql = (context: AuditContext) => sql`
  set_config('crm.actor', ${context.actor}, true),
  set_config('crm.request_id', ${context.requestId}, true),
  set_config('crm.route', ${context.route}, true),
  set_config('crm.correlation_id', ${context.correlationId ?? ''}, true),
  ${accessSettingsSql(context.access ?? SEES_ALL, true)}`

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** A response as the client receives it: status, headers and the serialized body. */
export interface CapturedResponse {
  status: number
  headers: Record<string, string>
  /** The exact bytes of the body (already serialized), or null for no body. */
  body: string | null
}

/**
 * What a transaction step decides before the handler runs:
 * - `replay`: answer with this response instead of running the handler (nothing is written);
 * - `onSuccess`: run the handler, then call this with the response the client will receive,
 *   still inside the transaction, so anything it writes commits or rolls back with the change.
 */
export type StepOutcome = { replay: CapturedResponse } | { onSuccess: (response: CapturedResponse) => Promise<void> }

/**
 * A cross-cutting step of the request transaction (idempotency is one). It runs inside the
 * transaction after the audit context is set, before the handler; it may throw an HttpProblem.
 */
export type TransactionStep = (request: FastifyRequest, trx: Transaction<Database>) => Promise<StepOutcome | undefined>

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * 'manual': the handler opens its own audited transactions with inAuditedTransaction (a bulk
     * import streams its upload for longer than a transaction may stay idle). The audit triggers
     * still record every row; the handler must pass the request's context so they name it.
     * Transaction steps (idempotency) do not run for such routes.
     */
    transaction?: 'manual'
  }
  interface FastifyInstance {
    /** Adds a step to every mutating route's transaction; call before the routes are registered. */
    addTransactionStep(step: TransactionStep): void
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

 * Steps added with app.addTransactionStep run inside that transaction before the handler. When a
 * step asks for the response (onSuccess), the handler's payload is serialized with the route's
 * response schema inside the transaction, and exactly those bytes are what the client receives.
 *
 * A transaction that fails with a serialization failure or deadlock is retried a few times
 * (with a fresh reply: status and headers as before the first attempt).
 */
export default fp(
  async (app) => {
    const steps: TransactionStep[] = []
    app.decorate('addTransactionStep', (step: TransactionStep) => {
      steps.push(step)
    })

    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      if (!methods.some((m) => MUTATING.has(m))) return
      if (route.config?.transaction === 'manual') return
      // A read that takes a POST body (search, preview) writes nothing: it runs without a
      // transaction, so the replica plugin may send it to a read replica; only with an
      // Idempotency-Key (whose stored response is a write) does it take the request transaction.
      const readOnly = route.config?.reads === 'replica'
      const handler = route.handler
      const routeName = `${methods.join(',')} ${route.url}`
      route.handler = async function transactional(request, reply) {
        if (readOnly && request.headers['idempotency-key'] === undefined) return handler.call(this, request, reply)
        const initial = snapshotReply(reply)
        const context = requestAuditContext(request, routeName)
        for (let attempt = 1; ; attempt++) {
          const held = holdSend(reply)
          let result: unknown
          let replay: CapturedResponse | undefined
          try {
            result = await inAuditedTransaction(app.db, context, async (trx) => {
              request.db = trx
              try {
                const onSuccess: Array<(response: CapturedResponse) => Promise<void>> = []
                for (const step of steps) {
                  const outcome = await step(request, trx)
                  if (!outcome) continue
                  if ('replay' in outcome) {
                    replay = outcome.replay
                    return undefined
                  }
                  onSuccess.push(outcome.onSuccess)
                }
                const value = await handler.call(this, request, reply)
                if (onSuccess.length === 0) return value
                const response = capture(reply, held.called ? held.payload : value)
                if (!response) return value
                if (response.body !== null) {
                  held.called = true
                  held.payload = response.body
                }
                for (const fn of onSuccess) await fn(response)
                return value
              } finally {
                request.db = app.db
              }
            })
          } catch (err) {
            if (attempt >= MAX_ATTEMPTS || !isTransient(err)) throw err
            // The transaction rolled back as a whole: run the steps and the handler again on a clean reply.
            request.log.info({ code: (err as { code?: string }).code, attempt }, 'transaction conflicted; retrying')
            initial.restore()
            await sleep(RETRY_BASE_MS * 2 ** (attempt - 1) * (0.5 + Math.random()))
            continue
          } finally {
            held.release()
          }
          if (replay) {
            reply.code(replay.status).headers(replay.headers)
            return reply.send(replay.body ?? undefined)
          }
          return held.called ? reply.send(held.payload) : result
        }
      }
    })
  },
  { name: 'audit', dependencies: ['db'] },
)

/**
 * The response a payload becomes, serialized as Fastify would (the route's response schema for
 * the reply's status code). Undefined for payloads that are not JSON (streams, buffers).
 */
function capture(reply: FastifyReply, payload: unknown): CapturedResponse | undefined {
  let body: string | null
  if (payload === undefined || payload === null || payload === reply) body = null
  else if (typeof payload === 'string') body = payload
  else if (typeof payload !== 'object' || Buffer.isBuffer(payload) || typeof (payload as { pipe?: unknown }).pipe === 'function') return undefined
  else {
    const serialized: unknown = reply.serialize(payload)
    if (typeof serialized !== 'string') return undefined
    body = serialized
    if (!reply.hasHeader('content-type')) reply.type('application/json; charset=utf-8')
  }
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return { status: reply.statusCode, headers, body }
}

/**
 * A handler's reply.send() is held until the transaction has committed: otherwise the client
 * could be told 201/204 about a change that a failing COMMIT then rolls back. While held,
 * `return reply` must not wait (reply is a thenable that settles when the response ends).
 * The request deadline's answer (plugins/deadline.ts) is the one send that is not held.
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
    // The request's deadline answers while the transaction still runs: that answer is not held
    // (the deadline has closed the transaction's connection, so it can no longer commit).
    if (reply.request.connections?.expired) {
      held.release()
      return reply.send(payload)
    }
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
