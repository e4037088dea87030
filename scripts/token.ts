/**
 * `npm run token -- --scope "customers:read pii:read" [--sub someone] [--ttl 1h]`
 * Prints an access token signed with the local development key (DATA_DIR/dev-keys, created by the
 * first `npm start` on the embedded database). Issuer and audience come from the configuration.
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../src/config.js'
import { DevKeyMissingError, TTL_PATTERN, loadDevKey, mintDevToken } from '../src/lib/dev-keys.js'
import { SCOPES } from '../src/plugins/auth.js'

const usage = 'usage: npm run token -- --scope "<scope> [<scope> ...]" [--sub <subject>] [--ttl <n>s|m|h|d]'

function fail(message: string): never {
  process.stderr.write(`${message}\n`)
  process.exit(1)
}

let args
try {
  args = parseArgs({
    options: {
      scope: { type: 'string' },
      sub: { type: 'string', default: 'dev:user' },
      ttl: { type: 'string', default: '1h' },
    },
  }).values
} catch (err) {
  fail(`${(err as Error).message}\n${usage}`)
}
if (!args.scope?.trim()) fail(`--scope is required\n${usage}`)
const scopes = args.scope.split(' ').filter(Boolean)
const known = new Set<string>([...SCOPES, ...SCOPES.filter((s) => s.includes(':')).map((s) => `${s.split(':')[0]}:*`)])
const unknown = scopes.filter((s) => !known.has(s))
if (unknown.length > 0) fail(`unknown scope ${unknown.map((s) => `"${s}"`).join(', ')}; known scopes: ${SCOPES.join(' ')} (or <domain>:*)`)
if (!TTL_PATTERN.test(args.ttl)) fail(`--ttl must be a number followed by s, m, h or d (got "${args.ttl}")\n${usage}`)

try {
  const config = loadConfig()
  const key = await loadDevKey(config.DATA_DIR)
  const token = await mintDevToken(key, { scope: scopes.join(' '), sub: args.sub, ttl: args.ttl, issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE })
  process.stdout.write(`${token}\n`)
} catch (err) {
  if (err instanceof ConfigError || err instanceof DevKeyMissingError) fail(err.message)
  throw err
}
