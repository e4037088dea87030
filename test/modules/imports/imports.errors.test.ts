import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

/**
 * Import errors name the line, the column and the rule broken, never a cell's value: the refusal
 * is answered, kept in the job and in the job's audit rows, which can never be cleaned.
 */
const ctx = await setup()
const writer = await ctx.auth('customers:write customers:read pii:read', { sub: 'user:importer' })
const CANARY = 'canary-xyz'

async function upload(body: string, contentType = 'text/csv') {
  return ctx.app.inject({ method: 'POST', url: '/v1/imports', headers: { ...writer, 'content-type': contentType }, payload: body })
}

async function settle(id: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const res = await ctx.app.inject({ method: 'GET', url: `/v1/imports/${id}`, headers: writer })
    if (/"status":"(succeeded|failed)"/.test(res.body)) return res.body
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error('the import did not finish')
}

/** Everywhere the canary could have been kept: every job as the API lists it, every audit row, the staging table. */
async function traces(): Promise<string[]> {
  const found: string[] = []
  const jobs = await ctx.app.inject({ method: 'GET', url: '/v1/imports?limit=200', headers: writer })
  if (jobs.body.includes(CANARY)) found.push(`the job list: ${jobs.body}`)
  const audit = await sql<{ row: string }>`select a::text as row from audit_events a where a::text like ${'%' + CANARY + '%'}`.execute(ctx.ownerDb)
  for (const r of audit.rows) found.push(`audit: ${r.row}`)
  const staged = await sql<{ row: string }>`select s::text as row from import_customer_rows s where s::text like ${'%' + CANARY + '%'}`.execute(ctx.ownerDb)
  for (const r of staged.rows) found.push(`staging: ${r.row}`)
  return found
}

t.test('a CSV the parser refuses at a malformed cell: a 400 naming line and column, the value nowhere', async (t) => {
  const res = await upload(`name,email\nAda,${CANARY}@@bad"x\n`)
  t.equal(res.statusCode, 400, res.body)
  t.match(res.json(), { code: 'malformed-csv', detail: /line 2, column email: a quote inside an unquoted field/ })
  t.notOk(res.body.includes(CANARY), 'not in the answer')
  const failed = await ctx.db.selectFrom('imports').select(['id', 'failure']).where('status', '=', 'failed').execute()
  t.equal(failed.length, 1)
  t.match(failed[0]!.failure, /line 2, column email/, 'the job says where')
  t.notOk((await settle(failed[0]!.id)).includes(CANARY), 'not in the job (GET)')
  t.same(await traces(), [], 'not in any job, audit row or staged row')
})

t.test('a row with a malformed email is refused by line and field, the value nowhere', async (t) => {
  const res = await upload(`name,email\nGood,good@example.com\nBad,${CANARY}@@bad\n`)
  t.equal(res.statusCode, 202, res.body)
  t.notOk(res.body.includes(CANARY))
  const job = await settle(res.json().id)
  t.match(JSON.parse(job), { status: 'succeeded', rows_imported: 1, rows_rejected: 1, errors: [{ line: 3, pointer: '/email', message: 'must be an email address' }] })
  t.notOk(job.includes(CANARY), 'not in the job (GET)')
  t.same(await traces(), [])
})

t.test('a file without a header, a row of values in its place: the header error does not echo it', async (t) => {
  const res = await upload(`Ada,${CANARY}@example.com\n`)
  t.equal(res.statusCode, 400, res.body)
  t.match(res.json().errors, [{ pointer: '/header/0' }, { pointer: '/header/1' }])
  t.notOk(res.body.includes(CANARY))
  t.same(await traces(), [])
})

t.test('other parse faults and NDJSON lines that are not JSON', async (t) => {
  for (const [csv, where] of [
    [`name,email\nAda,"${CANARY}@x.com"oops\n`, /line 2.*closing quote/],
    [`name,email\nAda,${CANARY}@x.com,extra\n`, /line 2.*number of fields/],
    [`name,email\nAda,"${CANARY}@x.com\n`, /quoted field that is never closed/],
  ] as const) {
    const res = await upload(csv)
    t.equal(res.statusCode, 400, res.body)
    t.match(res.json().detail, where)
    t.notOk(res.body.includes(CANARY))
  }
  const nul = await upload(`name,email\nA\u0000B,a@example.com\nGood,good2@example.com\n`)
  t.equal(nul.statusCode, 202, nul.body)
  t.match(JSON.parse(await settle(nul.json().id)), { rows_imported: 1, rows_rejected: 1, errors: [{ line: 2, pointer: '/name', message: /NUL character/ }] })
  const nd = await upload(`{"name":"A","email":"${CANARY}@@bad"\n{"name": "B", "email": "${CANARY}@@bad"}\n`, 'application/x-ndjson')
  t.equal(nd.statusCode, 202, nd.body)
  const job = await settle(nd.json().id)
  t.match(JSON.parse(job), { rows_rejected: 2, errors: [{ line: 1, pointer: '' }, { line: 2, pointer: '/email' }] })
  t.notOk(job.includes(CANARY))
  t.same(await traces(), [])
})
