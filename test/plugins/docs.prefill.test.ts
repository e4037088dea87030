import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../helpers/app.js'
import { prefilledQuery, uiOperations, type UiOperation } from '../helpers/swagger-ui.js'
import { seedDatabase } from '../../scripts/seed/load.js'

/**
 * Swagger UI's "Try it out" on every GET with query parameters, as an operator would press
 * Execute without typing: the pre-filled form must find the seeded data (issue 12, item 7). Path
 * parameters are not pre-filled (the UI asks for them): they get ids of seeded records.
 */
const ctx = await setup()
const admin = await ctx.auth('admin pii:read')
await seedDatabase({ url: ctx.url, customers: 120, seed: 12 })

// What the seed does not make: a static segment with members (and so membership history), an
// import job, audited writes.
const one = async <T>(q: ReturnType<typeof sql<T>>) => (await q.execute(ctx.db)).rows[0]!
const busy = await one(sql<{ id: string }>`
  select c.id from customers c
  where exists (select 1 from orders o where o.customer_id = c.id) and exists (select 1 from interactions i where i.customer_id = c.id)
    and exists (select 1 from feedback f where f.customer_id = c.id)
  order by c.id limit 1`)
const ids = (await sql<{ id: string }>`select id from customers order by id limit 30`.execute(ctx.db)).rows.map((r) => r.id)
const segment = await ctx.app.inject({ method: 'POST', url: '/v1/segments', headers: admin, payload: { name: 'Docs try-it-out', kind: 'static' } })
if (segment.statusCode !== 201) throw new Error(segment.body)
const segmentId = (segment.json() as { id: string }).id
const added = await ctx.app.inject({ method: 'POST', url: `/v1/segments/${segmentId}/members`, headers: admin, payload: { customer_ids: [...new Set([...ids, busy.id])] } })
if (added.statusCode !== 200) throw new Error(added.body)
const imported = await ctx.app.inject({ method: 'POST', url: '/v1/imports', headers: { ...admin, 'content-type': 'text/csv' }, payload: 'name,email\nDocs Import,docs.import@example.com\n' })
if (imported.statusCode !== 202) throw new Error(imported.body)

/**
 * A path parameter's value: the customer with orders, interactions and feedback, the static
 * segment, else the first record the parent collection lists (`/v1/things/{id}/...` takes the
 * first of `GET /v1/things`); undefined when that collection is empty here.
 */
async function pathFor(op: UiOperation): Promise<string | undefined> {
  let path = op.path
  for (const [, name] of op.path.matchAll(/\{(\w+)\}/g)) {
    const prefix = path.slice(0, path.indexOf(`{${name}}`) - 1)
    let value = prefix === '/v1/customers' ? busy.id : prefix === '/v1/segments' ? segmentId : undefined
    if (!value) {
      const parent = await ctx.app.inject({ method: 'GET', url: prefix, headers: admin })
      value = parent.statusCode === 200 ? (parent.json() as { data?: Array<{ id?: string }> }).data?.[0]?.id : undefined
    }
    if (!value) return undefined
    path = path.replace(`{${name}}`, value)
  }
  return path
}

/** The domains this file seeds: each of their GETs must find data (others are compared with their bare request only). */
const SEEDED = /^\/v1\/(customers|orders|interactions|feedback|segments|analytics|audit-events|imports)(\/|$)/

/** Something came back: a page with items, a CSV or NDJSON with a data row, or a report with a count above zero. */
function found(contentType: string, body: string): boolean {
  if (!contentType.includes('json') || contentType.includes('ndjson')) return body.trim().split('\n').length >= (contentType.includes('csv') ? 2 : 1)
  const value = JSON.parse(body) as unknown
  const walk = (v: unknown, key = ''): boolean => {
    if (Array.isArray(v)) return v.length > 0 && (key === 'data' || v.some((x) => walk(x)))
    if (v && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>)
      if ('data' in (v as object)) return walk((v as { data: unknown }).data, 'data')
      return entries.some(([k, x]) => walk(x, k))
    }
    return typeof v === 'number' && v > 0 && /count|customers|members|total|size|responses|n$/.test(key)
  }
  return walk(value)
}

async function tryItOut(doc: Record<string, unknown>) {
  const gets = uiOperations(doc).filter((op) => op.method === 'GET' && op.parameters.some((p) => p.in === 'query'))
  const results: Array<{ op: UiOperation; url: string; status: number; found: boolean; body: string; bare?: { status: number; found: boolean } }> = []
  const send = async (url: string) => {
    const res = await ctx.app.inject({ method: 'GET', url, headers: admin })
    return { status: res.statusCode, found: res.statusCode === 200 && found(String(res.headers['content-type']), res.body), body: res.body }
  }
  for (const op of gets) {
    const path = await pathFor(op)
    if (path === undefined) {
      results.push({ op, url: op.path, status: 0, found: false, body: 'no record to fill the path with' })
      continue
    }
    const query = prefilledQuery(op)
    const url = path + (query ? `?${query}` : '')
    // The same operation with nothing but the path: what the data holds for it.
    results.push({ op, url, ...(await send(url)), bare: query ? await send(path) : undefined })
  }
  return results
}

const uiDoc = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json() as Record<string, unknown>
const contract = (await ctx.app.inject({ method: 'GET', url: '/openapi.json' })).json() as Record<string, unknown>

t.test('every GET with query parameters, executed as the UI pre-fills it, finds the seeded data', async (t) => {
  const results = await tryItOut(uiDoc)
  t.ok(results.length >= 20, `${results.length} GET operations with query parameters`)
  for (const r of results) {
    const label = `${r.op.operationId}: GET ${r.url}`
    if (SEEDED.test(r.op.path)) {
      t.equal(r.status, 200, `${label} answers 200`)
      t.ok(r.found, `${label} is not empty`, { body: r.body.slice(0, 400) })
    } else if (r.bare?.found) {
      t.ok(r.found, `${label} is not empty, as the bare request is not`, { body: r.body.slice(0, 400) })
    } else {
      t.comment(`${label}: not seeded here (${r.status}), compared with its bare request only`)
      t.equal(r.status, r.bare?.status ?? r.status, `${label} answers as the bare request does`)
    }
  }
  // The contract's own examples, as another tool might pre-fill them: a figure for the notes, not a rule.
  const raw = await tryItOut(contract)
  t.comment(`with the contract's examples pre-filled, ${raw.filter((r) => !r.found).length} of ${raw.length} come back empty: ${raw.filter((r) => !r.found).map((r) => r.op.operationId).join(', ')}`)
})

t.test('the UI pre-fills parameters only with defaults: no example is sent', async (t) => {
  const contractOps = new Map(uiOperations(contract).map((op) => [`${op.method} ${op.path}`, op]))
  for (const op of uiOperations(uiDoc)) {
    for (const p of op.parameters) {
      if (p.prefilled === undefined) continue
      const original = contractOps.get(`${op.method} ${op.path}`)?.parameters.find((q) => q.name === p.name && q.in === p.in)
      t.ok(p.in === 'query', `${op.operationId}: only query parameters are pre-filled (${p.in} ${p.name})`)
      t.same(p.prefilled, defaultOf(contract, op, p.name), `${op.operationId}: ${p.name} pre-filled with its default`, { contract: original?.prefilled })
    }
  }
})

function defaultOf(doc: Record<string, unknown>, op: UiOperation, name: string): unknown {
  const item = (doc.paths as Record<string, Record<string, { parameters?: Array<{ name: string; schema?: { default?: unknown } }> }>>)[op.path]!
  return item[op.method.toLowerCase()]?.parameters?.find((p) => p.name === name)?.schema?.default
}
