import t from 'tap'
import { Writable } from 'node:stream'
import { readFileSync } from 'node:fs'
import { sql } from 'kysely'
import type { FastifyInstance } from 'fastify'
import { loggerOptions } from '../../src/app.js'
import { PII_CLASSES, PII_FIELDS, PII_REPRESENTATIONS, planHas, planOf, representationFields } from '../../src/lib/pii.js'
import { setup } from '../helpers/app.js'

/**
 * The personal-data presenter (plugins/pii.ts) on every route that answers personal data: a
 * token without pii:read sees it masked with x-pii-masked: true, a token with it sees it in the
 * clear; both answers are Cache-Control: no-store. And whatever the requests, the log never
 * holds a personal value.
 */
const logLines: string[] = []
const logStream = new Writable({
  write(chunk: Buffer, _encoding, done) {
    logLines.push(chunk.toString())
    done()
  },
})

/** A test route that fails the way a server bug does, logging what it was working on. */
async function failing(app: FastifyInstance) {
  app.post('/test/pii-failure', { config: { scope: 'customers:write' } }, async (request) => {
    const body = request.body as { customer_id: string; email: string }
    // A real PostgreSQL error whose detail quotes the value: another primary email like it.
    const err = await sql`insert into contact_points (customer_id, kind, value, value_normalized, is_primary)
      values (${body.customer_id}, 'email', ${body.email}, ${body.email.toLowerCase()}, true)`.execute(request.db).then(() => undefined, (e: unknown) => e)
    request.log.error({ err, customer: { primary_email: body.email, birthday: '1985-01-02' }, contact: { value: body.email } }, 'could not add the contact point')
    throw new Error('contact point write failed')
  })
}

const ctx = await setup({ plugins: [failing], app: { logger: { ...(loggerOptions('info') as object), stream: logStream } } })
const SCOPES = 'customers:read customers:write segments:read segments:write audit:read events:read'
const masked = await ctx.auth(SCOPES)
const clear = await ctx.auth(`${SCOPES} pii:read`)

let n = 0
const secrets: string[] = []
/** A new person's personal data; every value is remembered as a secret no masked answer may hold. */
function person() {
  n++
  const p = {
    name: `Masked Person ${n}`, birthday: `1985-01-${String(n).padStart(2, '0')}`,
    email: `secret.person${n}@example.org`, phone: `+44 20 7946 ${String(1000 + n)}`, line1: `${n} Downing Street`, postal: `SW1A ${n}AA`,
  }
  secrets.push(p.birthday, `secret.person${n}`, p.phone, p.phone.replace(/ /g, ''), p.line1, p.postal)
  return {
    name: p.name, birthday: p.birthday,
    contact_points: [
      { kind: 'email', value: p.email },
      { kind: 'phone', value: p.phone },
      { kind: 'address', address: { line1: p.line1, city: 'London', postal_code: p.postal, country: 'GB' } },
    ],
  }
}

async function newCustomer(): Promise<string> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: clear, payload: person() })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json().id
}

const id = await newCustomer()
const segment = (await ctx.app.inject({ method: 'POST', url: '/v1/segments', headers: clear, payload: { name: 'Hand-picked', kind: 'static' } })).json()
await ctx.app.inject({ method: 'POST', url: `/v1/segments/${segment.id}/members`, headers: clear, payload: { customer_ids: [id] } })
const contactPointId = (await ctx.app.inject({ url: `/v1/customers/${id}/contact-points`, headers: clear })).json().data[0].id
const auditEventId = (await ctx.app.inject({ url: `/v1/audit-events?entity_id=${id}`, headers: clear })).json().data[0].id

interface Request { method?: 'GET' | 'POST' | 'PATCH'; url: string; payload?: Record<string, unknown> }
type Call = (headers: Record<string, string>) => Request | Promise<Request>

