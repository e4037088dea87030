import { readFile, mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JSONWebKeySet, type JWK } from 'jose'
import { ConfigError, type Config } from '../config.js'
import type { AuthOptions } from '../plugins/auth.js'

/**
 * The local signing key of a development install. With no JWKS configured and the embedded
 * database, `npm start` creates one ES256 key pair under DATA_DIR/dev-keys and trusts its public
 * half; `npm run token` signs with the private half. A production config (DATABASE_URL set) must
 * name its identity provider's keys instead: no key is ever minted there.
 */
export const DEV_KEY_ALG = 'ES256'

export interface DevKey {
  kid: string
  privateKey: CryptoKey
  /** The public half, as the key set the API verifies tokens with. */
  jwks: JSONWebKeySet
  privateFile: string
  jwksFile: string
  /** True when this call created the key. */
  created: boolean
}

export function devKeyFiles(dataDir: string) {
  const dir = path.resolve(dataDir, 'dev-keys')
  return { dir, privateFile: path.join(dir, 'signing-key.private.jwk.json'), jwksFile: path.join(dir, 'jwks.json') }
}

export class DevKeyMissingError extends Error {
  override name = 'DevKeyMissingError'
}

const publicJwks = (jwk: JWK): JSONWebKeySet => {
  const { d: _private, ...pub } = jwk
  return { keys: [pub] }
}

/** Reads the existing development key; DevKeyMissingError when `npm start` has not created one yet. */
export async function loadDevKey(dataDir: string): Promise<DevKey> {
  const files = devKeyFiles(dataDir)
  let text: string
  try {
    text = await readFile(files.privateFile, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DevKeyMissingError(`No development signing key in ${files.dir}: run "npm start" once (with DATABASE_URL and AUTH_JWKS_* unset) to create it.`)
    }
    throw err
  }
  const jwk = JSON.parse(text) as JWK
  const privateKey = (await importJWK(jwk, DEV_KEY_ALG)) as CryptoKey
  return { kid: jwk.kid!, privateKey, jwks: publicJwks(jwk), ...files, created: false }
}

/** Returns the development key, creating it (private JWK mode 0600, public JWKS) on first use. */
export async function ensureDevKey(dataDir: string): Promise<DevKey> {
  const files = devKeyFiles(dataDir)
  try {
    const key = await loadDevKey(dataDir)
    await writeFile(files.jwksFile, json(key.jwks), { flag: 'wx' }).catch(ignoreExists)
    return key
  } catch (err) {
    if (!(err instanceof DevKeyMissingError)) throw err
  }
  const { privateKey } = await generateKeyPair(DEV_KEY_ALG, { extractable: true })
  const raw = await exportJWK(privateKey)
  const jwk: JWK = { ...raw, kid: await calculateJwkThumbprint(raw), alg: DEV_KEY_ALG, use: 'sig' }
  // DATA_DIR itself keeps the default mode: as root, the embedded cluster runs as 'postgres' and
  // must reach DATA_DIR/pg. Only the key directory is private.
  await mkdir(path.dirname(files.dir), { recursive: true })
  await mkdir(files.dir, { recursive: true, mode: 0o700 })
  try {
    // 'wx': two processes starting at once keep the first key rather than overwrite it.
    await writeFile(files.privateFile, json(jwk), { mode: 0o600, flag: 'wx' })
  } catch (err) {
    ignoreExists(err)
    return ensureDevKey(dataDir)
  }
  await writeFile(files.jwksFile, json(publicJwks(jwk)))
  return { kid: jwk.kid!, privateKey, jwks: publicJwks(jwk), ...files, created: true }
}

export interface DevTokenOptions {
  scope: string
  sub: string
  /** A jose duration: "90s", "30m", "12h", "7d". */
  ttl: string
  issuer: string
  audience: string
}

export const TTL_PATTERN = /^\d+[smhd]$/

export async function mintDevToken(key: DevKey, opts: DevTokenOptions): Promise<string> {
  return new SignJWT({ scope: opts.scope })
    .setProtectedHeader({ alg: DEV_KEY_ALG, kid: key.kid, typ: 'JWT' })
    .setSubject(opts.sub)
    .setIssuer(opts.issuer)
    .setAudience(opts.audience)
    .setIssuedAt()
    .setExpirationTime(opts.ttl)
    .sign(key.privateKey)
}

/**
 * Where the API's token keys come from: AUTH_JWKS_FILE or AUTH_JWKS_URL when set; else, for the
 * embedded development database only, the local development key (created on first start).
 */
export async function resolveAuth(config: Config): Promise<{ auth: AuthOptions; devKey?: DevKey }> {
  const common = {
    issuer: config.AUTH_ISSUER,
    audience: config.AUTH_AUDIENCE,
    algorithms: config.AUTH_ALGORITHMS.split(','),
    clockToleranceSeconds: config.AUTH_CLOCK_TOLERANCE_S,
  }
  if (config.AUTH_JWKS_FILE) {
    await checkJwksFile(config.AUTH_JWKS_FILE)
    return { auth: { ...common, jwksFile: config.AUTH_JWKS_FILE } }
  }
  if (config.AUTH_JWKS_URL) return { auth: { ...common, jwksUrl: config.AUTH_JWKS_URL } }
  if (config.DATABASE_URL) {
    throw new ConfigError(
      'Invalid configuration:\n  AUTH_JWKS_FILE, AUTH_JWKS_URL: one is required when DATABASE_URL is set ' +
        '(a local development key is only created for the embedded database)',
    )
  }
  if (!common.algorithms.includes(DEV_KEY_ALG)) {
    throw new ConfigError(`Invalid configuration:\n  AUTH_ALGORITHMS: must include ${DEV_KEY_ALG} to accept the local development key (got "${config.AUTH_ALGORITHMS}")`)
  }
  const devKey = await ensureDevKey(config.DATA_DIR)
  return { auth: { ...common, jwks: devKey.jwks }, devKey }
}

async function checkJwksFile(file: string): Promise<void> {
  let parsed: unknown
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  AUTH_JWKS_FILE: cannot read a JSON key set from ${file} (${(err as Error).message})`)
  }
  if (!Array.isArray((parsed as { keys?: unknown } | null)?.keys)) {
    throw new ConfigError(`Invalid configuration:\n  AUTH_JWKS_FILE: ${file} is not a JWKS (expected {"keys": [...]})`)
  }
}

const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n'

function ignoreExists(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
}
