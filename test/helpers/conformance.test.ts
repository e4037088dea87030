import t from 'tap'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkReceived, checkingFetch, contractChecker, operationPath, type ResponseRecord } from './conformance.js'
import type { OpenApiDoc } from './openapi.js'

/**
 * The conformance checker itself, on a small document: it must catch an undeclared status, a wrong
 * content type, an invalid body and a missing header, and pass a response that conforms.
 */
const doc: OpenApiDoc = {
  paths: {
    '/v1/things/search': { post: { operationId: 'searchThings', responses: { 200: { description: 'Found' } } } },
    '/v1/things/{id}': {
      get: {
        operationId: 'getThing',
        responses: {
          200: {
            description: 'A thing',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } },
            headers: { ETag: { $ref: '#/components/headers/ETag' }, 'X-PII-Masked': { schema: { type: 'string', enum: ['true'] } } },
          },
          304: { description: 'Not modified', headers: { ETag: { $ref: '#/components/headers/ETag' } } },
          404: { description: 'Not found', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
        },
      },
    },
  },
  components: {
    schemas: {
      Thing: {
        type: 'object', additionalProperties: false, required: ['id', 'name', 'note'],
        properties: { id: { type: 'string', format: 'uuid' }, name: { type: 'string', maxLength: 5 }, note: { type: ['string', 'null'] } },
      },
      Problem: { type: 'object', required: ['type', 'title', 'status', 'code'], properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, code: { type: 'string' } } },
    },
    headers: { ETag: { required: true, schema: { type: 'string', pattern: '^"[0-9]+"$' } } },
  },
}

const check = contractChecker(doc)
const ID = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'
const ok: ResponseRecord = {
  method: 'GET', route: '/v1/things/:id', url: `/v1/things/${ID}`, status: 200,
  headers: { 'content-type': 'application/json; charset=utf-8', etag: '"3"' },
  body: JSON.stringify({ id: ID, name: 'tea', note: null }),
}
const problem = JSON.stringify({ type: 'https://crm-api.dev/problems/not-found', title: 'Not Found', status: 404, code: 'not-found' })

t.test('a conforming response passes (3.1 null types, a 304 without body, a declared problem)', async (t) => {
  t.same(check(ok), [])
  t.same(check({ ...ok, status: 304, headers: { etag: '"3"' }, body: '' }), [])
  t.same(check({ ...ok, status: 404, headers: { 'content-type': 'application/problem+json; charset=utf-8' }, body: problem }), [])
})

t.test('an undeclared status is caught', async (t) => {
  t.match(check({ ...ok, status: 409, headers: { 'content-type': 'application/problem+json' }, body: problem.replace('404', '409') }), [/status 409 is not declared/])
})

t.test('a wrong content type is caught', async (t) => {
  t.match(check({ ...ok, status: 404, headers: { 'content-type': 'application/json' }, body: problem }), [/content type application\/json is not declared/])
  t.match(check({ ...ok, headers: { ...ok.headers, 'content-type': 'text/plain' } }), [/content type text\/plain is not declared/])
})

t.test('an invalid body is caught', async (t) => {
  t.match(check({ ...ok, body: JSON.stringify({ id: 'not-a-uuid', name: 'tea', note: null }) }), [/body does not match.*format/])
  t.match(check({ ...ok, body: JSON.stringify({ id: ID, name: 'oolong tea', note: null, extra: 1 }) }), [/body does not match/])
  t.match(check({ ...ok, body: '{"id":' }), [/not JSON/])
})

t.test('a missing required header, or a declared header with a bad value, is caught', async (t) => {
  t.match(check({ ...ok, headers: { 'content-type': 'application/json' } }), [/required header ETag is missing/])
  t.match(check({ ...ok, headers: { ...ok.headers, etag: 'W/"3"' } }), [/header ETag/])
  t.match(check({ ...ok, headers: { ...ok.headers, 'x-pii-masked': 'yes' } }), [/header X-PII-Masked/])
  t.same(check({ ...ok, headers: { ...ok.headers, 'x-pii-masked': 'true' } }), [], 'an optional header may be sent when valid')
})

