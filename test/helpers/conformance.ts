import t from 'tap'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { openApiDocument, responseValidator, type JsonSchema, type OpenApiDoc, type OpenApiResponse } from './openapi.js'

/**
 * # Contract conformance of every response a test receives
 *
 * Every app a test builds (buildTestApp, and `conform(app)` where a test calls buildApp itself) checks
 * each answer it sends, through injection or a real socket, against its own OpenAPI document:
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
