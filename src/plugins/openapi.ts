import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { TAGS } from './openapi-tags.js'

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
            'Conventions: cursor pagination, JSON Merge Patch, ETag/If-Match, Idempotency-Key, RFC 9457 errors. ' +
            'With a read replica configured, every successful write answers with an X-Consistency-Token header; sending it back on a read ' +
            '(the X-Consistency-Token parameter of the list, search, analytics, segment and audit reads) reads that write.',
        },
        servers: [{ url: '/' }],
        tags: [...TAGS],
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
    app.get('/openapi.json', { config: { scope: 'public' }, schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'openapi' },
)
