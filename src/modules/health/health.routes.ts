import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { sql } from 'kysely'
import { pendingMigrations } from '../../db/migrate.js'
import { unavailable } from '../../lib/problem.js'
import { problemResponses } from '../../lib/schema.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Set when shutdown begins (SIGTERM): /readyz answers 503 from then on, while requests are still served. */
    draining: boolean
  }
}

export interface HealthRoutesOptions {
  /** How long the readiness probe waits for the database before answering 503. */
  readinessTimeoutMs: number
}

const Health = Type.Object({ status: Type.String({ example: 'ok' }) }, { $id: 'Health', description: 'Liveness or readiness', example: { status: 'ok' } })

/**
 * Ops endpoints, outside /v1: liveness and readiness (database reachable, migrations applied,
 * not shutting down). The readiness probe is bounded by its own short deadline: a database that
 * does not answer makes it 503, never a hung probe.
 */
const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, opts) => {
  app.addSchema(Health)
  let migrated = false

  app.get('/healthz', {
    config: { scope: 'public' },
    schema: { operationId: 'getHealth', tags: ['ops'], summary: 'The process is up', security: [], response: { 200: Health } },
  }, async () => ({ status: 'ok' }))

  app.get('/readyz', {
    config: { scope: 'public', deadline: opts.readinessTimeoutMs },
    schema: {
      operationId: 'getReadiness', tags: ['ops'], summary: 'The database is reachable and migrated', security: [],
      response: { 200: Health, ...problemResponses(503) },
    },
  }, async () => {
    // Load balancers stop sending new requests before the listener closes.
    if (app.draining) throw unavailable('shutting-down', 'The instance is shutting down.')
    try {
      await sql`select 1`.execute(app.db)
      if (!migrated) migrated = (await pendingMigrations(app.db)).length === 0
    } catch {
      throw unavailable('database-unavailable', 'The database is unreachable.')
    }
    if (!migrated) throw unavailable('migrations-pending', 'Database migrations are pending.')
    return { status: 'ok' }
  })
}

export default healthRoutes
