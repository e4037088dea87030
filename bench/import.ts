/**
 * `npx tsx bench/import.ts [--rows 100000] [--rounds 3] [--admin-url URL]`
 *
 * Bulk import against its baseline, side by side: the same CSV of N customers is loaded
 * (a) by raw COPY into the customers table as it stands (its indexes and audit triggers; what
 *     psql's \copy does), and
 * (b) through the API: POST /v1/imports over HTTP, timed until the job has succeeded (upload,
 *     row validation, COPY into staging, set-wise merge with audit rows, one transaction).
 * Rounds alternate (a) and (b) on a freshly truncated table in a database of its own
 * (crm_bench_import, dropped at the end) and report the median, min and max; the ratio is
 * raw time / API time (1.0 = as fast as raw COPY; the target is ≥ 0.5).
 */
import { createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { sql } from 'kysely'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { buildApp } from '../src/app.js'
import { createDb } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
    'admin-url': { type: 'string', default: process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
})
const rows = Number(values.rows)
const rounds = Number(values.rounds)
const adminUrl = values['admin-url']!
const log = (s: string) => process.stderr.write(`[import ${new Date().toISOString().slice(11, 19)}] ${s}\n`)

const DB_NAME = 'crm_bench_import'
const url = new URL(adminUrl)
url.pathname = `/${DB_NAME}`
const admin = new pg.Client({ connectionString: adminUrl })
await admin.connect()
await admin.query(`drop database if exists ${DB_NAME} with (force)`)
await admin.query(`create database ${DB_NAME}`)

// As the owner (role: null): it migrates and truncates or disables triggers, which the API's role may not.
const db = createDb({ connectionString: url.toString(), max: 10, statementTimeoutMs: 0, role: null })
await migrateToLatest(db)

// The upload: N customers, several scripts, no two alike.
const work = path.join(tmpdir(), `crm-import-bench-${process.pid}`)
mkdirSync(work, { recursive: true })
const file = path.join(work, 'customers.csv')
const COLUMNS = ['external_ref', 'name', 'given_name', 'family_name', 'gender', 'acquisition_source', 'company']
const given = ['Ada', 'Wei', 'Олег', 'Fatima', 'Hiro', 'Priya', 'Lucas', 'Na']
const family = ['Lovelace', '张', 'Петров', 'Haddad', 'Tanaka', 'Sharma', 'Silva', '李']
const lines = [COLUMNS.join(',')]
for (let i = 0; i < rows; i++) {
  const g = given[i % given.length]!
  const f = family[(i * 7) % family.length]!
  lines.push([`imp-${i}`, `${g} ${f} ${i}`, g, f, i % 3 === 0 ? 'female' : 'male', 'import', `Company ${i % 997}`].join(','))
}
writeFileSync(file, lines.join('\n') + '\n')
log(`${rows} rows, ${(Buffer.byteLength(lines.join('\n')) / 1e6).toFixed(1)} MB`)

const { publicKey, privateKey } = await generateKeyPair('ES256')
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }
const app = await buildApp({
  db, ownsDb: false, bodyLimit: 1024 * 1024, requestTimeoutMs: 600_000,
  // The bench measures the import, not the limits: no rate limit or load shedding.
  rateLimit: { max: 1_000_000_000, windowMs: 60_000 },
  pressure: { maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, retryAfterSeconds: 10 },
  auth: { issuer: 'bench', audience: 'crm-api', algorithms: ['ES256'], clockToleranceSeconds: 5, jwks: { keys: [jwk] } },
})
await app.listen({ host: '127.0.0.1', port: 0 })
const port = (app.server.address() as { port: number }).port
const token = await new SignJWT({ scope: 'customers:write customers:read' }).setProtectedHeader({ alg: 'ES256', kid: 'bench' })
  .setSubject('bench:import').setIssuer('bench').setAudience('crm-api').setIssuedAt().setExpirationTime('2h').sign(privateKey)

async function reset(): Promise<void> {
  await sql`truncate customers, contact_points, audit_events, imports, import_customer_rows cascade`.execute(db)
  await sql`vacuum analyze customers`.execute(db)
}

async function rawCopy(): Promise<number> {
  const client = new pg.Client({ connectionString: url.toString() })
  await client.connect()
  const t0 = performance.now()
  await pipeline(createReadStream(file), client.query(copyFrom(`copy customers (${COLUMNS.join(', ')}) from stdin with (format csv, header true)`)))
  const ms = performance.now() - t0
  await client.end()
  return ms
}

async function apiImport(): Promise<number> {
  const t0 = performance.now()
  const location = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/imports', method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' } }, (res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => (res.statusCode === 202 ? resolve(res.headers.location!) : reject(new Error(`${res.statusCode} ${body}`))))
    })
    req.on('error', reject)
    createReadStream(file).pipe(req)
  })
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}${location}`, { headers: { authorization: `Bearer ${token}` } })
    const job = (await res.json()) as { status: string; rows_created: number; failure: string | null }
    if (job.status === 'succeeded') {
      if (job.rows_created !== rows) throw new Error(`imported ${job.rows_created} of ${rows}`)
      return performance.now() - t0
    }
    if (job.status === 'failed') throw new Error(`import failed: ${job.failure}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const raw: number[] = []
const api: number[] = []
for (let round = 0; round < rounds; round++) {
  // Alternate which goes first, so neither always meets a warmer cache.
  for (const which of round % 2 === 0 ? ['raw', 'api'] : ['api', 'raw']) {
    await reset()
    const ms = which === 'raw' ? await rawCopy() : await apiImport()
    ;(which === 'raw' ? raw : api).push(ms)
    const audit = await sql<{ n: number }>`select count(*)::int as n from audit_events where entity = 'customers'`.execute(db)
    log(`round ${round + 1} ${which}: ${(ms / 1000).toFixed(2)} s (${Math.round(rows / (ms / 1000))} rows/s, ${audit.rows[0]!.n} customer audit rows)`)
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fmt = (xs: number[]) => `${(median(xs) / 1000).toFixed(2)} s [${(Math.min(...xs) / 1000).toFixed(2)}–${(Math.max(...xs) / 1000).toFixed(2)}]`
const ratios = raw.map((r, i) => r / api[i]!)
process.stdout.write(
  [
    '',
    `| ${rows} customers | median [min–max] | rows/s (median) |`,
    '| --- | --- | --- |',
    `| raw COPY into customers | ${fmt(raw)} | ${Math.round(rows / (median(raw) / 1000))} |`,
    `| POST /v1/imports until succeeded | ${fmt(api)} | ${Math.round(rows / (median(api) / 1000))} |`,
    '',
    `API / raw speed: median ${median(ratios).toFixed(2)} [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}] (target ≥ 0.50)`,
    '',
  ].join('\n'),
)

await app.close()
await db.destroy()
await admin.query(`drop database if exists ${DB_NAME} with (force)`)
await admin.end()
rmSync(work, { recursive: true, force: true })
