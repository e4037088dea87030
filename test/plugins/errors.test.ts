import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { PROBLEM_TYPES, type ProblemCode } from '../../src/lib/problem-types.js'
import { sql } from 'kysely'
import { setup } from '../helpers/app.js'
import { rawExchange } from '../helpers/raw-http.js'
import { securityHeaders } from '../../src/plugins/security.js'

const Order = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'x~y', 'items'],
  properties: {
    name: { type: 'string' },
    age: { type: 'integer' },
    'a/b': { type: 'integer' },
    'x~y': { type: 'string' },
    items: {
      type: 'array',
      items: { type: 'object', additionalProperties: false, required: ['qty'], properties: { qty: { type: 'integer', minimum: 1 } } },
    },
    nested: { type: 'object', properties: { deep: { type: 'object', properties: { flag: { type: 'boolean' } } } } },
  },
}

/** Test-only routes that provoke each kind of failure. */
async function routes(app: FastifyInstance) {
  const config = { scope: 'customers:write' as const }
  app.post('/test/echo', { config }, async (request) => ({ body: request.body }))
  app.post('/test/validate', { config, schema: { body: Order } }, async () => ({ ok: true }))
  app.get('/test/boom', { config }, async () => {
    throw new Error('password=hunter2 while running SELECT * FROM secret_table')
  })
  app.get('/test/bad-sql', { config }, async (request) => {
    await sql`select secret_column from no_such_table`.execute(request.db)
    return { ok: true }
  })
  app.post('/test/duplicate', { config }, async (request) => {
    await request.db.insertInto('customers').values({ name: 'First', external_ref: 'dup-1' }).execute()
    await request.db.insertInto('customers').values({ name: 'Second', external_ref: 'dup-1' }).execute()
    return { ok: true }
  })
}

const ctx = await setup({ plugins: [routes] })
const auth = await ctx.auth()

function assertProblem(t: Pick<typeof import('tap').t, 'equal' | 'match' | 'notOk'>, res: { statusCode: number; headers: Record<string, unknown>; body: string; json(): unknown }, status: number) {
  t.equal(res.statusCode, status, res.body)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const body = res.json() as Record<string, unknown>
  t.match(body, { type: String, title: String, status, instance: String, request_id: String })
  t.equal(body.type, `/problems/${String(body.code)}`, 'the type is the page of its registered code')
  t.equal(PROBLEM_TYPES[body.code as ProblemCode]?.status, status, 'the code is registered with this status')
  t.equal(body.request_id, res.headers['x-request-id'], 'the body names the request id of the header')
  for (const leak of ['stack', 'at async', 'node_modules', 'FST_', 'SyntaxError']) t.notOk(res.body.includes(leak), `no ${leak}`)
}

const post = (url: string, payload: string | Buffer, contentType = 'application/json', headers: Record<string, string> = {}) =>
  ctx.app.inject({ method: 'POST', url, payload, headers: { ...auth, 'content-type': contentType, ...headers } })

t.test('unknown routes are 404, known paths with another method 405 with Allow', async (t) => {
  const nf = await ctx.app.inject({ url: '/v1/nothing-here?email=someone@example.com', headers: auth })
  assertProblem(t, nf, 404)
  t.match(nf.json(), { code: 'route-not-found', instance: '/v1/nothing-here' })
  t.notOk(nf.body.includes('someone@example.com'), 'the query string is not echoed')
  const na = await ctx.app.inject({ method: 'PUT', url: '/test/echo', headers: auth, payload: {} })
  assertProblem(t, na, 405)
  t.equal(na.json().code, 'method-not-allowed')
  t.equal(na.headers.allow, 'POST')
  const audit = await ctx.app.inject({ method: 'DELETE', url: '/v1/audit-events/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: auth })
  assertProblem(t, audit, 405)
  t.equal(audit.headers.allow, 'GET')
})

t.test('only JSON bodies are accepted: other media types are 415', async (t) => {
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
    const res = await post('/test/echo', 'name=x', type)
    assertProblem(t, res, 415)
    t.match(res.json(), { code: 'unsupported-media-type' }, type)
  }
  const ok = await post('/test/echo', '{"a":1}', 'application/json; charset=utf-8')
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { body: { a: 1 } })
  const patch = await post('/test/echo', '{"a":null}', 'application/merge-patch+json')
  t.equal(patch.statusCode, 200, 'JSON Merge Patch is JSON')
})

