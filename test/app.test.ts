import t from 'tap'
import { Writable } from 'node:stream'
import { buildApp, loggerOptions } from '../src/app.js'
import { createTestDatabase } from './helpers/db.js'
import { TEST_APP_OPTIONS, TEST_AUTH, token } from './helpers/app.js'
import { conform } from './helpers/conformance.js'

const database = await createTestDatabase()
const lines: string[] = []
const stream = new Writable({
  write(chunk, _enc, done) {
    lines.push(String(chunk))
    done()
  },
})
const app = await conform(buildApp({ ...TEST_APP_OPTIONS, db: database.db, ownsDb: false, auth: TEST_AUTH, logger: { ...(loggerOptions('trace') as object), stream } }))
await app.ready()
t.teardown(async () => {
  await app.close()
  await database.drop()
})

t.test('logs carry request ids but no PII, tokens or search terms', async (t) => {
  const bearer = await token('admin pii:read')
  const email = 'secret.person@example.com'
  const phone = '+8613800138000'
  const created = await app.inject({
    method: 'POST', url: '/v1/customers', headers: { authorization: `Bearer ${bearer}` },
    payload: { name: 'Secret Person', birthday: '1980-02-03', contact_points: [{ kind: 'email', value: email }, { kind: 'phone', value: phone }] },
  })
  t.equal(created.statusCode, 201, created.body)
  await app.inject({ method: 'GET', url: `/v1/customers?q=${encodeURIComponent(email)}`, headers: { authorization: `Bearer ${bearer}` } })
  await app.inject({ method: 'POST', url: '/v1/customers', headers: { authorization: `Bearer ${bearer}` }, payload: { name: 'X', contact_points: [{ kind: 'email', value: 'not-an-email' }] } })
  await app.inject({ method: 'GET', url: '/v1/customers', headers: { authorization: 'Bearer not.a-valid.token' } })
  const log = lines.join('')
  t.ok(log.length > 0, 'something was logged')
  t.match(log, created.headers['x-request-id'] as string, 'the request id is logged')
  for (const secret of [email, 'secret.person', phone, '13800138000', '1980-02-03', bearer, bearer.split('.')[2]!, 'not-an-email', 'not.a-valid.token']) {
    t.notOk(log.includes(secret), `the log does not contain ${secret.slice(0, 24)}`)
  }
})
