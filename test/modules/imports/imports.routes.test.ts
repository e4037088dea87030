import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup({ app: { importMaxBytes: 512 * 1024 } })
const writer = await ctx.auth('customers:write customers:read pii:read', { sub: 'user:importer' })
const reader = await ctx.auth('customers:read')

type Job = { id: string; status: string; rows_received: number; rows_imported: number; rows_created: number; rows_updated: number; rows_rejected: number; errors: Array<{ line: number; pointer: string; message: string }>; failure: string | null; request_id: string; actor: string }

async function upload(body: string, contentType = 'text/csv', headers = writer) {
  return ctx.app.inject({ method: 'POST', url: '/v1/imports', headers: { ...headers, 'content-type': contentType }, payload: body })
}

/** Polls the job until the merge has finished. */
async function settle(id: string): Promise<Job> {
  for (let i = 0; i < 200; i++) {
    const res = await ctx.app.inject({ method: 'GET', url: `/v1/imports/${id}`, headers: reader })
    const job = res.json() as Job
    if (job.status === 'succeeded' || job.status === 'failed') return job
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error('the import did not finish')
}

const customersByRef = async (refs: string[]) =>
  ctx.db.selectFrom('customers').selectAll().where('external_ref', 'in', refs).orderBy('external_ref').execute()

t.test('a CSV import answers 202 with a job to poll, imports the valid rows and lists the refused ones by line', async (t) => {
  const before = await ctx.count('customers')
  const csv = [
    'external_ref,name,gender,birthday,tags,email,phone',
    'csv-1,Ada Lovelace,female,1815-12-10,vip|Early,ada@example.com,+44 20 7946 0000',
    'csv-2,"Zhang, Wei",male,,,wei@example.com,',
    'csv-3,Bad Email,,,,not-an-email,',
    'csv-4,Bad Gender,robot,,,,',
    'csv-5,Олег Петров,,,,,8 (912) 345-67-89',
  ].join('\n')
  const res = await upload(csv)
  t.equal(res.statusCode, 202, res.body)
  const accepted = res.json() as Job
  t.equal(res.headers.location, `/v1/imports/${accepted.id}`)
  t.equal(accepted.rows_received, 5)
  const job = await settle(accepted.id)
  t.match(job, { status: 'succeeded', rows_received: 5, rows_imported: 3, rows_created: 3, rows_updated: 0, rows_rejected: 2, failure: null, actor: 'user:importer' })
  t.same(job.errors.map((e) => [e.line, e.pointer]), [[4, '/email'], [5, '/gender']])
  t.equal(await ctx.count('customers'), before + 3)
  const rows = await customersByRef(['csv-1', 'csv-2', 'csv-5'])
  t.same(rows.map((r) => r.name), ['Ada Lovelace', 'Zhang, Wei', 'Олег Петров'])
  t.same(rows[0]!.tags, ['vip', 'early'], 'tags split on | and normalised like the API does')
  t.equal(rows[0]!.birthday, '1815-12-10')
  const get = await ctx.app.inject({ method: 'GET', url: `/v1/customers/${rows[0]!.id}`, headers: writer })
  t.match(get.json(), { primary_email: 'ada@example.com', primary_phone: '+44 20 7946 0000' })
  const phone = await ctx.db.selectFrom('contact_points').select('value_normalized').where('customer_id', '=', rows[2]!.id).executeTakeFirstOrThrow()
  t.equal(phone.value_normalized, '89123456789')
  const audit = await ctx.db.selectFrom('audit_events').select(['entity', 'action', 'actor']).where('request_id', '=', accepted.request_id).execute()
  t.equal(audit.filter((a) => a.entity === 'customers' && a.action === 'insert').length, 3, 'one audit row per imported customer')
  t.equal(audit.filter((a) => a.entity === 'contact_points' && a.action === 'insert').length, 4)
  t.ok(audit.some((a) => a.entity === 'imports' && a.action === 'insert'), 'the job itself is audited')
  t.ok(audit.every((a) => a.actor === 'user:importer'), 'audit rows name the uploader')
  t.equal(await ctx.db.selectFrom('import_customer_rows').select('line').execute().then((r) => r.length), 0, 'staging is emptied')
})

t.test('NDJSON upserts by external_ref, keeps absent fields, and refuses conflicting rows', async (t) => {
  const existing = await ctx.app.inject({
    method: 'POST', url: '/v1/customers', headers: writer,
    payload: { external_ref: 'nd-1', name: 'Old Name', company: 'Old Co', contact_points: [{ kind: 'email', value: 'old@example.com' }] },
  })
  t.equal(existing.statusCode, 201)
  const other = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: writer, payload: { name: 'Taken', contact_points: [{ kind: 'email', value: 'taken@example.com' }] } })
  t.equal(other.statusCode, 201)
  const lines = [
    JSON.stringify({ external_ref: 'nd-1', name: 'New Name', email: 'new@example.com' }),
    '',
    JSON.stringify({ external_ref: 'nd-2', name: 'Second' }),
    JSON.stringify({ external_ref: 'nd-2', name: 'Second again' }),
    JSON.stringify({ external_ref: 'nd-3', name: 'Thief', email: 'TAKEN@example.com' }),
    '{not json',
    JSON.stringify({ external_ref: 'nd-4', name: 'Extra', id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11' }),
  ].join('\n')
  const res = await upload(lines, 'application/x-ndjson')
  t.equal(res.statusCode, 202, res.body)
  const job = await settle((res.json() as Job).id)
  t.match(job, { status: 'succeeded', rows_received: 6, rows_created: 1, rows_updated: 1, rows_imported: 2, rows_rejected: 4 })
  t.same(job.errors.map((e) => [e.line, e.pointer]), [[4, ''], [5, ''], [6, ''], [7, '/id']])
  t.match(job.errors[0]!.message, /repeats line 3/)
  t.match(job.errors[1]!.message, /primary email of another customer/)
  const [nd1] = await customersByRef(['nd-1'])
  t.match(nd1, { name: 'New Name', company: 'Old Co' }, 'updated, absent fields kept')
  const emails = await ctx.db.selectFrom('contact_points').select(['value', 'is_primary']).where('customer_id', '=', nd1!.id).orderBy('value').execute()
  t.same(emails, [{ value: 'new@example.com', is_primary: true }, { value: 'old@example.com', is_primary: false }], 'the imported email becomes primary')
  t.same((await customersByRef(['nd-2', 'nd-3', 'nd-4'])).map((r) => r.name), ['Second'])
})

t.test('a bad header or malformed CSV is a 400 that imports nothing', async (t) => {
  const before = await ctx.count('customers')
  const unknown = await upload('name,shoe_size\nA,38\n')
  t.equal(unknown.statusCode, 400)
  t.equal(unknown.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.same(unknown.json().errors.map((e: { pointer: string }) => e.pointer), ['/header/1'])
  const noName = await upload('external_ref\nx\n')
  t.equal(noName.statusCode, 400)
  const broken = await upload('name,email\n"Unclosed,a@example.com\nB,b@example.com\n')
  t.equal(broken.statusCode, 400, broken.body)
  // csv-parse's INVALID_OPENING_QUOTE has no CSV_ prefix; it was a 500 (found by test/security/fuzz.test.ts).
  const openingQuote = await upload('name\n x"y\n')
  t.equal(openingQuote.statusCode, 400, openingQuote.body)
  t.match(openingQuote.json().detail, /^The upload could not be read as CSV at line 2, column name: a quote inside an unquoted field/)
  t.equal(await ctx.count('customers'), before, 'nothing imported')
  const failed = await ctx.db.selectFrom('imports').select('status').where('status', '=', 'failed').execute()
  t.equal(failed.length, 4, 'each refused upload is a failed job')
  t.equal(await ctx.db.selectFrom('import_customer_rows').select('line').execute().then((r) => r.length), 0)
})

t.test('too large uploads are 413; other media types 415; scopes apply', async (t) => {
  const before = await ctx.count('customers')
  const big = 'name\n' + 'x'.repeat(100).concat('\n').repeat(6000)
  const res = await upload(big)
  t.equal(res.statusCode, 413, res.body)
  t.equal(await ctx.count('customers'), before)
  t.equal((await upload('{"name":"A"}', 'application/json')).statusCode, 415)
  const csvToCustomers = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: { ...writer, 'content-type': 'text/csv' }, payload: 'name\nA\n' })
  t.equal(csvToCustomers.statusCode, 415, 'CSV is only read by imports')
  t.equal((await upload('name\nA\n', 'text/csv', reader)).statusCode, 403)
  t.equal((await ctx.app.inject({ method: 'POST', url: '/v1/imports', headers: { 'content-type': 'text/csv' }, payload: 'name\nA\n' })).statusCode, 401)
  t.equal((await ctx.app.inject({ method: 'GET', url: '/v1/imports/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: reader })).statusCode, 404)
})

t.test('thousands of rows stream through and are listed newest first', async (t) => {
  const n = 3000
  const rows = Array.from({ length: n }, (_, i) => JSON.stringify({ external_ref: `bulk-${i}`, name: `Bulk ${i}`, email: `bulk${i}@example.com` }))
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/imports', headers: { ...writer, 'content-type': 'application/x-ndjson' }, payload: rows.join('\n') })
  t.equal(res.statusCode, 202, res.body)
  const job = await settle((res.json() as Job).id)
  t.match(job, { status: 'succeeded', rows_created: n, rows_rejected: 0 })
  const count = await ctx.db.selectFrom('customers').select((eb) => eb.fn.countAll<number>().as('n')).where('external_ref', 'like', 'bulk-%').executeTakeFirstOrThrow()
  t.equal(Number(count.n), n)
  const list = await ctx.app.inject({ method: 'GET', url: '/v1/imports?limit=2', headers: reader })
  t.equal(list.statusCode, 200)
  t.equal(list.json().data[0].id, job.id)
  t.ok(list.json().next_cursor)
})