t.test('a body over the limit is 413', async (t) => {
  const big = JSON.stringify({ blob: 'x'.repeat(1024 * 1024 + 10) })
  const res = await post('/test/echo', big)
  assertProblem(t, res, 413)
  t.match(res.json(), { code: 'payload-too-large' })
})

t.test('malformed JSON, too deep JSON and prototype keys are 400', async (t) => {
  for (const [label, text] of [
    ['truncated', '{"name": "x"'],
    ['single quotes', "{'name': 'x'}"],
    ['trailing comma', '{"name": "x",}'],
    ['__proto__ key', '{"__proto__": {"admin": true}}'],
    ['nested __proto__ key', '{"a": {"b": {"__proto__": {"admin": true}}}}'],
    ['constructor.prototype', '{"constructor": {"prototype": {"admin": true}}}'],
    ['33 levels of arrays', '['.repeat(33) + ']'.repeat(33)],
    ['33 levels of objects', '{"a":'.repeat(32) + '{}' + '}'.repeat(32)],
  ] as const) {
    const res = await post('/test/echo', text)
    assertProblem(t, res, 400)
    t.match(res.json(), { code: label.startsWith('33 levels') ? 'json-too-deep' : 'malformed-json' }, label)
  }
  const empty = await post('/test/echo', '')
  assertProblem(t, empty, 400)
  t.equal(empty.json().code, 'malformed-json')
  const deep = await post('/test/echo', '['.repeat(33) + ']'.repeat(33))
  t.match(deep.json().detail, /deeper than 32/)

  const at32 = await post('/test/echo', '['.repeat(32) + ']'.repeat(32))
  t.equal(at32.statusCode, 200, '32 levels are accepted')
  t.equal(JSON.stringify(at32.json().body), '['.repeat(32) + ']'.repeat(32))
  const objects32 = await post('/test/echo', '{"a":'.repeat(31) + '{}' + '}'.repeat(31))
  t.equal(objects32.statusCode, 200)
  const brackets = await post('/test/echo', JSON.stringify({ text: '['.repeat(100) + '{'.repeat(100) }))
  t.equal(brackets.statusCode, 200, 'brackets inside strings do not count')
})

t.test('a schema-invalid body lists one error per bad field with RFC 6901 pointers', async (t) => {
  const res = await post('/test/validate', JSON.stringify({
    age: 'forty', 'a/b': 'nope', 'extra/key': 1, items: [{ qty: 1 }, { qty: 'two' }, { qty: 0, note: 'x' }], nested: { deep: { flag: 'yes' } },
  }))
  assertProblem(t, res, 400)
  const body = res.json()
  t.match(body, { code: 'validation-failed', title: 'Validation failed', detail: 'The request body is invalid.' })
  const pointers = (body.errors as Array<{ pointer: string; message: string }>).map((e) => e.pointer).sort()
  t.same(pointers, ['/a~1b', '/age', '/extra~1key', '/items/1/qty', '/items/2/note', '/items/2/qty', '/name', '/nested/deep/flag', '/x~0y'].sort())
  const by = (p: string) => body.errors.find((e: { pointer: string }) => e.pointer === p).message
  t.equal(by('/name'), 'is required')
  t.equal(by('/extra~1key'), 'is not an accepted property (unknown or read-only)')
  t.match(by('/age'), /integer/)

  const types = await post('/test/validate', JSON.stringify({ name: 1, 'x~y': 'ok', items: [], age: '42' }))
  assertProblem(t, types, 400)
  t.same(types.json().errors.map((e: { pointer: string }) => e.pointer).sort(), ['/age', '/name'], 'no coercion of body values')
  const notObject = await post('/test/validate', '[]')
  assertProblem(t, notObject, 400)
  t.same(notObject.json().errors.map((e: { pointer: string }) => e.pointer), [''], 'the root is the empty pointer')
  const ok = await post('/test/validate', JSON.stringify({ name: 'n', 'x~y': 'v', items: [{ qty: 2 }] }))
  t.equal(ok.statusCode, 200)
})

