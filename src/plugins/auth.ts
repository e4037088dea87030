import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import { HttpProblem, unavailable } from '../lib/problem.js'
import { SEES_ALL, type AccessContext } from '../lib/access.js'

/** Every scope a token can carry (API.md § Security). `domain:*` grants the domain's read and write. */
export const SCOPES = [
  'customers:read', 'customers:write', 'pii:read',
  'orders:read', 'orders:write',
  'interactions:read', 'interactions:write',
  'feedback:read', 'feedback:write',
  'segments:read', 'segments:write',
  'analytics:read', 'audit:read', 'events:read',
  'webhooks:read', 'webhooks:write', 'principals:read', 'principals:write', 'financial:read', 'admin',
] as const

/**
 * Grants of their own (API.md § Security): personal data and purchase figures. `admin` does not
 * imply them; a principal holds them by its scope or its role's field classes.
 */
export const FIELD_GRANTS: ReadonlySet<string> = new Set(['pii:read', 'financial:read'])
export type Scope = (typeof SCOPES)[number]

/** A route's declared permission: a scope, or 'public' for ops and docs routes. */
export type RouteScope = Scope | 'public'

declare module 'fastify' {
  interface FastifyContextConfig {
    scope?: RouteScope
  }
  interface FastifyRequest {
    auth: Principal | null
  }
  interface FastifyInstance {
    /** Counts failed authentications (plugins/limits.ts); absent, a failure is simply a 401. */
    authFailures?: AuthFailures
  }
}

export interface AuthFailures {
  /** Counts one failed authentication; answers the problem to send: the 401, or a 429 past the limit. */
  count(request: FastifyRequest, problem: HttpProblem): Promise<HttpProblem>
}

export interface Principal {
  sub: string
  scopes: ReadonlySet<string>
  /** The user the token's subject maps to; null for a service principal. */
  userId?: string | null
  /** What it may see (row-level security); absent: everything (a service principal). */
  access?: AccessContext
}

/**
 * Maps a verified token to its principal: a subject known as a user takes its roles' scopes and
 * visibility; any other is a service principal (its token's scopes, visibility all). Answers
 * undefined for a service principal.
 */
export type PrincipalResolver = (payload: JWTPayload) => Promise<Omit<Principal, 'sub'> | undefined>

export interface AuthOptions {
  issuer: string
  audience: string
  algorithms: string[]
  clockToleranceSeconds: number
  /** Exactly one of these: an in-memory key set (tests, dev), a JWKS file, or a JWKS URL. */
  jwks?: JSONWebKeySet
  jwksFile?: string
  jwksUrl?: string
  /** Maps subjects to users (src/modules/principals); absent, every token is a service principal. */
  resolvePrincipal?: PrincipalResolver
}

export function hasScope(principal: Principal | null, scope: RouteScope): boolean {
  if (scope === 'public') return true
  if (!principal) return false
  if (principal.scopes.has(scope)) return true
  if (principal.scopes.has('admin') && !FIELD_GRANTS.has(scope)) return true
  const domain = scope.split(':')[0]
  return principal.scopes.has(`${domain}:*`)
}

export const canReadPii = (principal: Principal | null) => hasScope(principal, 'pii:read')

/**
 * Purchase figures (order counts, spend, the order conditions of the filter language): the
 * financial grant, or orders:read (whoever reads the orders may read what is summed from them).
 */
export const canReadFinancial = (principal: Principal | null) => hasScope(principal, 'financial:read') || hasScope(principal, 'orders:read')

/** Refuses purchase figures to a principal without the financial grant (403). */
export function requireFinancial(principal: Principal | null, what: string): void {
  if (!canReadFinancial(principal)) throw new HttpProblem('insufficient-scope', { detail: `${what} needs the scope "financial:read" (or "orders:read").` })
}

function keySet(opts: AuthOptions): JWTVerifyGetKey {
  if (opts.jwks) return createLocalJWKSet(opts.jwks)
  if (opts.jwksFile) return createLocalJWKSet(JSON.parse(readFileSync(opts.jwksFile, 'utf8')) as JSONWebKeySet)
  if (opts.jwksUrl) return createRemoteJWKSet(new URL(opts.jwksUrl), { cooldownDuration: 30_000, timeoutDuration: 5_000 })
  throw new Error('auth: configure AUTH_JWKS_FILE or AUTH_JWKS_URL')
}

/** Longer Authorization headers are refused unread (real tokens here are well under 2 KiB). */
export const MAX_AUTHORIZATION_LENGTH = 8192
/**
 * Verified tokens, so a client sending the same token on every request pays the signature check
 * (an ECDSA/RSA verify: the most expensive step of a keyed read) once per minute, not per request.
 * An entry lives until the token's exp or for VERIFIED_TTL_MS, whichever is sooner; a key removed
 * from the key set therefore stops being honoured within that minute. Bounded: the oldest entry
 * is evicted first. Only successful verifications are kept, keyed by the whole token string.
 */
const VERIFIED_TTL_MS = 60_000
const VERIFIED_MAX = 10_000

