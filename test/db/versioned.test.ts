import t from 'tap'
import { setup } from '../helpers/app.js'

// The versioned-record behaviours every archivable resource shares (db/versioned.ts): archive is
// idempotent, restore exists, lists can show archived and live records together, and
// create-or-update by external_ref never silently updates an archived record.

const ctx = await setup({ app: { importMaxBytes: 512 * 1024 } })
const headers = await ctx.auth(
  'admin customers:read customers:write orders:read orders:write interactions:read interactions:write feedback:read feedback:write segments:read segments:write',
)

let seq = 0
const unique = (prefix: string) => `${prefix}-${process.pid}-${++seq}`

async function request(method: 'GET' | 'POST' | 'DELETE' | 'PATCH', url: string, payload?: object, extra: Record<string, string> = {}) {
  return ctx.app.inject({ method, url, headers: { ...headers, ...extra }, ...(payload ? { payload } : {}) })
}

async function newCustomer(body: Record<string, unknown> = {}): Promise<string> {
  const res = await request('POST', '/v1/customers', { name: 'Versioned', ...body })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json().id
}

const owner = await newCustomer()

interface Resource {
  name: string
  path: string
  table: string
  /** A body creating a new record (with this external_ref, when the resource has one). */
  body?(externalRef?: string): Record<string, unknown>
  /** A field the upsert changes, and its new value. */
  change?: [string, unknown]
  create(): Promise<string>
}

const resources: Resource[] = [
  {
    name: 'customers', path: '/v1/customers', table: 'customers', change: ['company', 'Acme'],
    body: (ref) => ({ name: 'Upserted', ...(ref ? { external_ref: ref } : {}) }),
    create: () => newCustomer(),
  },
  {
    name: 'orders', path: '/v1/orders', table: 'orders', change: ['notes', 'second sync'],
    body: (ref) => ({ customer_id: owner, currency: 'CNY', items: [{ product_name: 'Tea', quantity: 1, unit_price: '10.00' }], ...(ref ? { external_ref: ref } : {}) }),
    create: async () => (await request('POST', '/v1/orders', resources[1]!.body!())).json().id,
  },
  {
    name: 'interactions', path: '/v1/interactions', table: 'interactions', change: ['subject', 'second sync'],
    body: (ref) => ({ customer_id: owner, channel: 'phone', ...(ref ? { external_ref: ref } : {}) }),
    create: async () => (await request('POST', '/v1/interactions', resources[2]!.body!())).json().id,
  },
  {
    name: 'feedback', path: '/v1/feedback', table: 'feedback', change: ['subject', 'second sync'],
    body: (ref) => ({ customer_id: owner, kind: 'praise', ...(ref ? { external_ref: ref } : {}) }),
    create: async () => (await request('POST', '/v1/feedback', resources[3]!.body!())).json().id,
  },
  {
    name: 'segments', path: '/v1/segments', table: 'segments',
    create: async () => (await request('POST', '/v1/segments', { name: unique('segment'), kind: 'static' })).json().id,
  },
]

async function state(table: string, id: string) {
  const row = await ctx.db.selectFrom(table as 'orders').select(['version', 'archived_at']).where('id', '=', id).executeTakeFirstOrThrow()
  const { n } = await ctx.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n'))
    .where('entity', '=', table).where('entity_id', '=', id).executeTakeFirstOrThrow()
  return { ...row, audit: Number(n) }
}

t.test('archiving an archived record changes nothing: 204, same version, archived_at kept, no audit row', async (t) => {
  for (const r of resources) {
    const id = await r.create()
    t.equal((await request('DELETE', `${r.path}/${id}`)).statusCode, 204, r.name)
    const archived = await state(r.table, id)
    t.not(archived.archived_at, null, `${r.name} is archived`)
    const again = await request('DELETE', `${r.path}/${id}`)
    t.equal(again.statusCode, 204, `${r.name}: archiving again answers 204`)
    t.same(await state(r.table, id), archived, `${r.name}: nothing changed`)
    t.equal((await request('DELETE', `${r.path}/${id}`, undefined, { 'if-match': '"999"' })).statusCode, 412, `${r.name}: a stale If-Match is still a 412`)
  }
})

t.test('every archivable resource can be restored; restoring a live record changes nothing', async (t) => {
  for (const r of resources) {
    const id = await r.create()
    const live = await state(r.table, id)
    const noop = await request('POST', `${r.path}/${id}/restore`)
    t.equal(noop.statusCode, 200, `${r.name}: restoring a live record answers it`)
    t.same(await state(r.table, id), live, `${r.name}: restoring a live record changes nothing`)
    await request('DELETE', `${r.path}/${id}`)
    const archived = await state(r.table, id)
    t.equal((await request('POST', `${r.path}/${id}/restore`, undefined, { 'if-match': `"${archived.version - 1}"` })).statusCode, 412, `${r.name}: stale If-Match`)
    const res = await request('POST', `${r.path}/${id}/restore`, undefined, { 'if-match': `"${archived.version}"` })
    t.equal(res.statusCode, 200, `${r.name}: ${res.body}`)
    const body = res.json()
    t.equal(body.id, id)
    t.equal(body.archived_at, null, `${r.name} is live again`)
    t.equal(res.headers.etag, `"${body.version}"`)
    const restored = await state(r.table, id)
    t.same([restored.version, restored.audit], [archived.version + 1, archived.audit + 1], `${r.name}: one new version, one audit row`)
    const listed = await request('GET', `${r.path}?limit=200`)
    t.ok(listed.json().data.some((x: { id: string }) => x.id === id), `${r.name} is listed again`)
    t.equal((await request('POST', `${r.path}/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99/restore`)).statusCode, 404, `${r.name}: unknown id`)
  }
})