t.test('an unexpected error is a bare 500: no message, stack or SQL', async (t) => {
  for (const url of ['/test/boom', '/test/bad-sql']) {
    const res = await ctx.app.inject({ url, headers: auth })
    assertProblem(t, res, 500)
    t.same(Object.keys(res.json()).sort(), ['code', 'detail', 'instance', 'request_id', 'status', 'title', 'type'])
    t.equal(res.json().code, 'internal-server-error')
    t.match(res.json(), { title: 'Internal server error', detail: 'An unexpected error occurred. It has been logged with this request id.' })
    for (const leak of ['hunter2', 'secret', 'SELECT', 'select', 'no_such_table', 'relation', '42P01']) t.notOk(res.body.includes(leak), `${url}: no ${leak}`)
  }
})

t.test('a unique violation is the 409 of its constraint, naming the field, not the constraint or value; nothing is kept', async (t) => {
  const before = await ctx.count('customers')
  const res = await post('/test/duplicate', '{}')
  assertProblem(t, res, 409)
  t.match(res.json(), { code: 'external-ref-taken', type: '/problems/external-ref-taken', detail: 'Another customer already has this external_ref.' })
  t.same(res.json().errors, [{ pointer: '/external_ref', message: 'is already taken by another customer' }])
  for (const leak of ['customers_external_ref_key', 'duplicate key', '23505', 'dup-1']) t.notOk(res.body.includes(leak), `no ${leak}`)
  t.equal(await ctx.count('customers'), before, 'the first insert was rolled back with the request')
})

t.test('x-request-id is always the server\'s own id; a client\'s well-formed id is kept as the correlation id', async (t) => {
  const fresh = await ctx.app.inject({ url: '/healthz' })
  t.match(fresh.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'a UUID when none is sent')
  t.notOk(fresh.headers['x-correlation-id'], 'no correlation id when none is sent')
  const other = await ctx.app.inject({ url: '/healthz' })
  t.not(other.headers['x-request-id'], fresh.headers['x-request-id'], 'each request has its own id')

  const given = await ctx.app.inject({ url: '/healthz', headers: { 'x-request-id': 'client-abc.123:4_5' } })
  t.match(given.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'the client\'s x-request-id does not become the request id')
  t.equal(given.headers['x-correlation-id'], 'client-abc.123:4_5', 'it comes back as x-correlation-id')
  const both = await ctx.app.inject({ url: '/healthz', headers: { 'x-request-id': 'rid-1', 'x-correlation-id': 'cid-1' } })
  t.equal(both.headers['x-correlation-id'], 'cid-1', 'x-correlation-id wins over x-request-id')
  const problem = await ctx.app.inject({ url: '/v1/nothing', headers: { 'x-request-id': 'trace-42' } })
  t.equal(problem.json().request_id, problem.headers['x-request-id'], 'a problem names the server\'s id')
  t.not(problem.json().request_id, 'trace-42')
  t.equal(problem.headers['x-correlation-id'], 'trace-42')
  const unauthorized = await ctx.app.inject({ url: '/v1/audit-events', headers: { 'x-request-id': 'trace-43' } })
  t.equal(unauthorized.json().request_id, unauthorized.headers['x-request-id'])
  t.equal(unauthorized.headers['x-correlation-id'], 'trace-43')

  for (const bad of ['has spaces', 'x'.repeat(65), '<script>', 'a\tb']) {
    const res = await ctx.app.inject({ url: '/healthz', headers: { 'x-request-id': bad } })
    t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/)
    t.notOk(res.headers['x-correlation-id'], `"${bad.slice(0, 10)}" is not kept`)
  }
})

t.test('router-level errors (bad percent-encoding, over-long path parameter) are problem+json too', async (t) => {
  const long = await ctx.app.inject({ url: `/v1/audit-events/${'x'.repeat(250)}`, headers: auth })
  assertProblem(t, long, 414)
  t.match(long.json(), { code: 'uri-too-long', detail: 'A path parameter is longer than this API accepts.' })
  t.notOk(long.body.includes('FST_'), 'no framework error code')
  const bad = await ctx.app.inject({ url: '/v1/audit-events/%E0%A4%A', headers: auth })
  assertProblem(t, bad, 400)
  t.match(bad.json(), { code: 'bad-url', detail: 'The URL path is not valid (bad percent-encoding).' })
  t.notOk(bad.body.includes('FST_'), 'no framework error code')
})