t.test('a response no operation matches must still be a problem when it is an error', async (t) => {
  t.same(check({ method: 'GET', url: '/nowhere', status: 404, headers: { 'content-type': 'application/problem+json' }, body: problem }), [])
  t.match(check({ method: 'GET', url: '/nowhere', status: 404, headers: { 'content-type': 'text/html' }, body: '<p>no</p>' }), [/is not application\/problem\+json/])
  t.match(check({ method: 'GET', url: '/nowhere', status: 404, headers: { 'content-type': 'application/problem+json' }, body: '{"title":"x"}' }), [/body/])
})

t.test('a request path falls on the operation the router would pick', async (t) => {
  t.equal(operationPath(doc, 'GET', `/v1/things/${ID}?x=1`), '/v1/things/{id}')
  t.equal(operationPath(doc, 'HEAD', `/v1/things/${ID}/`), '/v1/things/{id}', 'HEAD as GET, a trailing slash ignored')
  t.equal(operationPath(doc, 'POST', '/v1/things/search'), '/v1/things/search', 'a static segment before a parameter')
  t.equal(operationPath(doc, 'GET', '/v1/things/search'), '/v1/things/{id}', 'the parameter when the static path has no such method')
  t.equal(operationPath(doc, 'DELETE', `/v1/things/${ID}`), undefined)
  t.equal(operationPath(doc, 'GET', '/v1/things/'), undefined, 'an empty parameter matches nothing')
})

t.test('a response received over the wire is checked as the operation its path falls on', async (t) => {
  const found: string[] = []
  const received = { ...ok, url: `/v1/things/${ID}` }
  delete (received as Partial<ResponseRecord>).route
  t.same(checkReceived(received, { doc, onMismatch: (m) => found.push(...m) }), [])
  t.match(checkReceived({ ...received, status: 409 }, { doc, onMismatch: (m) => found.push(...m) }), [/status 409 is not declared/])
  t.match(found, [/status 409/])
})

t.test('against the committed contract: Fastify\'s own answer while closing would fail, the shutting-down problem passes', async (t) => {
  const found: string[] = []
  const onMismatch = (m: string[]) => found.push(...m)
  const base = { method: 'GET', url: '/v1/customers?limit=1', status: 503 }
  t.match(checkReceived({ ...base, headers: { 'content-type': 'application/json', connection: 'close' }, body: '{"error":"Service Unavailable","message":"Service Unavailable","statusCode":503}' }, { onMismatch }),
    [/content type application\/json is not declared/, /required header Retry-After is missing/, /required header X-Request-Id is missing/])
  const shuttingDown = { type: '/problems/shutting-down', code: 'shutting-down', title: 'Shutting down', status: 503, detail: 'The instance is shutting down; retry on a new connection.', instance: '/v1/customers', request_id: ID }
  t.same(checkReceived({ ...base, headers: { 'content-type': 'application/problem+json; charset=utf-8', connection: 'close', 'retry-after': '1', 'x-request-id': ID }, body: JSON.stringify(shuttingDown) }, { onMismatch }), [])
  t.match(checkReceived({ ...base, headers: { 'content-type': 'application/problem+json', connection: 'upgrade', 'retry-after': '1', 'x-request-id': ID }, body: JSON.stringify(shuttingDown) }, { onMismatch }), [/header Connection/])
})

