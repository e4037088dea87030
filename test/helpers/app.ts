import t from 'tap'
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose'
import { sql } from 'kysely'
import type { FastifyPluginAsync } from 'fastify'
import { buildApp, type App, type AppOptions } from '../../src/app.js'
import type { Db } from '../../src/db/database.js'
import type { AuthOptions } from '../../src/plugins/auth.js'
import { conformance } from './conformance.js'
import { createTestDatabase, type TestDatabase } from './db.js'

export const ISSUER = 'https://issuer.test'
export const AUDIENCE = 'crm-api-test'

const { publicKey, privateKey } = await generateKeyPair('ES256')
/** The public half of the key that signs test tokens, as the test app trusts it. */
export const TEST_PUBLIC_JWK: JWK = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' }

export const TEST_AUTH: AuthOptions = {
  issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'], clockToleranceSeconds: 5, jwks: { keys: [TEST_PUBLIC_JWK] },
}

export interface TokenOptions {
  /** null leaves the claim out. */
  sub?: string | null
  /** A jose duration ("10m") or an absolute time in epoch seconds; null leaves the claim out. */
  expiresIn?: string | number | null
  /** The key id in the header (default: the trusted test key's). */
  kid?: string
  issuer?: string
  audience?: string
  claims?: Record<string, unknown>
}

/** Mints a token the test app accepts (unless the options say otherwise). */
export async function token(scope: string, opts: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ scope, ...(opts.claims ?? {}) }).setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? 'test-key' })
  if (opts.sub !== null) jwt.setSubject(opts.sub ?? 'user:test')
  if (opts.expiresIn !== null) jwt.setExpirationTime(opts.expiresIn ?? '10m')
  return jwt.setIssuer(opts.issuer ?? ISSUER).setAudience(opts.audience ?? AUDIENCE).setIssuedAt().sign(privateKey)
}

/** Every scope and grant: admin does not imply personal data or purchase figures (API.md § Security). */
export const ALL_SCOPES = 'admin pii:read financial:read'

export interface TestContext extends TestDatabase {
  app: App
  /** Authorization header value for the given scopes (default: ALL_SCOPES). */
  auth(scope?: string, opts?: TokenOptions): Promise<{ authorization: string }>
  count(table: string): Promise<number>
}

/** A plugin of test-only routes or hooks (wrap it with fastify-plugin for hooks on every route). */
export type TestPlugin = FastifyPluginAsync

export interface SetupOptions {
  /** Test-only plugins (routes, hooks) registered after the app's own, before app.ready(). */
  plugins?: TestPlugin[]
  /** App options over the test defaults (TEST_APP_OPTIONS): limits, for instance. */
  app?: Partial<Omit<AppOptions, 'db' | 'auth'>>
}

/**
 * What tests run with unless they say otherwise: no rate limit worth the name (suites fire
 * thousands of requests with one token), no load shedding (a busy CI machine must not answer
 * 503), no background purge of idempotency keys.
 */
export const TEST_APP_OPTIONS = {
  rateLimit: { max: 1_000_000_000, windowMs: 60_000 },
  pressure: { maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, retryAfterSeconds: 10 },
  idempotency: { ttlSeconds: 86_400, purgeIntervalMs: 0 },
  // Any problem outside the registry (src/lib/problem-types.ts) answers 500, so the test meeting it fails.
  strictProblems: true,
} satisfies Partial<AppOptions>

/**
 * The app as the tests run it, with the test key set and the given plugins; not yet ready. Every
 * response it sends is checked against its OpenAPI contract (helpers/conformance.ts): a mismatch
 * fails the test.
 */
export async function buildTestApp(db: Db, opts: SetupOptions = {}): Promise<App> {
  const app = await buildApp({ ...TEST_APP_OPTIONS, ...opts.app, db, ownsDb: false, auth: TEST_AUTH })
  // Test-only routes are not the API: they stay out of its contract (and so out of the conformance
  // checks, which still require their errors to be problems).
  app.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, hide: true }
  })
  for (const plugin of opts.plugins ?? []) await app.register(plugin)
  await app.register(conformance)
  return app
}

/**
 * One migrated database and one app for the current test file, torn down when it ends.
 * Call at the top level of a test file.
 */
export async function setup(opts: SetupOptions = {}): Promise<TestContext> {
  const database = await createTestDatabase()
  const app = await buildTestApp(database.db, opts)
  await app.ready()
  t.teardown(async () => {
    await app.close()
    await database.drop()
  })
  return {
    ...database,
    app,
    async auth(scope = ALL_SCOPES, opts = {}) {
      return { authorization: `Bearer ${await token(scope, opts)}` }
    },
    async count(table: string) {
      const r = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(database.db)
      return r.rows[0]!.n
    },
  }
}