export class VerifiedTokens {
  private readonly entries = new Map<string, { payload: JWTPayload; until: number }>()

  get(token: string, now = Date.now()): JWTPayload | undefined {
    const hit = this.entries.get(token)
    if (!hit) return undefined
    if (hit.until > now) return hit.payload
    this.entries.delete(token)
    return undefined
  }

  set(token: string, payload: JWTPayload, now = Date.now()): void {
    const until = Math.min(typeof payload.exp === 'number' ? payload.exp * 1000 : 0, now + VERIFIED_TTL_MS)
    if (until <= now) return
    if (this.entries.size >= VERIFIED_MAX) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(token, { payload, until })
  }
}

const unauthorized = (code: 'token-missing' | 'token-invalid' | 'token-expired', detail: string, error?: string) =>
  new HttpProblem(code, {
    detail,
    headers: { 'www-authenticate': error ? `Bearer error="${error}"` : 'Bearer' },
  })

/**
 * Bearer JWT authentication with jose, and scope checks declared per route in `config.scope`.
 * A route registered without a scope makes the app fail to start, so none can forget one.
 * Verification runs in onRequest, before the body is read.
 */
export default fp<AuthOptions>(
  async (app, opts) => {
    const getKey = keySet(opts)
    const verified = new VerifiedTokens()
    const verifyOptions = {
      issuer: opts.issuer,
      audience: opts.audience,
      algorithms: opts.algorithms,
      clockTolerance: opts.clockToleranceSeconds,
      requiredClaims: ['sub', 'exp'],
    }

    app.decorateRequest('auth', null)

    // Checked once all plugins have run their own onRoute hooks (the docs plugin marks its
    // routes public in a child context, after this hook has seen them).
    const routes: Array<{ method: unknown; url: string; config?: { scope?: RouteScope } }> = []
    app.addHook('onRoute', (route) => {
      routes.push(route)
    })
    app.addHook('onReady', async () => {
      const missing = routes.filter((r) => !r.config?.scope).map((r) => `${String(r.method)} ${r.url}`)
      if (missing.length > 0) throw new Error(`routes without config.scope: ${missing.join(', ')}`)
    })

    const authenticate = async (request: FastifyRequest, scope: Scope): Promise<void> => {
      const header = request.headers.authorization
      if (!header) throw unauthorized('token-missing', 'Send an access token: Authorization: Bearer <token>.')
      // A token is a few hundred bytes; a huge one is refused before any parsing or crypto.
      if (header.length > MAX_AUTHORIZATION_LENGTH) throw unauthorized('token-invalid', 'The token is not valid.', 'invalid_token')
      // The scheme name is case-insensitive (RFC 9110 section 11.1).
      const match = /^Bearer ([A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]*)$/i.exec(header)
      if (!match) throw unauthorized('token-invalid', 'The Authorization header must be "Bearer <JWT>".', 'invalid_request')
      const jwt = match[1]!
      let payload = verified.get(jwt)
      if (!payload) {
        try {
          ;({ payload } = await jwtVerify(jwt, getKey, verifyOptions))
          verified.set(jwt, payload)
        } catch (err) {
          if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError)) {
            // The key set could not be fetched: our fault, not the caller's.
            request.log.warn({ err }, 'token verification could not complete')
            throw unavailable('token-keys-unavailable', 'Token keys are unavailable. Try again shortly.')
          }
          throw unauthorized(err instanceof joseErrors.JWTExpired ? 'token-expired' : 'token-invalid', describe(err), 'invalid_token')
        }
      }
      if (typeof payload.sub !== 'string' || payload.sub.length === 0 || payload.sub.length > 200) {
        throw unauthorized('token-invalid', 'The token has no valid subject.', 'invalid_token')
      }
      const raw = payload.scope ?? (payload as { scp?: unknown }).scp
      const scopes = new Set(Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? raw.split(' ').filter(Boolean) : [])
      const resolved = opts.resolvePrincipal ? await opts.resolvePrincipal(payload) : undefined
      request.auth = resolved ? { sub: payload.sub, ...resolved } : { sub: payload.sub, scopes, userId: null, access: SEES_ALL }
      if (!hasScope(request.auth, scope)) {
        throw new HttpProblem('insufficient-scope', { detail: `This operation needs the scope "${scope}".` })
      }
    }

    // Every token is verified (a valid one is never refused for others' failures); only a
    // failure is counted, and past the limit it answers 429 instead of 401.
    app.addHook('onRequest', async (request) => {
      const scope = request.routeOptions.config?.scope
      if (!scope || scope === 'public') return
      try {
        await authenticate(request, scope)
      } catch (err) {
        if (err instanceof HttpProblem && err.status === 401 && app.authFailures) throw await app.authFailures.count(request, err)
        throw err
      }
    })
  },
  { name: 'auth' },
)

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'The token has expired.'
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `The token's "${err.claim}" claim is not accepted.`
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'The token is signed with an algorithm this API does not accept.'
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'The token signature is not valid.'
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'The token is not signed by a known key.'
  return 'The token is not valid.'
}
