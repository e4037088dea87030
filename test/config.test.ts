import t from 'tap'
import { ConfigError, corsOrigins, loadConfig, migrateOnStart, trustProxy } from '../src/config.js'

t.test('defaults apply and numbers are converted from text', async (t) => {
  const c = loadConfig({ PORT: '8080', DB_POOL_MAX: '4' })
  t.equal(c.PORT, 8080)
  t.equal(c.DB_POOL_MAX, 4)
  t.equal(c.HOST, '0.0.0.0')
  t.equal(c.DATABASE_URL, undefined, 'no DATABASE_URL: the embedded database is used')
  t.equal(c.LOG_LEVEL, 'info')
})

t.test('an empty variable counts as unset', async (t) => {
  t.equal(loadConfig({ PORT: '' }).PORT, 3000)
})

t.test('a bad value stops with a message naming the variable and the value', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'eighty' }, /PORT: .*\(got "eighty"\)/],
    [{ PORT: '70000' }, /PORT: /],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL: /],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL: /],
    [{ AUTH_ALGORITHMS: 'ES256;none' }, /AUTH_ALGORITHMS: /],
    [{ DB_STATEMENT_TIMEOUT_MS: '5' }, /DB_STATEMENT_TIMEOUT_MS: /],
  ]
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), ConfigError, JSON.stringify(env))
    try {
      loadConfig(env)
    } catch (err) {
      t.match((err as Error).message, message)
      t.match((err as Error).message, /^Invalid configuration:/)
    }
  }
})

t.test('AUTH_JWKS_FILE and AUTH_JWKS_URL are exclusive', async (t) => {
  t.throws(() => loadConfig({ AUTH_JWKS_FILE: '/k.json', AUTH_JWKS_URL: 'https://idp/jwks' }), /set one, not both/)
})

t.test('CORS_ORIGINS is a comma-separated list of origins, empty by default', async (t) => {
  t.same(corsOrigins(loadConfig({})), [], 'no origin is allowed unless configured')
  t.same(corsOrigins(loadConfig({ CORS_ORIGINS: 'https://app.example.com,http://localhost:5173' })), ['https://app.example.com', 'http://localhost:5173'])
  for (const bad of ['*', 'app.example.com', 'https://app.example.com/', 'https://a.example, https://b.example', 'javascript:alert(1)']) {
    t.throws(() => loadConfig({ CORS_ORIGINS: bad }), /CORS_ORIGINS: /, bad)
  }
})

t.test('TRUST_PROXY: false, true, a hop count, or addresses and CIDR ranges', async (t) => {
  t.equal(trustProxy(loadConfig({})), false, 'no proxy is trusted by default')
  t.equal(trustProxy(loadConfig({ TRUST_PROXY: 'true' })), true)
  t.equal(trustProxy(loadConfig({ TRUST_PROXY: '2' })), 2)
  t.same(trustProxy(loadConfig({ TRUST_PROXY: '10.0.0.0/8,127.0.0.1,::1' })), ['10.0.0.0/8', '127.0.0.1', '::1'])
  for (const bad of ['yes', '10.0.0.0/8, 127.0.0.1', 'proxy.example.com']) t.throws(() => loadConfig({ TRUST_PROXY: bad }), /TRUST_PROXY: /, bad)
})

t.test('DB_QUERY_TIMEOUT_MS is longer than the statement timeout, or 0', async (t) => {
  t.equal(loadConfig({}).DB_QUERY_TIMEOUT_MS, 15000)
  t.equal(loadConfig({ DB_QUERY_TIMEOUT_MS: '0' }).DB_QUERY_TIMEOUT_MS, 0)
  t.throws(() => loadConfig({ DB_STATEMENT_TIMEOUT_MS: '20000' }), /DB_QUERY_TIMEOUT_MS: must be longer/)
  t.equal(loadConfig({ DB_STATEMENT_TIMEOUT_MS: '20000', DB_QUERY_TIMEOUT_MS: '25000' }).DB_QUERY_TIMEOUT_MS, 25000)
})

t.test('MIGRATE_ON_START: start migrates in development and test, not in production, unless set', async (t) => {
  t.equal(migrateOnStart(loadConfig({})), true)
  t.equal(migrateOnStart(loadConfig({ NODE_ENV: 'test' })), true)
  t.equal(migrateOnStart(loadConfig({ NODE_ENV: 'production' })), false)
  t.equal(migrateOnStart(loadConfig({ NODE_ENV: 'production', MIGRATE_ON_START: 'true' })), true)
  t.equal(migrateOnStart(loadConfig({ MIGRATE_ON_START: 'false' })), false)
  t.throws(() => loadConfig({ MIGRATE_ON_START: 'sometimes' }), { name: 'ConfigError', message: /MIGRATE_ON_START: .*"sometimes"/ })
})