t.test('a number beyond a double\'s range is a 400 naming its field, not a null stored in its place', async (t) => {
  const before = await ctx.count('customers')
  const res = await post('/v1/customers', '{"name": "Huge", "attributes": {"shoe_size": 1e309, "ok": 1e308, "list": [1, -1e400]}}')
  assertProblem(t, res, 400)
  t.match(res.json(), { code: 'unstorable-value', type: '/problems/unstorable-value' })
  t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), ['/attributes/shoe_size', '/attributes/list/1'])
  t.equal(await ctx.count('customers'), before, 'nothing stored')
  const digits = await post('/test/echo', `{"n": ${'9'.repeat(400)}}`)
  assertProblem(t, digits, 400)
  t.same(digits.json().errors, [{ pointer: '/n', message: 'is a number too large to represent' }])
  const patch = await post('/test/echo', '{"a": {"b": 2E+999}}', 'application/merge-patch+json')
  t.same(patch.json().errors.map((e: { pointer: string }) => e.pointer), ['/a/b'], 'merge patches too')
  const big = await post('/test/echo', '{"n": 1.7e308, "s": "1e999"}')
  t.equal(big.statusCode, 200, 'the largest doubles, and such text inside strings, are fine')
  t.same(big.json(), { body: { n: 1.7e308, s: '1e999' } })
})

t.test('a NUL character PostgreSQL cannot store is a 400 naming where, in the body or the query string', async (t) => {
  const body = await post('/v1/customers', '{"name": "A\\u0000B", "attributes": {"ok": "x", "k\\u0000": 1}}')
  assertProblem(t, body, 400)
  t.match(body.json(), { code: 'unstorable-value' })
  t.same(body.json().errors, [
    { pointer: '/name', message: 'contains a NUL character (U+0000), which cannot be stored' },
    { pointer: '/attributes', message: 'has a member whose name contains a NUL character (U+0000)' },
  ])
  const query = await ctx.app.inject({ url: '/v1/customers?q=a%00b&tag=vip', headers: auth })
  assertProblem(t, query, 400)
  t.match(query.json(), { code: 'unstorable-value', errors: [{ pointer: '/q' }] })
  const escaped = await post('/test/echo', '{"s": "\\\\u0000"}')
  t.equal(escaped.statusCode, 200, 'an escaped backslash before u0000 is no NUL')
})

t.test('headers over the HTTP parser\'s limit: 431 problem+json with the security headers, over a real socket', async (t) => {
  await ctx.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = ctx.app.server.address() as { port: number }
  const [res] = await rawExchange(port, [`GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`])
  if (!res) return t.fail('no answer')
  t.equal(res.status, 431)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const body = JSON.parse(res.body) as Record<string, unknown>
  t.match(body, { status: 431, code: 'request-header-fields-too-large', type: '/problems/request-header-fields-too-large', title: 'Request header fields too large', request_id: String })
  t.equal(body.request_id, res.headers['x-request-id'])
  t.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body))
  const expected = securityHeaders()
  t.ok(Object.keys(expected).length >= 8, `helmet sets ${Object.keys(expected).length} headers`)
  for (const [name, value] of Object.entries(expected)) t.equal(res.headers[name], value, name)
  // The same headers as a request that reached the app.
  const normal = await ctx.app.inject({ url: '/healthz' })
  for (const name of ['content-security-policy', 'x-content-type-options', 'x-frame-options', 'strict-transport-security', 'referrer-policy', 'cross-origin-resource-policy']) {
    t.equal(res.headers[name], normal.headers[name], `${name} as on any answer`)
  }

  const [garbage] = await rawExchange(port, ['NOT HTTP AT ALL\r\n\r\n'])
  if (!garbage) return t.fail('no answer')
  t.equal(garbage.status, 400, 'a request line the parser refuses')
  t.match(JSON.parse(garbage.body), { code: 'malformed-request', status: 400 })
  t.equal(garbage.headers['x-content-type-options'], 'nosniff')
})
