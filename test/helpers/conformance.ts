import t from 'tap'
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { openApiDocument, responseValidator, type JsonSchema, type OpenApiDoc, type OpenApiResponse } from './openapi.js'

/**
 * # Contract conformance of every response a test receives
 *
 * Every app a test builds (buildTestApp, and `conform(app)` where a test calls buildApp itself) checks
 * each answer it sends, through injection or a real socket, against its own OpenAPI document.
 * What a test receives from a server it did not build in its own process (a server process, the
 * compiled build) or from a path below the app's hooks (the HTTP parser's refusals written to the
 * socket) is checked on arrival, by `conformingFetch` or `checkReceived`, against the committed
 * contract (openapi/openapi.json), as a client generated from it sees it. Both apply the same checks:
 * - the status is declared for the operation (or, for a request no operation matches, it is a problem);
 * - the Content-Type is one the response declares (a body where none is declared is a mismatch);
 * - a JSON body is valid against the declared schema (Ajv, JSON Schema 2020-12, formats checked);
 * - every header the response declares required is present, and every declared header sent is valid.
 * A mismatch fails the subtest that caused it (or, outside any subtest, the file) and is printed.
 */
export interface ResponseRecord {
  method: string
  /** The route's pattern as Fastify has it (/v1/customers/:id); undefined when no route matched. */
  route?: string
  url: string
  status: number
  headers: Record<string, string | string[] | number | undefined>
  /** The body as sent; undefined when it was a stream (not checked). */
  body?: string
}

const PROBLEM = 'application/problem+json'

/** Operation lookup and checks against one document; answers the mismatches (empty: conforms). */
export function contractChecker(doc: OpenApiDoc) {
  const validate = responseValidator(doc)
  const problemSchema: JsonSchema = { $ref: '#/components/schemas/Problem' }

  const resolveHeader = (h: JsonSchema & { required?: boolean; schema?: JsonSchema }) => {
    const name = typeof h.$ref === 'string' ? /^#\/components\/headers\/(.+)$/.exec(h.$ref)?.[1] : undefined
    return name ? doc.components.headers?.[name] ?? h : h
  }

  for (const op of Object.values(doc.paths).flatMap((item) => Object.values(item))) {
    for (const response of Object.values(op.responses)) {
      for (const media of Object.values(response.content ?? {})) validate(media.schema, undefined)
    }
  }

  return function check(r: ResponseRecord): string[] {
    const where = `${r.method} ${r.url.split('?')[0]} → ${r.status}`
    const out: string[] = []
    const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v === undefined ? undefined : String(v)]))
    const media = headers['content-type']?.split(';')[0]!.trim().toLowerCase()
    const method = r.method === 'HEAD' ? 'get' : r.method.toLowerCase()
    const op = r.route ? doc.paths[r.route.replace(/:([A-Za-z0-9_]+)/g, '{$1}')]?.[method] : undefined

    if (!op) {
      // No operation: a request no route matched (404, 405), a CORS preflight, or an undocumented
      // route (docs, the document itself, metrics). Its errors are still problems.
      if (r.status >= 400) {
        if (media !== PROBLEM) out.push(`${where}: content type ${media ?? '(none)'} is not ${PROBLEM}`)
        else if (r.body !== undefined && r.method !== 'HEAD') checkBody(problemSchema, r.body)
      }
      return out

      function checkBody(schema: JsonSchema, body: string) {
        const problem = parse(body)
        const error = problem.error ?? validate(schema, problem.value)
        if (error) out.push(`${where}: body: ${error}`)
      }
    }

    const response: OpenApiResponse | undefined = op.responses[String(r.status)] ?? op.responses[`${String(r.status)[0]}XX`] ?? op.responses.default
    if (!response) return [`${where}: status ${r.status} is not declared (declared: ${Object.keys(op.responses).join(', ')})`]

    const content = response.content ?? {}
    // 204 and 304 never carry a body on the wire (Node drops whatever the handler sent).
    const bodiless = r.status === 204 || r.status === 304 || r.method === 'HEAD'
    const hasBody = !bodiless && (r.body !== undefined ? r.body.length > 0 : media !== undefined)
    if (hasBody) {
      if (Object.keys(content).length === 0) out.push(`${where}: a body (${media ?? 'no content type'}) where the contract declares none`)
      else if (!media || !(media in content)) out.push(`${where}: content type ${media ?? '(none)'} is not declared (declared: ${Object.keys(content).join(', ')})`)
      else if (r.body !== undefined && (media === 'application/json' || media.endsWith('+json'))) {
        const parsed = parse(r.body)
        const error = parsed.error ?? validate(content[media]!.schema, parsed.value)
        if (error) out.push(`${where}: body does not match the ${media} schema: ${error}`)
      }
    } else if (!hasBody && !bodiless && Object.keys(content).length > 0) {
      out.push(`${where}: no body where the contract declares ${Object.keys(content).join(', ')}`)
    }

    for (const [name, declared] of Object.entries(response.headers ?? {})) {
      const h = resolveHeader(declared)
      const value = headers[name.toLowerCase()]
      if (value === undefined) {
        if (h.required) out.push(`${where}: required header ${name} is missing`)
        continue
      }
      const schema = h.schema ?? {}
      const typed = schema.type === 'integer' || schema.type === 'number' ? Number(value) : value
      const error = validate(schema, typed)
      if (error) out.push(`${where}: header ${name}: ${error.replace(/^body/, name)}`)
    }
    return out
  }
}