t.test('a customer merged into another cannot be restored', async (t) => {
  const target = await newCustomer()
  const duplicate = await newCustomer()
  t.equal((await request('POST', `/v1/customers/${target}/merge`, { duplicate_id: duplicate })).statusCode, 200)
  const before = await state('customers', duplicate)
  const res = await request('POST', `/v1/customers/${duplicate}/restore`)
  t.equal(res.statusCode, 422, res.body)
  t.match(res.json().detail, target)
  t.same(await state('customers', duplicate), before)
})

t.test('lists show live records by default, archived ones with archived=true, both with archived=all', async (t) => {
  for (const r of resources) {
    const live = await r.create()
    const gone = await r.create()
    await request('DELETE', `${r.path}/${gone}`)
    const ids = async (query: string) => {
      const res = await request('GET', `${r.path}?limit=200${query}`)
      t.equal(res.statusCode, 200, res.body)
      return new Set(res.json().data.map((x: { id: string }) => x.id))
    }
    const byDefault = await ids('')
    const archived = await ids('&archived=true')
    const all = await ids('&archived=all')
    t.ok(byDefault.has(live) && !byDefault.has(gone), `${r.name}: default`)
    t.ok(archived.has(gone) && !archived.has(live), `${r.name}: archived=true`)
    t.ok(all.has(gone) && all.has(live), `${r.name}: archived=all`)
    t.equal((await request('GET', `${r.path}?archived=maybe`)).statusCode, 400, `${r.name}: another value is a 400`)
  }
})

t.test('create-or-update by an archived record\'s external_ref: 409 naming it, or restored and updated with restore_archived=true', async (t) => {
  for (const r of resources.filter((x) => x.body)) {
    const ref = unique(r.name)
    const created = await request('POST', r.path, r.body!(ref))
    t.equal(created.statusCode, 201, created.body)
    const id = created.json().id
    await request('DELETE', `${r.path}/${id}`)
    const archived = await state(r.table, id)
    const [field, value] = r.change!
    const refused = await request('POST', r.path, { ...r.body!(ref), [field]: value })
    t.equal(refused.statusCode, 409, `${r.name}: ${refused.body}`)
    const problem = refused.json()
    t.match(problem, { code: 'external-ref-archived', type: '/problems/external-ref-archived' })
    t.match(problem.detail, id, 'the detail names the archived record')
    t.same(problem.errors.map((e: { pointer: string }) => e.pointer), ['/external_ref'])
    t.same(await state(r.table, id), archived, `${r.name}: the archived record is unchanged`)

    const restored = await request('POST', `${r.path}?restore_archived=true`, { ...r.body!(ref), [field]: value })
    t.equal(restored.statusCode, 200, `${r.name}: ${restored.body}`)
    t.equal(restored.json().id, id)
    t.equal(restored.json().archived_at, null)
    t.equal(restored.json()[field], value, `${r.name}: the update applied`)
  }
})

t.test('batches answer an archived external_ref per item, or restore it with restore_archived=true', async (t) => {
  for (const r of resources.filter((x) => x.name === 'orders' || x.name === 'interactions')) {
    const ref = unique(r.name)
    const id = (await request('POST', r.path, r.body!(ref))).json().id
    await request('DELETE', `${r.path}/${id}`)
    const count = await ctx.count(r.table)
    const refused = await request('POST', `${r.path}/batch`, { items: [r.body!(), r.body!(ref)] })
    t.equal(refused.statusCode, 409, refused.body)
    t.same(refused.json().errors.map((e: { pointer: string }) => e.pointer), ['/items/1/external_ref'])
    t.equal(await ctx.count(r.table), count, 'all or nothing')
    const restored = await request('POST', `${r.path}/batch?restore_archived=true`, { items: [r.body!(), r.body!(ref)] })
    t.equal(restored.statusCode, 200, restored.body)
    t.same(restored.json().items.map((i: { status: number }) => i.status), [201, 200])
    t.equal((await state(r.table, id)).archived_at, null)
  }
})

t.test('a merged duplicate\'s external_ref still updates the customer it was merged into', async (t) => {
  const ref = unique('merged')
  const duplicate = await newCustomer({ external_ref: ref })
  const target = await newCustomer()
  await request('POST', `/v1/customers/${target}/merge`, { duplicate_id: duplicate })
  const res = await request('POST', '/v1/customers', { name: 'Via duplicate', external_ref: ref, company: 'Forwarded' })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().id, target)
  t.equal(res.json().company, 'Forwarded')
})

t.test('an import row naming an archived customer\'s external_ref is refused by line, not imported', async (t) => {
  const ref = unique('import')
  const id = await newCustomer({ external_ref: ref })
  await request('DELETE', `/v1/customers/${id}`)
  const before = await state('customers', id)
  const upload = await ctx.app.inject({
    method: 'POST', url: '/v1/imports', headers: { ...headers, 'content-type': 'text/csv' },
    payload: `external_ref,name\n${ref},Should not land\n${unique('import')},New one\n`,
  })
  t.equal(upload.statusCode, 202, upload.body)
  let job = upload.json()
  for (let i = 0; i < 200 && job.status !== 'succeeded' && job.status !== 'failed'; i++) {
    await new Promise((r) => setTimeout(r, 25))
    job = (await request('GET', `/v1/imports/${job.id}`)).json()
  }
  t.match(job, { status: 'succeeded', rows_created: 1, rows_updated: 0, rows_rejected: 1 })
  t.same(job.errors.map((e: { line: number }) => e.line), [2])
  t.match(job.errors[0].message, id)
  t.same(await state('customers', id), before)
})
