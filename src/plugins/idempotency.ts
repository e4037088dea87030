import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { problem, HttpProblem, pointer } from '../lib/problem.js'
import { canReadPii } from './auth.js'
import * as repo from './idempotency.repository.js'

/**
 * # Idempotency-Key (API.md § Writing)
 *
 * Every POST accepts the header `Idempotency-Key` (1 to 255 printable ASCII characters; anything
 * else is a 400 pointing at /headers/idempotency-key). A client that retries a POST after a
 * timeout or a dropped connection sends the same key, and the change happens at most once.
 *
 * - Scope: a key belongs to the caller (the token's `sub`) and the operation (method and route
 *   pattern): the same key from another subject, or on another route, is another key.
 * - Fingerprint: sha256 of the canonical JSON (object keys sorted) of the body, the path
 *   parameters, the query, and whether the caller may read PII (so a replay never shows a caller
 *   more than its own token would).
 * - Same key, same fingerprint: the first response is replayed (status, body byte for byte,
 *   Location, ETag, Content-Type) with `Idempotent-Replayed: true`; nothing runs. (The PII
 *   presenter sets X-PII-Masked and Cache-Control on the replay as on the first answer.)
 * - Same key, another fingerprint: 422.
 * - Same key while the first request is still running: 409 with Retry-After. Each request
 *   takes a transaction-scoped advisory lock on (subject, route, key) before it looks the key
 *   up, so two requests can never both run the handler.
 * - The response is stored in the request's own transaction (plugins/audit.ts), after the
 *   handler and before COMMIT: a request that fails or rolls back stores nothing, so errors
 *   (4xx, 5xx) are never replayed and the retry runs again.
 * - Not on routes with config.transaction 'manual' (POST /v1/imports streams its upload outside
 *   a request transaction): there the header is not in the contract and is ignored.
 * - Keys live 24 hours (IDEMPOTENCY_TTL_S). An expired key is ignored (the request runs again
 *   and takes the key over); expired rows are deleted every IDEMPOTENCY_PURGE_INTERVAL_MS.
 */
export interface IdempotencyOptions {
  ttlSeconds: number
  /** 0 turns the periodic purge off. */
  purgeIntervalMs: number
}

export const IDEMPOTENCY_HEADER = 'idempotency-key'
const KEY = /^[\x20-\x7E]{1,255}$/
/** Seconds a client waits before retrying a key whose first request is still running. */
const IN_FLIGHT_RETRY_AFTER_S = 1
/** Response headers that belong to the stored response (the rest are per request). */
const REPLAYED_HEADERS = ['content-type', 'location', 'etag']
/** Expired keys deleted per statement, and at most this many statements a purge run (500,000 keys). */
const PURGE_BATCH = 5000
const PURGE_MAX_BATCHES = 100

/** The header as it appears in the contract of every POST operation (component IdempotencyKey). */
export const IdempotencyKeyHeader = {
  $id: 'IdempotencyKey',
  type: 'string',
  minLength: 1,
  maxLength: 255,
  pattern: '^[ -~]+$',
  description:
    'Makes the POST safe to retry: the same key with the same request replays the first response (Idempotent-Replayed: true); ' +
    'with another request it answers 422; while the first is still running, 409 with Retry-After. Scoped to the token subject and ' +
    'the operation, kept 24 hours.',
  example: '5f0c7c5e-4b0e-4f43-9f5a-3e6d2b1c9a10',
} as const

export default fp<IdempotencyOptions>(
  async (app, opts) => {
    app.addSchema(IdempotencyKeyHeader)
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      // Routes that manage their own transactions (a bulk import) have no request transaction to
      // store a key in: the header is neither documented nor honoured there.
      if (!methods.includes('POST') || route.config?.transaction === 'manual') return
      const schema = (route.schema ??= {}) as { headers?: { type?: string; properties?: Record<string, unknown> }; response?: Record<string, unknown> }
      schema.headers = {
        ...schema.headers,
        type: 'object',
        properties: { ...schema.headers?.properties, [IDEMPOTENCY_HEADER]: { $ref: 'IdempotencyKey#' } },
      }
      if (schema.response) {
        for (const status of [409, 422]) schema.response[status] ??= { $ref: 'Problem#' }
      }
    })

    // Before schema validation, so a bad key answers with its own pointer.
    app.addHook('preValidation', async (request) => {
      if (request.method !== 'POST') return
      const key = request.headers[IDEMPOTENCY_HEADER]
      if (key !== undefined && !(typeof key === 'string' && KEY.test(key))) {
        throw problem('invalid-idempotency-key', 'Idempotency-Key must be 1 to 255 printable ASCII characters.', [
          { pointer: pointer('headers', IDEMPOTENCY_HEADER), message: 'must be 1 to 255 printable ASCII characters' },
        ])
      }
    })

    app.addTransactionStep(async (request, trx) => {
      const key = request.headers[IDEMPOTENCY_HEADER]
      if (request.method !== 'POST' || typeof key !== 'string') return undefined
      const scope = { actor: request.auth?.sub ?? 'anonymous', route: `POST ${request.routeOptions.url}`, key }
      if (!(await repo.tryLock(trx, scope))) {
        throw new HttpProblem('idempotency-key-in-flight', {
          detail: 'A request with this Idempotency-Key is still being processed. Retry after it has finished.',
          errors: [{ pointer: pointer('headers', IDEMPOTENCY_HEADER), message: 'is in use by a request in flight' }],
          headers: { 'retry-after': String(IN_FLIGHT_RETRY_AFTER_S) },
        })
      }
      const fingerprint = fingerprintOf(request)
      const stored = await repo.findResponse(trx, scope)
      if (stored) {
        if (stored.fingerprint !== fingerprint) {
          throw problem('idempotency-key-reused', 'This Idempotency-Key was used with another request. Use a new key for a new request.', [
            { pointer: pointer('headers', IDEMPOTENCY_HEADER), message: 'was used with another request body' },
          ])
        }
        return { replay: { status: stored.status, headers: { ...stored.headers, 'idempotent-replayed': 'true' }, body: stored.body } }
      }
      return {
        onSuccess: async (response) => {
          if (response.status >= 400) return
          const headers: Record<string, string> = {}
          for (const name of REPLAYED_HEADERS) if (response.headers[name] !== undefined) headers[name] = response.headers[name]
          await repo.saveResponse(trx, scope, { fingerprint, status: response.status, headers, body: response.body }, opts.ttlSeconds)
        },
      }
    })

    app.scheduleJob({
      name: 'idempotency-purge',
      intervalMs: opts.purgeIntervalMs,
      // Batches until one comes back short: one batch a run (every 15 minutes by default) would
      // purge at most 480,000 keys a day, fewer than a client writing 6 requests a second leaves.
      run: async (trx) => {
        let purged = 0
        for (let i = 0; i < PURGE_MAX_BATCHES; i++) {
          const n = await repo.purgeExpired(trx, PURGE_BATCH)
          purged += n
          if (n < PURGE_BATCH) break
        }
        return purged
      },
    })
  },
  { name: 'idempotency', dependencies: ['audit', 'auth', 'scheduler'] },
)

/** sha256 of the canonical request: what "the same request" means for a key. */
export function fingerprintOf(request: FastifyRequest): string {
  const canonical = canonicalJson({
    body: request.body ?? null,
    params: request.params ?? {},
    query: request.query ?? {},
    pii: canReadPii(request.auth),
  })
  return createHash('sha256').update(canonical).digest('hex')
}

/** JSON with object keys sorted at every level, so key order never changes the fingerprint. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
}