/** Every operation that answers masked personal data, by operationId: a request to make as each token. */
const CALLS: Record<string, Call> = {
  createCustomer: () => ({ method: 'POST', url: '/v1/customers', payload: person() }),
  getCustomer: () => ({ url: `/v1/customers/${id}?include=contact_points` }),
  listCustomers: () => ({ url: '/v1/customers?include=contact_points&limit=200' }),
  searchCustomers: () => ({ method: 'POST', url: '/v1/customers/search', payload: { limit: 200 } }),
  updateCustomer: () => ({ method: 'PATCH', url: `/v1/customers/${id}`, payload: { job_title: `Title ${n++}` } }),
  restoreCustomer: async () => {
    const other = await newCustomer()
    await ctx.app.inject({ method: 'DELETE', url: `/v1/customers/${other}`, headers: clear })
    return { method: 'POST', url: `/v1/customers/${other}/restore` }
  },
  mergeCustomers: async () => ({ method: 'POST', url: `/v1/customers/${await newCustomer()}/merge`, payload: { duplicate_id: await newCustomer() } }),
  listContactPoints: () => ({ url: `/v1/customers/${id}/contact-points` }),
  createContactPoint: () => {
    const phone = `+86 138 0000 ${String(1000 + n++)}`
    secrets.push(phone)
    return { method: 'POST', url: `/v1/customers/${id}/contact-points`, payload: { kind: 'phone', value: phone } }
  },
  updateContactPoint: () => ({ method: 'PATCH', url: `/v1/customers/${id}/contact-points/${contactPointId}`, payload: { verified: n++ % 2 === 0 } }),
  previewSegment: () => ({ method: 'POST', url: '/v1/segments/preview', payload: { filter: { field: 'name', op: 'contains', value: 'Masked Person' }, limit: 200 } }),
  listSegmentMembers: () => ({ url: `/v1/segments/${segment.id}/members` }),
  exportSegmentMembers: () => ({ url: `/v1/segments/${segment.id}/export?format=ndjson` }),
  listAuditEvents: () => ({ url: '/v1/audit-events?limit=200' }),
  getAuditEvent: () => ({ url: `/v1/audit-events/${auditEventId}` }),
  listEvents: () => ({ url: '/v1/events?limit=200' }),
}

const spec = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'))

