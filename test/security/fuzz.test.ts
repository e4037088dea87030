import t from 'tap'
import fc from 'fast-check'
import { setup } from '../helpers/app.js'
import { mutated, valid } from '../helpers/arbitrary.js'
import { seeded, testSeed } from '../helpers/seed.js'
import { WELL_FORMED_POINTER, fillPath, openApiDocument, operations, resolve, responseValidator, type JsonSchema, type Operation, type Parameter } from '../helpers/openapi.js'

/**
 * Property-based fuzzing of every operation in the OpenAPI document (so routes added later are
 * covered without edits): valid requests generated from the document's schemas, and mutated ones
 * (hostile values, missing or extra properties, server-owned fields, broken JSON, wrong media
 * types, malformed ids and headers). Whatever is sent, the answer is never a 5xx, every error is
 * problem+json with well-formed pointers, every status is one the operation documents, and every
 * 2xx body matches the operation's response schema.
 *
 * FUZZ_RUNS scales the number of requests (default 1: about 3,000). Every generated value comes
 * from fast-check under one seed, named in each assertion (`seed=N`): CRM_TEST_SEED=N (or
 * FUZZ_SEED=N) replays the run. FUZZ_DEBUG=1 lists why schema-valid requests were refused (where
 * the generators fall short).
 */
const SCALE = Number(process.env.FUZZ_RUNS ?? 1)
const SEED = testSeed(process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined)

const ctx = await setup()
const admin = await ctx.auth()
const doc = openApiDocument(ctx.app)

// About 3,000 requests whatever the number of operations (the file stays near a minute on two
// cores), and never fewer than 60 per operation: a third valid, two thirds mutated.
const PER_OPERATION = Math.max(60, Math.round(3000 / operations(doc).length)) * SCALE
const VALID_RUNS = Math.round(PER_OPERATION / 3)
const MUTATED_RUNS = Math.round(PER_OPERATION - VALID_RUNS)
const checkSchema = responseValidator(doc)

/** Ids of records the fuzzer created, by resource (customers, orders, contact_points, ...). */
const pool = new Map<string, string[]>()
const resourceOf = (name: string) => {
  const n = name.replace(/-/g, '_').replace(/_id$/, '')
  return n.endsWith('s') ? n : `${n}s`
}
/** The resource a path addresses: its last literal segment (/v1/customers/{id}/orders → orders). */
const pathResource = (path: string, beforeParam?: string) => {
  const segments = path.split('/').filter(Boolean)
  const end = beforeParam ? segments.indexOf(`{${beforeParam}}`) : segments.length
  const literal = segments.slice(0, end).filter((s) => !s.startsWith('{'))
  return resourceOf(literal[literal.length - 1] ?? '')
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function harvest(value: unknown, resource: string) {
  if (Array.isArray(value)) {
    for (const v of value) harvest(v, resource)
    return
  }
  if (!value || typeof value !== 'object') return
  const o = value as Record<string, unknown>
  if (typeof o.id === 'string' && UUID.test(o.id)) {
    const list = pool.get(resource) ?? []
    if (!list.includes(o.id)) list.push(o.id)
    pool.set(resource, list)
  }
  for (const [k, v] of Object.entries(o)) if (v && typeof v === 'object') harvest(v, k === 'data' ? resource : resourceOf(k))
}

const anyPooled = () => [...pool.values()].flat()
/** An id: of a record of the right resource, of any record, or one that exists nowhere. */
const idFor = (resource: string) =>
  fc.tuple(fc.nat(), fc.constantFrom('own', 'own', 'own', 'any', 'random'), fc.uuid({ version: 7 })).map(([n, kind, nowhere]) => {
    const list = kind === 'own' ? pool.get(resource) ?? [] : kind === 'any' ? anyPooled() : []
    return list.length > 0 ? list[n % list.length]! : nowhere
  })
const uuidField = (name: string) => (name.endsWith('_id') ? idFor(resourceOf(name)) : fc.oneof(idFor('any'), fc.uuid({ version: 7 })))

/** Unique within the run (each file has its own database) and the same in a replay: a counter, not randomness. */
let freshCount = 0
const uniqueSuffix = () => `f${(++freshCount).toString(36)}`

/** An example with *_id fields pointing at created records and unique values made unique. */
function freshen(value: unknown, key: string, n: number): unknown {
  if (Array.isArray(value)) return value.map((v) => freshen(v, key, n))
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, freshen(v, k, n)]))
  if (typeof value === 'string') {
    if (key.endsWith('_id') && UUID.test(value)) {
      const list = pool.get(resourceOf(key)) ?? []
      return list.length > 0 ? list[n % list.length]! : value
    }
    if (key === 'external_ref' || key === 'order_number') return `${value}-${uniqueSuffix()}`
    if (/^[^@\s]+@[^@\s]+$/.test(value)) return `u${uniqueSuffix()}@example.com`
  }
  return value
}

