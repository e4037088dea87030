/**
 * The SDK (sdk/) driven against a real server: the app listening on a port, a real PostgreSQL,
 * real HTTP. Each domain's main flow goes through the generated operations and the hand-written
 * layer (pagination, ETag/If-Match, Idempotency-Key and retries, CrmProblem, streaming imports and
 * exports). The only thing between the SDK and the server is, in one test, a real HTTP proxy that
 * drops a connection after the server has answered, the way a network does.
 */
import t from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setup, token } from '../helpers/app.js'
import { conformingFetch } from '../helpers/conformance.js'
import { createCrmClient, CrmProblem, ifMatch, isCrmProblem, type Customer, type CustomerFilter, type CustomerImportRow } from '../../sdk/src/index.js'

const ctx = await setup()
await ctx.app.listen({ port: 0, host: '127.0.0.1' })
const baseUrl = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`

const adminToken = await token('admin pii:read')
const crm = createCrmClient({ baseUrl, token: () => adminToken, fetch: conformingFetch })
/** A second client, as another user editing the same records. */
const other = createCrmClient({ baseUrl, token: async () => token('admin pii:read', { sub: 'user:other' }), fetch: conformingFetch })

const run = `${Date.now().toString(36)}`

async function newCustomer(name: string, extra: Partial<Parameters<typeof crm.createCustomer>[0]['body']> = {}) {
  const { data } = await crm.createCustomer({ body: { name, ...extra } })
  return data
}

t.test('a customer with contact points: create, read, add, update, list', async (t) => {
  const { data: created, response } = await crm.createCustomer({
    body: {
      name: '李娜 Li Na',
      tags: ['vip'],
      contact_points: [{ kind: 'email', value: `li.na.${run}@example.com` }, { kind: 'phone', value: '+86 138 0013 8000' }],
    },
  })
  t.equal(response.status, 201)
  t.match(response.headers.get('location'), `/v1/customers/${created.id}`)
  t.equal(crm.etagOf(`/v1/customers/${created.id}`), `"${created.version}"`, 'the create\'s ETag is remembered under its Location')

  const { data: read } = await crm.getCustomer({ path: { id: created.id }, query: { include: 'contact_points' } })
  t.equal(read.name, '李娜 Li Na')
  t.same(read.contact_points?.map((c) => `${c.kind}:${c.is_primary}`).sort(), ['email:true', 'phone:true'])

  const { data: added } = await crm.createContactPoint({ path: { id: created.id }, body: { kind: 'email', value: `work.${run}@example.com`, label: 'work' } })
  t.equal(added.is_primary, false, 'the second email is not primary')
  const { data: promoted } = await crm.updateContactPoint({ path: { id: created.id, contact_point_id: added.id }, body: { is_primary: true } })
  t.equal(promoted.is_primary, true)
  const { data: points } = await crm.listContactPoints({ path: { id: created.id } })
  t.same(points.data.filter((c) => c.kind === 'email' && c.is_primary).map((c) => c.value), [`work.${run}@example.com`])

  const { data: updated } = await crm.updateCustomer({ path: { id: created.id }, body: { occupation: 'engineer', tags: ['vip', 'newsletter'] } })
  t.equal(updated.occupation, 'engineer')
  t.equal(updated.version, read.version + 1)
})

t.test('an order with items and a payment', async (t) => {
  const customer = await newCustomer('Order Buyer')
  const { data: order, response } = await crm.createOrder({
    body: {
      customer_id: customer.id,
      currency: 'CNY',
      items: [
        { product_name: 'Rice 10 kg', quantity: 2, unit_price: '25.00' },
        { product_name: 'Tea', quantity: 1, unit_price: '49.90' },
      ],
    },
  })
  t.equal(response.status, 201)
  t.equal(order.total, '99.90')
  t.equal(order.items?.length, 2)
  const { data: paid_ } = await crm.createOrderPayment({ path: { id: order.id }, body: { amount: '99.90' } })
  t.equal(paid_.payment.amount, '99.90')
  const { data: paid } = await crm.getOrder({ path: { id: order.id } })
  t.equal(paid.status, 'paid', 'paid in full')
  const { data: orders } = await crm.listCustomerOrders({ path: { id: customer.id } })
  t.same(orders.data.map((o) => o.id), [order.id])
})

t.test('paginate() walks every page of a list, and of a nested-filter search', async (t) => {
  const tag = `page-${run}`
  const ids: string[] = []
  for (let i = 0; i < 7; i++) ids.push((await newCustomer(`Paged ${i}`, { tags: [tag, ...(i % 2 ? ['vip'] : [])] })).id)
  const buyers = ids.filter((_, i) => i % 3 === 0)
  for (const id of buyers) await crm.createOrder({ body: { customer_id: id, currency: 'CNY', status: 'paid', items: [{ product_name: 'x', quantity: 1, unit_price: '1.00' }] } })

  let pages = 0
  const listed: string[] = []
  for await (const c of crm.paginate((cursor) => (pages++, crm.listCustomers({ query: { tag: [tag], limit: 2, ...(cursor ? { cursor } : {}) } })))) listed.push(c.id)
  t.same(listed.sort(), [...ids].sort(), 'every customer once')
  t.equal(pages, 4, '7 customers in pages of 2')

  // (vip or a buyer) and tagged: a nested boolean filter in the body, the cursor in the body too.
  const filter: CustomerFilter = {
    and: [
      { field: 'tags', op: 'has_any', value: [tag] },
      { or: [{ field: 'tags', op: 'has_any', value: ['vip'] }, { orders: { min_count: 1 } }] },
    ],
  }
  const found: string[] = []
  for await (const c of crm.paginate((cursor) => crm.searchCustomers({ body: { filter, limit: 1, ...(cursor ? { cursor } : {}) } }))) found.push(c.id)
  const expected = ids.filter((_, i) => i % 2 === 1 || i % 3 === 0)
  t.same(found.sort(), expected.sort())
})

t.test('If-Match: a stale ETag answers a CrmProblem with the version-mismatch code, nothing is overwritten', async (t) => {
  const c = await newCustomer('Concurrent')
  await crm.getCustomer({ path: { id: c.id } })
  t.equal(crm.etagOf(`/v1/customers/${c.id}`), `"${c.version}"`)

  // Another user changes it after we read it.
  await other.updateCustomer({ path: { id: c.id }, body: { occupation: 'their edit' }, headers: ifMatch(c) })

  const err = await crm.updateCustomer({ path: { id: c.id }, body: { occupation: 'our edit' } }).then(() => null, (e: unknown) => e)
  t.ok(err instanceof CrmProblem, 'a CrmProblem')
  const problem = err as CrmProblem
  t.equal(problem.status, 412)
  t.equal(problem.code, PRECONDITION_CODE)
  t.ok(isCrmProblem(err, PRECONDITION_CODE))
  t.match(problem.type, new RegExp(`/${PRECONDITION_CODE}$`))
  t.ok(problem.requestId, 'names the request')
  const { data: now } = await crm.getCustomer({ path: { id: c.id } })
  t.equal(now.occupation, 'their edit', 'their edit stands')

  // Having read it again, the update goes through with the fresh ETag.
  const { data: ours } = await crm.updateCustomer({ path: { id: c.id }, body: { occupation: 'our edit' } })
  t.equal(ours.occupation, 'our edit')
})

t.test('a bad request is a CrmProblem with a pointer to each bad field', async (t) => {
  const c = await newCustomer('Bad Order')
  const err = await crm.createOrder({ body: { customer_id: c.id, currency: 'CNY', items: [{ product_name: 'x', quantity: 0, unit_price: '1.00' }] } }).then(() => null, (e: unknown) => e)
  t.ok(err instanceof CrmProblem)
  const problem = err as CrmProblem
  t.equal(problem.status, 400)
  t.equal(problem.code, 'validation-failed')
  t.ok(problem.errorsAt('/items/0/quantity').length, `points at /items/0/quantity (${JSON.stringify(problem.errors)})`)
})

t.test('an idempotent retry: the connection drops after the server answered, the retry is replayed', async (t) => {
  const proxy = await dropOnce(baseUrl, (method, url) => method === 'POST' && url === '/v1/customers')
  t.teardown(() => proxy.close())
  const flaky = createCrmClient({ baseUrl: proxy.url, token: () => adminToken, retry: { baseDelayMs: 10 } })
  const ref = `idem-${run}`
  const before = await ctx.count('customers')
  const { data, response } = await flaky.createCustomer({ body: { name: 'Retried', external_ref: ref } })
  t.equal(proxy.dropped(), 1, 'the first answer was lost on the way')
  t.equal(proxy.forwarded().filter((r) => r.startsWith('POST')).length, 2, 'the SDK sent it again')
  const keys = new Set(proxy.keys())
  t.equal(keys.size, 1, 'with the same Idempotency-Key')
  t.equal(response.headers.get('idempotent-replayed'), 'true', 'the server replayed its first answer')
  t.equal(response.status, 201)
  t.equal(await ctx.count('customers'), before + 1, 'one customer created, not two')
  t.same(await byExternalRef(ref), [data.id])

  // The same key with another body is refused: the code says so.
  const [key] = keys
  const reused = await crm.createCustomer({ body: { name: 'Another' }, headers: { 'idempotency-key': key! } }).then(() => null, (e: unknown) => e)
  t.ok(reused instanceof CrmProblem && reused.status === 422, 'reusing a key with another body is a 422 problem')
})

t.test('the timeline pages through a customer\'s orders, interactions and profile changes', async (t) => {
  const c = await newCustomer('Timeline')
  await crm.createOrder({ body: { customer_id: c.id, currency: 'CNY', items: [{ product_name: 'x', quantity: 1, unit_price: '5.00' }] } })
  await crm.createInteraction({ body: { customer_id: c.id, channel: 'phone', direction: 'inbound', subject: 'hello' } })
  await crm.updateCustomer({ path: { id: c.id }, body: { occupation: 'teacher' } })
  const types: string[] = []
  for await (const item of crm.paginate((cursor) => crm.getCustomerTimeline({ path: { id: c.id }, query: { limit: 1, ...(cursor ? { cursor } : {}) } }))) types.push(item.type)
  t.ok(types.includes('order') && types.includes('interaction') && types.includes('profile_change'), `all three kinds (${types.join(', ')})`)
})

t.test('a segment export streams its members as NDJSON records and CSV rows', async (t) => {
  const members = [await newCustomer('Export One', { contact_points: [{ kind: 'email', value: `one.${run}@example.com` }] }), await newCustomer('Export "Two", Jr.')]
  const { data: segment } = await crm.createSegment({ body: { name: `export-${run}`, kind: 'static' } })
  await crm.addSegmentMembers({ path: { id: segment.id }, body: { customer_ids: members.map((m) => m.id) } })

  const records: Customer[] = []
  for await (const c of crm.exportSegment(segment.id, { format: 'ndjson' })) records.push(c)
  t.same(records.map((c) => c.id).sort(), members.map((m) => m.id).sort())
  t.same(records.map((c) => c.name).sort(), ['Export "Two", Jr.', 'Export One'].sort())

  const rows: Array<Record<string, string>> = []
  for await (const row of crm.exportSegment(segment.id, { format: 'csv' })) rows.push(row)
  t.same(rows.map((r) => r.id).sort(), members.map((m) => m.id).sort())
  t.same(rows.map((r) => r.name).sort(), ['Export "Two", Jr.', 'Export One'].sort(), 'quoted fields come back whole')

  const missing = await (async () => {
    for await (const _ of crm.exportSegment('0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99', { format: 'csv' })) return null
    return null
  })().then(() => null, (e: unknown) => e)
  t.ok(missing instanceof CrmProblem && missing.status === 404, 'an unknown segment is a 404 problem')
})

t.test('an NDJSON import from an async iterable of records really imports', async (t) => {
  const before = await ctx.count('customers')
  async function* rows(): AsyncGenerator<CustomerImportRow> {
    for (let i = 0; i < 25; i++) yield { external_ref: `imp-${run}-${i}`, name: `Imported ${i}`, tags: ['imported'], email: `imp.${run}.${i}@example.com` }
  }
  const job = await crm.importCustomers(rows(), { format: 'ndjson', pollIntervalMs: 50 })
  t.equal(job.status, 'succeeded', JSON.stringify(job.errors))
  t.equal(job.format, 'ndjson')
  t.equal(job.rows_received, 25)
  t.equal(job.rows_imported, 25)
  t.equal(await ctx.count('customers'), before + 25, 'the rows are customers now')
  t.same(await byExternalRef(`imp-${run}-7`, 'name'), ['Imported 7'])

  // A CSV upload as a byte stream; re-importing a known external_ref updates, it does not duplicate.
  const csv = `external_ref,name,tags\nimp-${run}-7,"Imported, seven",imported|again\nimp-${run}-new,New one,\n`
  const stream = new Blob([csv]).stream()
  const again = await crm.importCustomers(stream, { format: 'csv', pollIntervalMs: 50 })
  t.equal(again.status, 'succeeded', JSON.stringify(again.errors))
  t.equal(again.rows_created, 1)
  t.equal(again.rows_updated, 1)
  t.same(await byExternalRef(`imp-${run}-7`, 'name'), ['Imported, seven'])
  t.equal(await ctx.count('customers'), before + 26)
})

t.test('an import the server refuses is a CrmProblem', async (t) => {
  const err = await crm.importCustomers(['name,unknown_column\nx,y\n'], { format: 'csv' }).then(() => null, (e: unknown) => e)
  t.ok(err instanceof CrmProblem && err.status === 400, `a 400 problem (${String(err)})`)
})

/** Ids (or names) of the customers with this external_ref, found with the search filter. */
async function byExternalRef(ref: string, field: 'id' | 'name' = 'id'): Promise<string[]> {
  const { data } = await crm.searchCustomers({ body: { filter: { field: 'external_ref', op: 'eq', value: ref } } })
  return data.data.map((c) => c[field])
}

/** The code the server gives an If-Match mismatch. */
const PRECONDITION_CODE = 'version-mismatch'

/**
 * A real HTTP proxy to target that forwards every request and, the first time match() holds,
 * lets the server answer and then closes the client's connection instead of passing the answer on.
 */
async function dropOnce(target: string, match: (method: string, url: string) => boolean) {
  let dropped = 0
  const forwarded: string[] = []
  const keys: string[] = []
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string' && !['host', 'connection', 'content-length', 'keep-alive'].includes(name)) headers.set(name, value)
    }
    const method = req.method ?? 'GET'
    forwarded.push(`${method} ${req.url}`)
    if (typeof req.headers['idempotency-key'] === 'string') keys.push(req.headers['idempotency-key'])
    const upstream = await conformingFetch(target + req.url, { method, headers, body: chunks.length ? Buffer.concat(chunks) : null })
    const body = Buffer.from(await upstream.arrayBuffer())
    if (dropped === 0 && match(method, req.url ?? '')) {
      dropped++
      req.socket.destroy()
      return
    }
    const out: Record<string, string> = {}
    upstream.headers.forEach((value, name) => {
      if (!['transfer-encoding', 'connection', 'keep-alive', 'content-length'].includes(name)) out[name] = value
    })
    res.writeHead(upstream.status, out).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dropped: () => dropped,
    forwarded: () => forwarded,
    keys: () => keys,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