t.test('the registry names real columns and real API fields', async (t) => {
  const columns = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns where table_schema = current_schema()`.execute(ctx.db)
  const known = new Set(columns.rows.map((c) => `${c.table_name}.${c.column_name}`))
  for (const [table, fields] of Object.entries(PII_FIELDS)) {
    for (const name of Object.keys(fields)) t.ok(known.has(`${table}.${name}`), `column ${table}.${name}`)
  }
  for (const [id, { derived }] of Object.entries(PII_REPRESENTATIONS)) {
    const properties = spec.components.schemas[id]?.properties ?? {}
    // Not every personal column is shown (value_normalized is not), but each representation shows some.
    t.ok(Object.keys(representationFields(id)!).some((name) => properties[name]), `${id} in the contract shows personal fields`)
    for (const name of Object.keys(derived ?? {})) t.ok(properties[name], `${id}.${name} in the contract`)
  }
})

/** The contract's operations whose 2xx answers carry masked fields, as the presenter finds them. */
function maskedOperations(): string[] {
  // The contract's refs (#/components/schemas/X) as the app's (X#).
  const local = (node: unknown): unknown => JSON.parse(JSON.stringify(node).replace(/"#\/components\/schemas\/([^"]+)"/g, '"$1#"'))
  const resolve = (name: string) => local(spec.components.schemas[name])
  const ops: string[] = []
  for (const methods of Object.values(spec.paths) as Array<Record<string, { operationId: string; responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>) {
    for (const op of Object.values(methods)) {
      const carries = Object.entries(op.responses).some(([status, r]) => /^2/.test(status) &&
        Object.values(r.content ?? {}).some((c) => planHas(planOf(local(c.schema), resolve), (cls) => PII_CLASSES[cls].masked)))
      if (carries) ops.push(op.operationId)
    }
  }
  return ops
}

t.test('every operation whose answer carries masked fields is exercised here', async (t) => {
  // Streams declare what they carry in the route (config.piiStream), not in the contract.
  t.same([...maskedOperations(), 'exportSegmentMembers'].sort(), Object.keys(CALLS).sort())
})

for (const [operationId, call] of Object.entries(CALLS)) {
  t.test(`${operationId}: masked without pii:read, clear with it, never stored by a cache`, async (t) => {
    const hidden = await ctx.app.inject({ ...(await call(masked)), headers: masked })
    t.ok(hidden.statusCode < 300, `${hidden.statusCode} ${hidden.body.slice(0, 200)}`)
    t.equal(hidden.headers['x-pii-masked'], 'true')
    t.equal(hidden.headers['cache-control'], 'no-store')
    for (const s of secrets) t.notOk(hidden.body.includes(s), `does not contain ${s}`)
    t.match(hidden.body, /\*\*\*/, 'shows masks')

    const shown = await ctx.app.inject({ ...(await call(clear)), headers: clear })
    t.ok(shown.statusCode < 300, `${shown.statusCode} ${shown.body.slice(0, 200)}`)
    t.notOk(shown.headers['x-pii-masked'])
    t.equal(shown.headers['cache-control'], 'no-store')
    t.ok(secrets.some((s) => shown.body.includes(s)), 'shows personal data')
    t.notMatch(shown.body, /"\*\*\*/, 'shows no masks')
  })
}

t.test('masked fields keep their type: birthday is null, an address keeps its country', async (t) => {
  const c = (await ctx.app.inject({ url: `/v1/customers/${id}?include=contact_points`, headers: masked })).json()
  t.equal(c.birthday, null)
  t.match(c.primary_email, /^s\*\*\*@\*\*\*$/)
  t.match(c.primary_phone, /^\*\*\*\d\d$/)
  t.match(c.contact_points.find((p: { kind: string }) => p.kind === 'address'), { value: '***', address: { line1: '***', city: '***', country: 'GB' } })
  const csv = await ctx.app.inject({ url: `/v1/segments/${segment.id}/export?format=csv`, headers: masked })
  t.equal(csv.headers['x-pii-masked'], 'true')
  t.match(csv.body, /,s\*\*\*@\*\*\*,\*\*\*\d\d,/, 'the CSV export masks too')
})

t.test('a replayed Idempotency-Key answer is masked and not cacheable like the first', async (t) => {
  const headers = { ...masked, 'idempotency-key': 'pii-replay-1' }
  const payload = person()
  const first = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers, payload })
  const again = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers, payload })
  t.equal(first.statusCode, 201)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.body, first.body)
  for (const res of [first, again]) {
    t.equal(res.headers['x-pii-masked'], 'true')
    t.equal(res.headers['cache-control'], 'no-store')
    t.notOk(res.body.includes(payload.birthday))
  }
})

t.test('personal data that is never masked (names, notes) is still not cacheable; errors carry no PII headers', async (t) => {
  const interaction = await ctx.app.inject({ url: '/v1/interactions', headers: await ctx.auth('interactions:read') })
  t.equal(interaction.statusCode, 200)
  t.equal(interaction.headers['cache-control'], 'no-store')
  t.notOk(interaction.headers['x-pii-masked'], 'nothing there is masked')
  const segments = await ctx.app.inject({ url: '/v1/segments', headers: masked })
  t.notOk(segments.headers['cache-control'], 'a list of segments carries no personal data')
  const missing = await ctx.app.inject({ url: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: masked })
  t.equal(missing.statusCode, 404)
  t.notOk(missing.headers['x-pii-masked'])
})

t.test('the log never holds a personal value, even when a failure logs the record it was writing', async (t) => {
  const res = await ctx.app.inject({ method: 'POST', url: '/test/pii-failure', headers: clear, payload: { customer_id: id, email: 'secret.person1@example.org' } })
  t.equal(res.statusCode, 500)
  const log = logLines.join('')
  t.match(log, /could not add the contact point/, 'the failure was logged')
  t.match(log, /duplicate key value violates unique constraint/, 'with the database error')
  t.match(log, /\[redacted\]/)
  t.ok(logLines.length > Object.keys(CALLS).length, `every request above was logged (${logLines.length} lines)`)
  for (const s of [...secrets, 'example.org']) t.notOk(log.includes(s), `the log does not contain ${s}`)
})