const BAD_IDS = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.constantFrom('0', '-1', 'null', 'undefined', 'x'.repeat(250), '../../etc/passwd', '%2e%2e%2f', '0193A7D0-6F1E-7C3A-9B1E-2F4C8D9E0A11', '0193a7d06f1e7c3a9b1e2f4c8d9e0a11', '{id}', "1' or '1'='1", '00000000-0000-0000-0000-000000000000'),
)
const HOSTILE_TEXT = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('', ' ', '-1', '1e309', 'true', 'null', '[]', "' or 1=1 --", 'x'.repeat(2000), '%', '\u0000'))

type Query = Record<string, string | string[]>
interface FuzzRequest {
  path: Record<string, string>
  query: Query
  headers: Record<string, string>
  body?: { raw: string; contentType: string } | undefined
}

const asText = (v: unknown): string | string[] =>
  Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) : typeof v === 'string' ? v : JSON.stringify(v)

/** next_cursor values each list answered, so valid requests page through real results. */
const cursors = new Map<string, string[]>()
const cursorFor = (op: Operation) => fc.nat().map((n) => {
  const list = cursors.get(op.operationId) ?? []
  return list.length > 0 ? list[n % list.length]! : ''
})

function queryArb(op: Operation, mode: 'valid' | 'mutated'): fc.Arbitrary<Query> {
  const params = op.query
  const model: Record<string, fc.Arbitrary<string | string[]>> = {}
  for (const p of params) {
    // A long poll (GET /v1/events?wait=) answers at once only when there is something new: the
    // fuzzer does not wait, so its valid value is 0 (tests/modules/events covers waiting).
    const good = p.name === 'cursor' ? cursorFor(op) : p.name === 'wait' ? fc.constant('0') : valid(doc, p.schema, { uuid: uuidField }, p.name).map(asText)
    model[p.name] = mode === 'valid' ? good : fc.oneof(good, HOSTILE_TEXT, fc.array(HOSTILE_TEXT, { maxLength: 3 }))
  }
  const known = fc.record(model, { requiredKeys: params.filter((p) => p.required).map((p) => p.name) })
  if (mode === 'valid') return known as fc.Arbitrary<Query>
  return fc.tuple(known, fc.option(fc.tuple(fc.string({ minLength: 1, maxLength: 10 }), HOSTILE_TEXT), { nil: undefined })).map(([q, extra]) =>
    extra ? { ...q, [extra[0]]: extra[1] } : q,
  ) as fc.Arbitrary<Query>
}

function pathArb(op: Operation, mode: 'valid' | 'mutated'): fc.Arbitrary<Record<string, string>> {
  const model: Record<string, fc.Arbitrary<string>> = {}
  for (const p of op.pathParams) {
    const good = resolve(doc, p.schema).format === 'uuid' ? idFor(p.name === 'id' ? pathResource(op.path, 'id') : resourceOf(p.name)) : valid(doc, p.schema, {}, p.name).map(String)
    model[p.name] = mode === 'valid' ? good : fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: BAD_IDS })
  }
  return fc.record(model)
}

