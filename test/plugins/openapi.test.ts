import t from 'tap'
import { setup } from '../helpers/app.js'
import { SCOPES } from '../../src/plugins/auth.js'

const ctx = await setup()

interface Operation { operationId?: string; summary?: string; description?: string; tags?: string[]; responses?: Record<string, unknown> }
interface Spec { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, { description?: string; example?: unknown }> } }

const res = await ctx.app.inject({ method: 'GET', url: '/openapi.json' })
const spec = res.json() as Spec
const operations = Object.entries(spec.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })))

t.test('the contract is served and lists the domains', async (t) => {
  t.equal(res.statusCode, 200)
  t.ok(operations.length > 10, `${operations.length} operations`)
  t.ok(spec.paths['/v1/customers'], 'customers')
  const docs = await ctx.app.inject({ method: 'GET', url: '/docs/' })
  t.ok([200, 302].includes(docs.statusCode), 'Swagger UI is served')
})

t.test('every operation has a unique camelCase operationId, a summary, tags and responses', async (t) => {
  const ids = new Set<string>()
  for (const { path, method, op } of operations) {
    const name = `${method.toUpperCase()} ${path}`
    t.match(op.operationId, /^[a-z][A-Za-z0-9]+$/, `${name} operationId`)
    t.notOk(ids.has(op.operationId!), `${name} operationId is unique`)
    ids.add(op.operationId!)
    t.ok(op.summary, `${name} summary`)
    t.ok(op.tags?.length, `${name} tags`)
    t.ok(Object.keys(op.responses ?? {}).some((s) => s.startsWith('2')), `${name} documents a success response`)
  }
})

t.test('component schemas are named, described and have an example', async (t) => {
  const names = Object.keys(spec.components.schemas)
  t.notOk(names.some((n) => /^def-\d+$/.test(n)), 'no def-N names')
  // A problem type entry has a property named `example`: Spectral reads an example of it as a
  // schema (src/modules/problems/problems.schemas.ts), so those two go without.
  const withoutExample = new Set(['ProblemType', 'ProblemTypeList'])
  for (const [name, schema] of Object.entries(spec.components.schemas)) {
    t.ok(schema.description, `${name} has a description`)
    if (!withoutExample.has(name)) t.not(schema.example, undefined, `${name} has an example`)
  }
})

t.test('no operation refers to a component that does not exist', async (t) => {
  const text = JSON.stringify(spec)
  const refs = [...text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!)
  for (const r of new Set(refs)) t.ok(spec.components.schemas[r], `${r} exists`)
})

t.test('every operation names the one scope it needs (none for ops endpoints), from its route config', async (t) => {
  const doc = res.json() as { paths: Record<string, Record<string, { security?: Array<Record<string, string[]>> }>> }
  for (const { path, method } of operations) {
    const security = doc.paths[path]![method]!.security
    if (path.startsWith('/v1/')) {
      t.equal(security?.length, 1, `${method.toUpperCase()} ${path} one requirement`)
      const scopes = security?.[0]?.bearerAuth ?? []
      t.equal(scopes.length, 1, `${method.toUpperCase()} ${path} one scope`)
      t.ok((SCOPES as readonly string[]).includes(scopes[0]!), `${method.toUpperCase()} ${path} scope ${scopes[0]} is a known scope`)
    } else t.same(security, [], `${method.toUpperCase()} ${path} is public`)
  }
})

t.test('every error answer is application/problem+json with the Problem schema, and carries X-Request-Id', async (t) => {
  type Response = { content?: Record<string, { schema: { $ref?: string } }>; headers?: Record<string, { $ref?: string }> }
  const doc = res.json() as { paths: Record<string, Record<string, { responses: Record<string, Response> }>> }
  for (const { path, method } of operations) {
    for (const [status, response] of Object.entries(doc.paths[path]![method]!.responses)) {
      t.ok(response.headers?.['X-Request-Id'], `${method.toUpperCase()} ${path} ${status} X-Request-Id`)
      if (Number(status) < 400) continue
      t.same(Object.keys(response.content ?? {}), ['application/problem+json'], `${method.toUpperCase()} ${path} ${status} problem+json`)
      t.equal(response.content?.['application/problem+json']?.schema.$ref, '#/components/schemas/Problem')
    }
  }
})
