import t from 'tap'
import { statSync } from 'node:fs'
import { jwtVerify, createLocalJWKSet } from 'jose'
import { loadConfig } from '../../src/config.js'
import { ensureDevKey, loadDevKey, mintDevToken, resolveAuth, DevKeyMissingError } from '../../src/lib/dev-keys.js'

t.test('the embedded default creates one private key, trusts its public half and mints tokens it accepts', async (t) => {
  const dir = t.testdir({})
  await t.rejects(loadDevKey(dir), DevKeyMissingError, 'no key before the first start')
  const config = loadConfig({ DATA_DIR: dir })
  const { auth, devKey } = await resolveAuth(config)
  t.ok(devKey?.created, 'created on first use')
  t.equal(statSync(devKey!.privateFile).mode & 0o777, 0o600, 'the private key is readable by its owner only')
  t.notOk(JSON.stringify(auth.jwks).includes('"d"'), 'the trusted key set holds no private part')
  const again = await ensureDevKey(dir)
  t.equal(again.kid, devKey!.kid, 'the same key on the next start')
  t.notOk(again.created)
  const jwt = await mintDevToken(again, { scope: 'customers:read', sub: 'dev:me', ttl: '5m', issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE })
  const { payload } = await jwtVerify(jwt, createLocalJWKSet(auth.jwks!), { issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE })
  t.equal(payload.sub, 'dev:me')
  t.equal(payload.scope, 'customers:read')
})

t.test('a production configuration never creates a key', async (t) => {
  const dir = t.testdir({})
  await t.rejects(resolveAuth(loadConfig({ DATA_DIR: dir, DATABASE_URL: 'postgres://db/crm' })), /AUTH_JWKS_FILE, AUTH_JWKS_URL: one is required/)
  await t.rejects(loadDevKey(dir), DevKeyMissingError, 'still no key')
  const file = `${dir}/missing.json`
  await t.rejects(resolveAuth(loadConfig({ DATA_DIR: dir, AUTH_JWKS_FILE: file })), /cannot read a JSON key set/)
})
