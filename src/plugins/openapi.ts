import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The nearest package.json above this file, as Node itself finds it: src/ under tsx, the build's
 * output directory (dist/ or another inside the project) when compiled.
 */
function packageVersion(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json')
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`)
  }
}

/**
 * The OpenAPI contract, generated from the routes' TypeBox schemas. Schemas registered with
 * app.addSchema keep their $id as the component name, so SDKs get `Customer`, not `def-0`.
 */
export default fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'crm-api',
          version: packageVersion(),
          description:
            'Headless CRM: the system of record for customers, their contact points, interactions, orders, feedback and segments. ' +
            'Conventions: cursor pagination, JSON Merge Patch, ETag/If-Match, Idempotency-Key, RFC 9457 errors.',
        },
        servers: [{ url: '/' }],
        tags: [
          { name: 'customers', description: 'Customer profiles and contact points' },
          { name: 'imports', description: 'Bulk imports of customers from CSV or NDJSON' },
          { name: 'interactions', description: 'Calls, emails, messages, meetings, visits and other contacts with customers, with follow-ups' },
          { name: 'feedback', description: 'Surveys (CSAT, NPS), complaints and their resolution workflow, suggestions, reviews and praise' },
          { name: 'segments', description: 'Dynamic (filter) and static (listed) sets of customers, their export and membership history' },
          { name: 'audit', description: 'The audit trail of every mutation' },
          { name: 'analytics', description: 'Customer analytics computed in the database: RFM, lifetime value, lifecycle, acquisition, churn risk, cohorts, satisfaction' },
          { name: 'ops', description: 'Health and readiness' },
          { name: 'problems', description: 'What each error code means and what to do about it: the pages problem `type` URIs resolve to' },
        ],
        components: {
          securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        },
        security: [{ bearerAuth: [] }],
      },
      refResolver: {
        buildLocalReference(json, _baseUri, _fragment, i) {
          return typeof json.$id === 'string' ? json.$id : `Schema${i}`
        },
      },
    })
    await app.register(async (docs) => {
      docs.addHook('onRoute', (route) => {
        route.config = { ...(route.config ?? {}), scope: 'public' }
        route.schema = { ...(route.schema ?? {}), hide: true }
      })
      // The API's own CSP allows nothing (plugins/security.ts); the UI needs its scripts and styles.
      // upgrade-insecure-requests would send the UI's own requests to https on a plain-http dev server.
      await docs.register(swaggerUi, {
        routePrefix: '/docs',
        staticCSP: true,
        transformStaticCSP: (header) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
      })
    })
    app.get('/openapi.json', { config: { scope: 'public' }, schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'openapi' },
)
