import fp from 'fastify-plugin'
import swaggerUi from '@fastify/swagger-ui'
import { uiDocument } from './docs-document.js'

/**
 * Swagger UI at /docs for operators: the contract from @fastify/swagger (plugins/openapi.ts) as
 * `uiDocument` adapts it (no pre-filled examples, only used tags, a note on getting a token),
 * authorization kept across reloads, a filter box, operation ids shown, and crm-api's branding.
 */

const LOGO = `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">
<rect x="1" y="5" width="30" height="30" rx="7" fill="#0f766e"/>
<circle cx="16" cy="16" r="5" fill="#fff"/><path d="M7 30c1.5-6 5-8.5 9-8.5s7.5 2.5 9 8.5z" fill="#fff"/>
<text x="38" y="27" font-family="Helvetica,Arial,sans-serif" font-size="19" font-weight="700" fill="#fff">crm-api</text>
</svg>`

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#0f766e"/><circle cx="16" cy="12" r="5" fill="#fff"/>
<path d="M6 27c1.5-6 5-8.5 10-8.5s8.5 2.5 10 8.5z" fill="#fff"/></svg>`

const CSS = `
.swagger-ui .topbar { background-color: #134e4a; padding: 6px 0; }
.swagger-ui .topbar .download-url-wrapper { display: none; }
.swagger-ui .info .title small.version-stamp { background-color: #0f766e; }
.swagger-ui .btn.authorize { color: #0f766e; border-color: #0f766e; }
.swagger-ui .btn.authorize svg { fill: #0f766e; }
.swagger-ui .opblock-tag { font-size: 20px; }
.swagger-ui .filter-container .operation-filter-input { border: 2px solid #0f766e; }
`

export default fp(
  async (app) => {
    // One adapted copy per contract: app.swagger() returns the same object once the app is ready.
    const cache = new WeakMap<object, Record<string, unknown>>()
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
        transformSpecificationClone: false,
        transformSpecification: (spec) => {
          let ui = cache.get(spec)
          if (!ui) cache.set(spec, (ui = uiDocument(structuredClone(spec) as Record<string, unknown>)))
          return ui
        },
        uiConfig: {
          persistAuthorization: true,
          filter: true,
          displayOperationId: true,
          displayRequestDuration: true,
          docExpansion: 'list',
          defaultModelsExpandDepth: 0,
          tryItOutEnabled: false,
        },
        logo: { type: 'image/svg+xml', content: Buffer.from(LOGO), href: '/docs', target: '_self' },
        theme: {
          title: 'crm-api · API docs',
          css: [{ filename: 'crm-api.css', content: CSS }],
          favicon: [{ filename: 'favicon.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: Buffer.from(FAVICON) }],
        },
      })
    })
  },
  { name: 'docs', dependencies: ['openapi'] },
)