/** A server answering whatever the test sets, reached through checkingFetch with the small document. */
t.test('checkingFetch checks status, content type, body and headers of what it receives', async (t) => {
  let answer: (res: ServerResponse) => void = () => {}
  const server = createServer((_req, res) => answer(res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/things/${ID}`
  const found: string[] = []
  const fetchChecked = checkingFetch({ doc, onMismatch: (m) => found.push(...m) })
  const get = async (respond: (res: ServerResponse) => void, init?: RequestInit) => {
    answer = respond
    found.length = 0
    const res = await fetchChecked(url, init)
    await res.arrayBuffer()
    return [...found]
  }
  const thing = JSON.stringify({ id: ID, name: 'tea', note: null })
  t.same(await get((res) => res.writeHead(200, { 'content-type': 'application/json', etag: '"3"' }).end(thing)), [], 'a conforming answer')
  t.same(await get((res) => res.writeHead(304, { etag: '"3"' }).end()), [], 'a 304 without body')
  t.same(await get((res) => res.writeHead(200, { 'content-type': 'application/json', etag: '"3"' }).end(), { method: 'HEAD' }), [], 'HEAD as GET, no body')
  t.match(await get((res) => res.writeHead(409, { 'content-type': 'application/problem+json' }).end(problem)), [/status 409 is not declared/])
  t.match(await get((res) => res.writeHead(200, { 'content-type': 'text/plain', etag: '"3"' }).end('tea')), [/content type text\/plain is not declared/])
  t.match(await get((res) => res.writeHead(200, { 'content-type': 'application/json', etag: '"3"' }).end('{"id":1}')), [/body does not match/])
  t.match(await get((res) => res.writeHead(200, { 'content-type': 'application/json' }).end(thing)), [/required header ETag is missing/])
  const other = url.replace(`/v1/things/${ID}`, '/nowhere')
  answer = (res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<p>no</p>')
  found.length = 0
  await (await fetchChecked(other)).text()
  t.match(found, [/is not application\/problem\+json/], 'an error on no operation must still be a problem')
})

t.test('a mismatch received by conformingFetch or rawExchange fails the test that received it', async (t) => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/conformance.fixture.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  t.not(code, 0, 'the file fails')
  t.match(output, /not ok 1 - fetch/, 'the subtest that fetched')
  t.match(output, /not ok 2 - raw/, 'the subtest that read raw HTTP')
  t.match(output, /GET \/healthz → 200: body does not match the application\/json schema/, 'with the mismatch printed')
  t.match(output, /required header X-Request-Id is missing/)
})

/**
 * Every way a test can reach a server goes through a check: apps a test builds check themselves
 * (buildTestApp, conform(buildApp(...))); anything else a test receives over HTTP comes through
 * conformingFetch (server.fetch), rawConnection or rawExchange. Only those helpers may call the
 * network themselves.
 */
t.test('no test talks to a server around the contract checks', async (t) => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
  const allowed = new Set(['test/helpers/conformance.ts', 'test/helpers/raw-http.ts', 'test/helpers/app.ts'])
  const clients: Array<[RegExp, string]> = [
    [/(?<![\w.])fetch\((?!\w+\??:)/, 'the global fetch (use conformingFetch, or server.fetch)'],
    [/import\s*\{[^}]*\b(?:connect|createConnection)\b[^}]*\}\s*from 'node:net'|\bnet\.(?:connect|createConnection)\(/, 'a raw socket (use rawConnection or rawExchange)'],
    [/\bhttps?\.(?:request|get)\(|import\s*\{[^}]*\b(?:request|get)\b[^}]*\}\s*from 'node:https?'/, 'node:http as a client (use conformingFetch)'],
    [/from '(?:undici|autocannon|axios|got|supertest)'/, 'an HTTP client library (use conformingFetch)'],
    [/(?<!conform\()\bbuildApp\(/, 'an app built without its checks (use buildTestApp, or conform(buildApp(...)))'],
  ]
  const files = (readdirSync(path.join(root, 'test'), { recursive: true }) as string[])
    .map((f) => `test/${f.split(path.sep).join('/')}`)
    .filter((f) => f.endsWith('.ts') && !allowed.has(f) && f !== 'test/helpers/conformance.test.ts')
  const found: string[] = []
  for (const file of files) {
    const text = readFileSync(path.join(root, file), 'utf8')
    for (const [pattern, what] of clients) if (pattern.test(text)) found.push(`${file}: ${what}`)
  }
  t.ok(files.length > 100, `${files.length} files looked at`)
  t.same(found, [])
})
