/**
 * `npx tsx bench/search-q-explain.ts --database-url postgres://…/crm_bench_1000000 [--repeat 5] [--plans]`
 *
 * Where the time of a `q` search goes: for each bench term (bench/fixtures.ts) and each sort the
 * list allows, runs listCustomersByTerm as GET /v1/customers?q=…&limit=50 does (with pii:read, so email
 * and phone match too), captures the SQL it sends, then runs that SQL under EXPLAIN (ANALYZE,
 * BUFFERS) `repeat` times and reports the executor's time (min/median/max, summed over the
 * statements of one request) and the buffers of the first run. The second page (after the first
 * page's cursor) is measured too for the default sort. Read-only: nothing is written.
 * `--plans` prints each first plan as text; `--walk-rows 0` measures the gathering path alone.
 */
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { Kysely, PostgresDialect, sql, type CompiledQuery } from 'kysely'
import { createPool } from '../src/db/database.js'
import { scopedPool } from '../src/db/scope.js'
import type { Database } from '../src/db/rows.js'
import { pageRequest, parseSort, toPage } from '../src/lib/pagination.js'
import { CUSTOMER_SORTS } from '../src/modules/customers/customers.schemas.js'
import { listCustomersByTerm } from '../src/modules/customers/customers.search.repository.js'
import { Q_SAMPLES } from './fixtures.js'

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    repeat: { type: 'string', default: '5' },
    sorts: { type: 'string', default: '-created_at;created_at;-updated_at;name;-name;name,-created_at' },
    terms: { type: 'string' },
    plans: { type: 'boolean', default: false },
    /** 0 takes the gathering path alone (the design before the bounded walk). */
    'walk-rows': { type: 'string' },
  },
})
const url = values['database-url']
if (!url) throw new Error('--database-url is required (a database filled by npm run seed)')
const repeat = Number(values.repeat)
const sorts = values.sorts.split(';')
const terms = values.terms ? values.terms.split(';') : Q_SAMPLES
const walkRows = values['walk-rows'] === undefined ? undefined : Number(values['walk-rows'])

let captured: CompiledQuery[] | undefined
const db = new Kysely<Database>({
  dialect: new PostgresDialect({ pool: scopedPool(createPool({ connectionString: url, max: 1, statementTimeoutMs: 60_000 })) }),
  log: (event) => {
    if (event.level === 'query') captured?.push(event.query)
  },
})

interface Explained { ms: number; hit: number; read: number; text: string }

async function explain(q: CompiledQuery, text: boolean): Promise<Explained> {
  const json = await sql.raw<{ 'QUERY PLAN': unknown }>(`explain (analyze, buffers, format json) ${q.sql}`).compile(db)
  const r = await db.executeQuery<{ 'QUERY PLAN': Array<{ 'Execution Time': number; 'Planning Time': number; Plan: Record<string, number> }> }>({ ...json, parameters: q.parameters })
  const top = r.rows[0]!['QUERY PLAN'][0]!
  let planText = ''
  if (text) {
    const t = await db.executeQuery<{ 'QUERY PLAN': string }>({ ...json, sql: `explain (analyze, buffers) ${q.sql}`, parameters: q.parameters })
    planText = t.rows.map((row) => row['QUERY PLAN']).join('\n')
  }
  return { ms: top['Execution Time'] + top['Planning Time'], hit: top.Plan['Shared Hit Blocks'] ?? 0, read: top.Plan['Shared Read Blocks'] ?? 0, text: planText }
}

/** Runs one page and returns its statements and the cursor of the next page. */
async function capture(term: string, sort: string, cursor?: string) {
  const wanted = pageRequest({ cursor, limit: 50 }, parseSort(sort, CUSTOMER_SORTS, '-created_at'))
  const statements: CompiledQuery[] = []
  captured = statements
  const rows = await listCustomersByTerm(db, { q: term, qContacts: true, archived: 'false' }, wanted, walkRows)
  captured = undefined
  const page = toPage(rows, wanted, (r) => r)
  return { statements, rows: page.data.length, next: page.next_cursor ?? undefined }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const load = (await sql<{ l: string }>`select pg_catalog.current_setting('server_version') as l`.execute(db)).rows[0]!.l

console.log(`PostgreSQL ${load}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at start; ${repeat} runs each; times are planning + execution ms summed over a request's statements`)
console.log('| term | sort | page | rows | statements | min ms | median ms | max ms | buffers hit/read (1st run) |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for (const term of terms) {
  for (const sort of sorts) {
    const pages: Array<{ label: string; cursor?: string }> = [{ label: '1' }]
    const first = await capture(term, sort)
    if (sort === sorts[0] && first.next) pages.push({ label: '2', cursor: first.next })
    for (const p of pages) {
      const { statements, rows } = p.cursor ? await capture(term, sort, p.cursor) : first
      const times: number[] = []
      let hit = 0
      let read = 0
      const texts: string[] = []
      for (let i = 0; i < repeat; i++) {
        let ms = 0
        for (const s of statements) {
          const e = await explain(s, values.plans && i === 0)
          ms += e.ms
          if (i === 0) {
            hit += e.hit
            read += e.read
            if (e.text) texts.push(e.text)
          }
        }
        times.push(ms)
      }
      console.log(`| ${term} | ${sort} | ${p.label} | ${rows} | ${statements.length} | ${Math.min(...times).toFixed(1)} | ${median(times).toFixed(1)} | ${Math.max(...times).toFixed(1)} | ${hit}/${read} |`)
      if (texts.length) console.log('\n```\n' + texts.join('\n---\n') + '\n```\n')
    }
  }
}
console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at end`)
await db.destroy()
