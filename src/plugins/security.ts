import fp from 'fastify-plugin'
import helmet from 'helmet'
import cors from '@fastify/cors'

export interface SecurityOptions {
  /** Browser origins allowed to call the API (exact matches, e.g. https://app.example.com); empty: none. */
  corsOrigins: string[]
}

/** Request headers a browser client may send, and response headers its scripts may read. */
export const CORS_ALLOWED_HEADERS = ['authorization', 'content-type', 'if-match', 'if-none-match', 'idempotency-key', 'x-request-id', 'x-correlation-id', 'x-consistency-token']
export const CORS_EXPOSED_HEADERS = [
  'etag', 'location', 'x-request-id', 'x-correlation-id', 'x-consistency-token', 'idempotent-replayed', 'retry-after', 'www-authenticate', 'x-pii-masked',
  'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit-policy',
]

/** Helmet with the API's settings (see below). */
function securityMiddleware() {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    frameguard: { action: 'deny' },
    // Bearer tokens, no cookies: nothing here for a cross-origin page to embed.
    crossOriginResourcePolicy: { policy: 'same-origin' },
    referrerPolicy: { policy: 'no-referrer' },
  })
}

let staticHeaders: Record<string, string> | undefined
/**
 * Helmet's headers as name → value, for answers written straight to the socket (a request the
 * HTTP parser refused never reaches the hooks). They do not depend on the request.
 */
export function securityHeaders(): Record<string, string> {
  if (staticHeaders) return staticHeaders
  const headers: Record<string, string> = {}
  const res = {
    setHeader: (name: string, value: string | number | string[]) => void (headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)),
    removeHeader: (name: string) => void delete headers[name.toLowerCase()],
  }
  securityMiddleware()({} as never, res as never, () => {})
  staticHeaders = headers
  return headers
}

/**
 * HTTP-level hardening for browser callers. Helmet's headers on every response, with a CSP that
 * allows nothing (the API answers JSON, never a page; Swagger UI at /docs sets its own, see
 * plugins/openapi.ts) and no framing. CORS only for the configured origins: with none, no
 * response carries Access-Control-Allow-Origin and a preflight is refused (405). Registered before auth,
 * so a preflight (which carries no token) is answered before authentication, and 401s stay
 * readable by allowed origins.
 */
export default fp<SecurityOptions>(
  async (app, opts) => {
    // Helmet's middleware, built once. (@fastify/helmet builds it again on every request: parsing
    // the CSP directives and option set each time cost a few percent of a keyed read's CPU.) It
    // sets the headers on the raw response, so a route's own (Swagger UI's CSP) still wins.
    const helmetHeaders = securityMiddleware()
    app.addHook('onRequest', (request, reply, done) => {
      helmetHeaders(request.raw, reply.raw, (err) => done(err as Error | undefined))
    })

    // No origin configured: no CORS at all (no Access-Control-* header, OPTIONS is a 405 like any
    // other unsupported method).
    if (opts.corsOrigins.length === 0) return
    // @fastify/cors adds an OPTIONS catch-all route for preflights; it needs no token.
    app.addHook('onRoute', (route) => {
      if (route.method === 'OPTIONS' && (route.url === '*' || route.url === '/*') && !route.config?.scope) {
        route.config = { ...(route.config ?? {}), scope: 'public' }
      }
    })
    await app.register(cors, {
      origin: opts.corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: CORS_ALLOWED_HEADERS,
      exposedHeaders: CORS_EXPOSED_HEADERS,
      credentials: false,
      maxAge: 600,
      // A bare OPTIONS (no Origin or Access-Control-Request-Method) is answered like a preflight
      // instead of with a text/plain 400: every error this API gives is problem+json.
      strictPreflight: false,
    })
  },
  { name: 'security' },
)
