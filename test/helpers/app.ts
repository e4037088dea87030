import t from 'tap'
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose'
import { sql } from 'kysely'
import { buildApp, type App } from '../../src/app.js'
import { createTestDatabase, type TestDatabase } from './db.js'

export const ISSUER = 'https://issuer.test'
export const AUDIENCE = 'crm-api-test'

const { publicKey, privateKey } = await generateKeyPair('ES256')
const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' }

export interface TokenOptions {
  sub?: string
  expiresIn?: string | number
  issuer?: string
  audience?: string
  claims?: Record<string, unknown>
}

/** Mints a token the test app accepts (unless the options say otherwise). */
export async function token(scope: string, opts: TokenOptions = {}): Promise<string> {
  return new SignJWT({ scope, ...(opts.claims ?? {}) })
    .setProtectedHeader({ alg: 'ES256', kid: 'test-key' })
    .setSubject(opts.sub ?? 'user:test')
    .setIssuer(opts.issuer ?? ISSUER)
    .setAudience(opts.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.expiresIn ?? '10m')
    .sign(privateKey)
}

export const ALL_SCOPES = 'admin'

export interface TestContext extends TestDatabase {
  app: App
  /** Authorization header value for the given scopes (default: admin). */
  auth(scope?: string, opts?: TokenOptions): Promise<{ authorization: string }>
  count(table: string): Promise<number>
}

/**
 * One migrated database and one app for the current test file, torn down when it ends.
 * Call at the top level of a test file.
 */
export async function setup(): Promise<TestContext> {
  const database = await createTestDatabase()
  const app = await buildApp({
    db: database.db,
    ownsDb: false,
    auth: { issuer: ISSUER, audience: AUDIENCE, algorithms: ['ES256'], clockToleranceSeconds: 5, jwks: { keys: [publicJwk] } },
  })
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