function parse(body: string): { value?: unknown; error?: string } {
  try {
    return { value: JSON.parse(body) }
  } catch {
    return { error: 'not JSON' }
  }
}

const BODY = Symbol('conformance body')
type WithBody = FastifyRequest & { [BODY]?: string | null }

/** Mismatches not yet reported, from every app this test process built. */
const pending: string[] = []
let reporting = false

function report(fail: (message: string) => void) {
  if (pending.length === 0) return
  const found = pending.splice(0)
  process.stderr.write(`contract conformance: ${found.length} mismatch(es):\n${found.map((m) => `  ${m}`).join('\n')}\n`)
  fail(`responses conform to the contract (openapi): ${found.slice(0, 5).join('; ')}${found.length > 5 ? ` … and ${found.length - 5} more` : ''}`)
}

/** Reports mismatches: on the subtest that caused them, or at the end of the file. */
function startReporting() {
  if (reporting) return
  reporting = true
  t.afterEach((child) => report((m) => child.fail(m)))
  t.teardown(() => report((m) => t.fail(m)))
}

// From the file's start: a mismatch found by a fetch in a subtest fails that subtest.
startReporting()

/** The checks as a plugin: every response of the app is checked when it has been sent. */
export const conformance = fp(async (app: FastifyInstance) => {
  startReporting()
  let check: ((r: ResponseRecord) => string[]) | undefined
  // Built (and every response schema compiled) before the first request, so no test's timing pays for it.
  app.addHook('onReady', async () => {
    check = contractChecker(openApiDocument(app as never))
  })
  app.addHook('onSend', async (request: WithBody, _reply, payload) => {
    request[BODY] = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : payload == null ? '' : null
    return payload
  })
  app.addHook('onResponse', async (request: WithBody, reply: FastifyReply) => {
    if (request.method === 'OPTIONS') return
    check ??= contractChecker(openApiDocument(app as never))
    const body = request[BODY]
    pending.push(...check({
      method: request.method,
      ...(request.routeOptions.url ? { route: request.routeOptions.url } : {}),
      url: request.url,
      status: reply.statusCode,
      headers: { ...reply.raw.getHeaders(), ...reply.getHeaders() },
      ...(body === null ? {} : { body: body ?? '' }),
    }))
  })
}, { name: 'contract-conformance' })

/** Turns the checks on for an app a test built with buildApp itself (before it is ready). */
export async function conform<T>(app: T | Promise<T>): Promise<T> {
  const built = await app
  await (built as unknown as FastifyInstance).register(conformance)
  return built
}

/**
 * The document's path a request path falls on, picked as the router picks a route: among the paths
 * with an operation for the method, a static segment wins over a parameter (/v1/customers/search
 * before /v1/customers/{id}); a trailing slash is ignored, as the app ignores it.
 */
