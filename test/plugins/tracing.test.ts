import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { token } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { startServerProcess } from '../helpers/server-process.js'

/**
 * Tracing end to end, as production runs it: the server process preloads src/instrumentation.ts
 * (node --import), OTEL_EXPORTER_OTLP_ENDPOINT points at an OTLP/HTTP receiver in this test, and
 * a request's spans arrive there: the HTTP server span, Fastify's request span with the request
 * id and actor, and a child span per SQL statement, in one trace, with no personal data.
 */
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes?: Array<{ key: string; value: Record<string, unknown> }>
}
const spans: OtlpSpan[] = []
const rawBodies: string[] = []
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8')
    if (req.url === '/v1/traces') {
      rawBodies.push(body)
      const doc = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
      for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
})
await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
t.teardown(() => new Promise<void>((resolve) => receiver.close(() => resolve())))
const otlp = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`

const database = await createTestDatabase()
const server = await startServerProcess(t, database.url, {
  OTEL_EXPORTER_OTLP_ENDPOINT: otlp, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_SERVICE_NAME: 'crm-api-test',
})
t.teardown(() => database.drop())
const logLines = () => server.output().split('\n').flatMap((line) => {
  try {
    return [JSON.parse(line) as Record<string, unknown>]
  } catch {
    return []
  }
})

const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes?.find((a) => a.key === key)?.value
  return v ? Object.values(v)[0] : undefined
}
async function until<T>(what: string, find: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const found = find()
    if (found !== undefined) return found
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}; spans: ${spans.map((s) => s.name).join(', ')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('a request is one trace: HTTP server span, Fastify request span with request id and actor, a pg span per statement below it', async (t) => {
  const authorization = `Bearer ${await token('admin', { sub: 'user:tracer' })}`
  const secret = 'ada.secret@example.com'
  const created = await server.fetch('/v1/customers', {
    method: 'POST', headers: { authorization, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Ada Traced', external_ref: 'trace-1', contact_points: [{ kind: 'email', value: secret }] }),
  })
  t.equal(created.status, 201, await created.clone().text())
  const requestId = created.headers.get('x-request-id')!
  const search = await server.fetch(`/v1/customers?q=${encodeURIComponent(secret)}`, { headers: { authorization } })
  t.equal(search.status, 200)

  const serverSpan = await until('the POST server span', () => spans.find((s) => s.kind === 2 && s.name === 'POST /v1/customers'))
  const inTrace = (id: string) => spans.filter((s) => s.traceId === id)
  const request = await until('the Fastify request span with the request id', () => inTrace(serverSpan.traceId).find((s) => attr(s, 'crm.request_id') === requestId))
  t.equal(attr(request, 'enduser.id'), 'user:tracer', 'the actor')
  const sqlSpans = await until('pg spans', () => {
    const found = inTrace(serverSpan.traceId).filter((s) => (attr(s, 'db.system.name') ?? attr(s, 'db.system')) === 'postgresql' && s.kind === 3)
    return found.length >= 2 ? found : undefined
  })
  const byId = new Map(inTrace(serverSpan.traceId).map((s) => [s.spanId, s]))
  for (const span of sqlSpans) {
    let up: OtlpSpan | undefined = span
    while (up && up.spanId !== serverSpan.spanId) up = up.parentSpanId ? byId.get(up.parentSpanId) : undefined
    t.ok(up, `${span.name} sits below the server span`)
  }
  t.ok(sqlSpans.some((s) => /insert into "customers"/i.test(String(attr(s, 'db.query.text') ?? attr(s, 'db.statement')))), 'the INSERT has its own span')

  await until('the GET server span', () => spans.find((s) => s.kind === 2 && s.name === 'GET /v1/customers'))
  const everything = rawBodies.join('\n')
  t.notOk(everything.includes(secret), 'no personal data in any exported span (bodies, query strings and SQL parameters are not recorded)')
  t.notOk(everything.includes('Ada Traced'), 'nor the name')

  const logged = logLines().find((l) => l.reqId === requestId && typeof l.trace_id === 'string')
  t.equal(logged?.trace_id, serverSpan.traceId, 'the request\'s log lines carry its trace id')
})

t.test('probes and scrapes are not traced', async (t) => {
  for (const url of ['/healthz', '/metrics']) t.equal((await server.fetch(url)).status, 200)
  await new Promise((r) => setTimeout(r, 500))
  t.notOk(spans.some((s) => ['/healthz', '/metrics'].includes(String(attr(s, 'http.route') ?? attr(s, 'http.target') ?? attr(s, 'url.path')))), 'no spans')
})
