import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { sql } from 'kysely'
import { pendingMigrations } from '../../db/migrate.js'
import { serviceUnavailable } from '../../lib/problem.js'
import { problemResponses } from '../../lib/schema.js'

const Health = Type.Object({ status: Type.String({ example: 'ok' }) }, { $id: 'Health', description: 'Liveness or readiness', example: { status: 'ok' } })

/** Ops endpoints, outside /v1: liveness and readiness (database reachable, migrations applied). */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(Health)
  let migrated = false

  app.get('/healthz', {
    config: { scope: 'public' },
    schema: { operationId: 'getHealth', tags: ['ops'], summary: 'The process is up', security: [], response: { 200: Health } },
  }, async () => ({ status: 'ok' }))

  app.get('/readyz', {
    config: { scope: 'public' },
    schema: {
      operationId: 'getReadiness', tags: ['ops'], summary: 'The database is reachable and migrated', security: [],
      response: { 200: Health, ...problemResponses(503) },
    },
  }, async () => {
    try {
      await sql`select 1`.execute(app.db)
      if (!migrated) migrated = (await pendingMigrations(app.db)).length === 0
    } catch {
      throw serviceUnavailable('The database is unreachable.')
    }
    if (!migrated) throw serviceUnavailable('Database migrations are pending.')
    return { status: 'ok' }
  })
}

export default healthRoutes