export function operationPath(doc: OpenApiDoc, method: string, url: string): string | undefined {
  const m = method === 'HEAD' ? 'get' : method.toLowerCase()
  const segments = (url.split('?')[0] ?? '').replace(/(.)\/+$/, '$1').split('/')
  let best: { path: string; rank: string } | undefined
  for (const [path, item] of Object.entries(doc.paths)) {
    const template = path.split('/')
    if (!item[m] || template.length !== segments.length) continue
    let rank = ''
    const fits = template.every((part, i) => {
      const param = /^\{[^}]+\}$/.test(part)
      rank += param ? '0' : '1'
      return param ? segments[i] !== '' : part === segments[i]
    })
    if (fits && (!best || rank > best.rank)) best = { path, rank }
  }
  return best?.path
}

/** What a client generated from the contract holds: openapi/openapi.json as committed. */
const CONTRACT_FILE = new URL('../../openapi/openapi.json', import.meta.url)
let committed: { doc: OpenApiDoc; check: (r: ResponseRecord) => string[] } | undefined

export interface ReceivedOptions {
  /** The contract to check against (default: the committed openapi/openapi.json). */
  doc?: OpenApiDoc
  /** Where mismatches go (default: failing the current subtest, as the app's own checks do). */
  onMismatch?: (found: string[]) => void
}

const checkers = new WeakMap<OpenApiDoc, (r: ResponseRecord) => string[]>()

/** The document and its checker (every response schema compiled: a few seconds for the whole contract). */
function contractOf(opts: ReceivedOptions): { doc: OpenApiDoc; check: (r: ResponseRecord) => string[] } {
  if (!opts.doc) {
    committed ??= (() => {
      const doc = JSON.parse(readFileSync(CONTRACT_FILE, 'utf8')) as OpenApiDoc
      return { doc, check: contractChecker(doc) }
    })()
    return committed
  }
  let check = checkers.get(opts.doc)
  if (!check) checkers.set(opts.doc, (check = contractChecker(opts.doc)))
  return { doc: opts.doc, check }
}

/**
 * Checks a response a test received over the wire, with no route known: the operation is found
 * from the request's method and path. `url` is the request target (path and query).
 */
export function checkReceived(r: Omit<ResponseRecord, 'route'>, opts: ReceivedOptions = {}): string[] {
  const { doc, check } = contractOf(opts)
  const route = operationPath(doc, r.method, r.url)
  const found = check({ ...r, ...(route ? { route } : {}) })
  if (opts.onMismatch) {
    if (found.length > 0) opts.onMismatch(found)
  } else {
    pending.push(...found)
  }
  return found
}

const JSON_MEDIA = /^application\/(?:[\w.+-]+\+)?json$/

/**
 * `fetch` for a test that talks to a server over HTTP: each response it answers has been checked
 * against the contract (checkReceived). A JSON body is read from a clone before the response is
 * handed back, so the check is done by the time the test looks at it; other bodies (CSV, NDJSON
 * streams) are left to the test and checked for their declared content type only.
 */
export function checkingFetch(opts: ReceivedOptions = {}): typeof fetch {
  // Compiled now, so that no timed request pays for it.
  contractOf(opts)
  return async (input, init) => {
    const res = await fetch(input, init)
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase()
    const target = new URL(res.url || (input instanceof Request ? input.url : String(input)))
    const headers = Object.fromEntries(res.headers)
    const media = headers['content-type']?.split(';')[0]!.trim().toLowerCase()
    const bodiless = method === 'HEAD' || res.status === 204 || res.status === 304
    const body = bodiless ? '' : media && JSON_MEDIA.test(media) ? await res.clone().text() : headers['content-length'] === '0' ? '' : undefined
    checkReceived({ method, url: target.pathname + target.search, status: res.status, headers, ...(body === undefined ? {} : { body }) }, opts)
    return res
  }
}

/**
 * `fetch`, checked against the committed contract; a mismatch fails the subtest that received it.
 * The contract is compiled at the first call: a test that times its requests makes its own
 * `checkingFetch()` up front instead.
 */
export const conformingFetch: typeof fetch = (input, init) => (defaultFetch ??= checkingFetch())(input, init)
let defaultFetch: typeof fetch | undefined