const RAW_BODIES = fc.oneof(
  fc.constant({ raw: '', contentType: 'application/json' }),
  fc.constant({ raw: '{', contentType: 'application/json' }),
  fc.constant({ raw: '{"a":1,}', contentType: 'application/json' }),
  fc.constant({ raw: 'null', contentType: 'application/json' }),
  fc.constant({ raw: '[]', contentType: 'application/json' }),
  fc.constant({ raw: '"text"', contentType: 'application/json' }),
  fc.constant({ raw: '{"__proto__":{"admin":true}}', contentType: 'application/json' }),
  fc.constant({ raw: '{"constructor":{"prototype":{"x":1}}}', contentType: 'application/json' }),
  fc.constant({ raw: '[' .repeat(40) + ']'.repeat(40), contentType: 'application/json' }),
  fc.constant({ raw: '{"name":"\\ud800"}', contentType: 'application/json' }),
  fc.constant({ raw: 'name=x', contentType: 'application/x-www-form-urlencoded' }),
  fc.constant({ raw: '<a/>', contentType: 'application/xml' }),
  fc.string().map((raw) => ({ raw, contentType: 'application/json' })),
  fc.jsonValue().map((v) => ({ raw: JSON.stringify(v), contentType: 'text/plain' })),
)

function bodyArb(op: Operation, mode: 'valid' | 'mutated'): fc.Arbitrary<FuzzRequest['body']> {
  if (!op.body) return mode === 'valid' ? fc.constant(undefined) : fc.option(RAW_BODIES, { nil: undefined, freq: 3 })
  if (!op.jsonBody) {
    // A streamed upload (CSV, NDJSON): text in one of its media types, or anything else.
    const text = fc.tuple(fc.constantFrom(...op.bodyMediaTypes), fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.array(fc.jsonValue().map((v) => JSON.stringify(v)), { maxLength: 5 }).map((l) => l.join('\n')))).map(([contentType, raw]) => ({ raw, contentType }))
    return mode === 'valid' ? text : fc.oneof(text, RAW_BODIES)
  }
  const example = resolve(doc, op.body).example
  const generated = valid(doc, op.body, { uuid: uuidField })
  // Half the valid bodies are the schema's example made fresh (ids of created records, unique
  // refs and emails): generated bodies often break a business rule, examples reach the handler.
  const good = example === undefined ? generated : fc.oneof(generated, fc.nat().map((n) => freshen(structuredClone(example), '', n)))
  const json = (v: unknown) => (v === undefined ? undefined : { raw: JSON.stringify(v), contentType: op.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' })
  if (mode === 'valid') return good.map(json)
  const serverOwned = ['id', 'version', 'created_at', 'updated_at', 'archived_at', ...Object.keys(responseProperties(op))]
  return fc.oneof({ weight: 5, arbitrary: mutated(good, serverOwned).map(json) }, { weight: 1, arbitrary: RAW_BODIES })
}

/** Properties of the operation's success response (candidates for fields a client must not send). */
function responseProperties(op: Operation): Record<string, JsonSchema> {
  const success = Object.entries(op.responses).find(([s, schema]) => s.startsWith('2') && schema)?.[1]
  return success ? resolve(doc, success).properties ?? {} : {}
}

const HEADERS = fc.record({
  'if-match': fc.constantFrom('"1"', '"2"', '*', 'W/"1"', '"999999999"', 'garbage', '"-1"', '""'),
  'if-none-match': fc.constantFrom('"1"', '*', '"0", "1"', 'garbage'),
  'idempotency-key': fc.oneof(fc.uuid(), fc.string({ maxLength: 300 })),
  'x-request-id': fc.oneof(fc.string({ maxLength: 80 }), fc.constant('req-1')),
  accept: fc.constantFrom('application/json', 'text/html', '*/*', 'application/problem+json', 'application/xml'),
}, { requiredKeys: [] })

function requestArb(op: Operation, mode: 'valid' | 'mutated'): fc.Arbitrary<FuzzRequest> {
  const headers = mode === 'valid' ? fc.constant({}) : HEADERS
  return fc.record({ path: pathArb(op, mode), query: queryArb(op, mode), headers, body: bodyArb(op, mode) }) as fc.Arbitrary<FuzzRequest>
}

interface Tally { requests: number; byStatus: Map<number, number> }
const tally = new Map<string, Tally>()

/** Router-level answers any route gives for a malformed path, whatever it documents. */
function routerLevel(req: FuzzRequest, status: number): boolean {
  const values = Object.values(req.path)
  if (status === 414) return values.some((v) => encodeURIComponent(v).length > 200) // routerOptions.maxParamLength
  if (status === 405 || status === 404) return values.some((v) => v === '' || v.includes('/'))
  return false
}

/** Everything wrong with one answer; empty when it is as the contract says. */
function violations(op: Operation, req: FuzzRequest, res: Awaited<ReturnType<typeof ctx.app.inject>>): string[] {
  const out: string[] = []
  const status = res.statusCode
  if (status >= 500) out.push(`${status}: ${res.body.slice(0, 500)}`)
  // An empty path parameter makes another route answer (ignoreTrailingSlash): only the
  // route-independent rules apply then.
  const rerouted = Object.values(req.path).some((v) => v === '')
  const documented = rerouted || (status in op.responses && (status !== 304 || req.headers['if-none-match'] !== undefined)) || routerLevel(req, status)
  if (!documented) out.push(`status ${status} is not documented for ${op.operationId} (documented: ${Object.keys(op.responses).join(', ')}): ${res.body.slice(0, 300)}`)
  if (status >= 400) {
    if (!/^application\/problem\+json/.test(String(res.headers['content-type']))) out.push(`error with content-type ${String(res.headers['content-type'])}`)
    let body: Record<string, unknown> = {}
    try {
      body = res.json()
    } catch {
      out.push(`error body is not JSON: ${res.body.slice(0, 200)}`)
    }
    if (typeof body.type !== 'string' || typeof body.title !== 'string' || body.status !== status) out.push(`problem without type/title/status: ${res.body.slice(0, 300)}`)
    if (body.errors !== undefined) {
      if (!Array.isArray(body.errors) || body.errors.length === 0) out.push('errors is not a non-empty array')
      else for (const e of body.errors as Array<Record<string, unknown>>) {
        if (typeof e.pointer !== 'string' || !WELL_FORMED_POINTER.test(e.pointer)) out.push(`malformed pointer ${JSON.stringify(e.pointer)}`)
        if (typeof e.message !== 'string' || e.message.length === 0) out.push(`error without message at ${String(e.pointer)}`)
      }
    }
    // Internals in the answer that the request did not carry itself (echoing a bad value is fine).
    const leak = /\bat [^ ]+ \(|node_modules|SELECT |INSERT |UPDATE |_fkey|_key\b|_check\b|violates/i
    if (leak.test(res.body) && !leak.test(JSON.stringify(req))) out.push(`error body leaks internals: ${res.body.slice(0, 300)}`)
  } else if (status >= 200 && status < 300 && !rerouted) {
    const schema = op.responses[String(status)]
    if (/^(text\/csv|application\/x-ndjson|text\/html)/.test(String(res.headers['content-type']))) {
      // A streamed export (CSV, NDJSON) or a page (the problem types): not a JSON body; the
      // segments and problems tests check them.
    } else if (schema) {
      if (!/^application\/json/.test(String(res.headers['content-type']))) out.push(`2xx with content-type ${String(res.headers['content-type'])}`)
      const error = checkSchema(schema, res.json())
      if (error) out.push(`${status} body does not match its schema: ${error}`)
    } else if (res.body.length > 0 && res.body !== 'null') {
      out.push(`${status} has an undocumented body: ${res.body.slice(0, 200)}`)
    }
  }
  return out
}

async function send(op: Operation, req: FuzzRequest) {
  const headers: Record<string, string> = { ...admin, ...req.headers }
  if (req.body) headers['content-type'] = req.body.contentType
  const res = await ctx.app.inject({
    method: op.method,
    url: fillPath(op.path, req.path),
    query: req.query,
    headers,
    ...(req.body ? { payload: req.body.raw } : {}),
  })
  const entry = tally.get(op.operationId) ?? { requests: 0, byStatus: new Map() }
  entry.requests++
  entry.byStatus.set(res.statusCode, (entry.byStatus.get(res.statusCode) ?? 0) + 1)
  tally.set(op.operationId, entry)
  if (res.statusCode >= 200 && res.statusCode < 300 && res.body.length > 0) {
    try {
      const body = res.json() as { next_cursor?: unknown }
      harvest(body, pathResource(op.path))
      if (typeof body.next_cursor === 'string' && !req.query.sort) cursors.set(op.operationId, [...(cursors.get(op.operationId) ?? []), body.next_cursor].slice(-20))
    } catch { /* reported by violations */ }
  }
  return res
}

/** Why schema-valid requests were refused, per operation: shows where the generators fall short. */
const refusals = new Map<string, Map<string, number>>()

async function fuzz(op: Operation, mode: 'valid' | 'mutated', numRuns: number): Promise<string | undefined> {
  try {
    await fc.assert(
      fc.asyncProperty(requestArb(op, mode), async (req) => {
        const res = await send(op, req)
        if (mode === 'valid' && res.statusCode === 400) {
          const body = res.json() as { detail?: string; errors?: Array<{ pointer: string }> }
          const key = `${body.detail} ${(body.errors ?? []).map((e) => e.pointer).join(',')}`
          const m = refusals.get(op.operationId) ?? new Map<string, number>()
          m.set(key, (m.get(key) ?? 0) + 1)
          refusals.set(op.operationId, m)
        }
        const found = violations(op, req, res)
        if (found.length > 0) throw new Error(`${op.method} ${fillPath(op.path, req.path)} → ${found.join('\n  ')}`)
      }),
      { numRuns, seed: SEED, endOnFailure: false, interruptAfterTimeLimit: 60_000 * SCALE },
    )
    return undefined
  } catch (err) {
    const { message, cause } = err as Error & { cause?: Error }
    return [...message.split('\n').slice(0, 4), cause?.message ?? ''].join('\n')
  }
}

// Creators first (they fill the id pool), then reads, updates and finally deletes.
const RANK: Record<string, number> = { POST: 0, GET: 1, PATCH: 2, PUT: 2, DELETE: 3 }
const ops = operations(doc).sort((a, b) => a.pathParams.length - b.pathParams.length || RANK[a.method]! - RANK[b.method]! || a.path.localeCompare(b.path))

t.test('the document has operations to fuzz', async (t) => {
  t.ok(ops.length >= 20, `${ops.length} operations`)
  for (const id of ['createCustomer', 'listCustomers', 'updateCustomer', 'createOrder', 'createOrderPayment']) t.ok(ops.some((o) => o.operationId === id), id)
})

t.test('valid requests from the schemas', async (t) => {
  for (const op of ops) {
    const failure = await fuzz(op, 'valid', VALID_RUNS)
    t.notOk(failure, seeded(`${op.operationId}: ${VALID_RUNS} valid requests`, SEED), failure ? { diagnostic: true, failure } : {})
  }
  t.ok((pool.get('customers') ?? []).length > 0, 'valid createCustomer requests created customers')
  t.ok((pool.get('orders') ?? []).length > 0, 'valid createOrder requests created orders (customer_id drawn from created customers)')
})

t.test('mutated requests', async (t) => {
  for (const op of ops) {
    const failure = await fuzz(op, 'mutated', MUTATED_RUNS)
    t.notOk(failure, seeded(`${op.operationId}: ${MUTATED_RUNS} mutated requests`, SEED), failure ? { diagnostic: true, failure } : {})
  }
})

t.test('request counts', async (t) => {
  let total = 0
  const lines: string[] = []
  for (const [id, entry] of tally) {
    total += entry.requests
    lines.push(`${id}: ${entry.requests} (${[...entry.byStatus].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')})`)
  }
  t.comment(`fuzz: ${total} requests over ${tally.size} operations\n${lines.join('\n')}`)
  if (process.env.FUZZ_DEBUG) {
    for (const [id, m] of refusals) t.comment(`${id} refused valid requests: ${[...m].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, n]) => `${n}× ${k}`).join(' | ')}`)
  }
  const fivexx = [...tally.values()].reduce((n, e) => n + [...e.byStatus].filter(([s]) => s >= 500).reduce((m, [, c]) => m + c, 0), 0)
  t.equal(fivexx, 0, seeded('no 5xx at all', SEED))
  t.ok(total >= ops.length * (VALID_RUNS + MUTATED_RUNS), `${total} requests sent`)
  const succeeded = [...tally.values()].reduce((n, e) => n + [...e.byStatus].filter(([s]) => s < 300).reduce((m, [, c]) => m + c, 0), 0)
  t.ok(succeeded > total / 10, `${succeeded} requests succeeded: the valid generators reach the handlers`)
})
