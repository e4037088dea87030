/**
 * import: bulk import against its baseline, side by side. The same CSV of N customers is loaded
 * (a) by raw COPY into the customers table as it stands (its indexes and audit triggers; what
 *     psql's \copy does), and
 * (b) through the API: POST /v1/imports over HTTP, timed until the job has succeeded (upload,
 *     row validation, COPY into staging, set-wise merge with audit rows, one transaction).
 * Rounds alternate (a) and (b) on a freshly truncated table in a database of its own (dropped at
 * the end); the ratio of a round is raw time / API time (1.0 = as fast as raw COPY; the target
 * is ≥ 0.5). Part of `npm run bench` (`--import-rows`); alone:
 *
 * `npx tsx bench/import.ts [--rows 100000] [--rounds 3] [--admin-url URL] [--database crm_bench_import]`
 */
import { createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { sql } from 'kysely'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { buildApp } from '../src/app.js'
import { createDb, type Db } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { importReport } from './report.js'

export interface ImportFigures {
  rows: number
  /** Per round, in ms: raw COPY, and the API import until the job succeeded. */
  rawMs: number[]
  apiMs: number[]
  /** Per round: raw time / API time, i.e. API rows/s as a share of raw COPY rows/s. */
  ratios: number[]
}

export interface ImportOptions {
  rows: number
  rounds: number
  adminUrl: string
  /** A database of the bench's own: created, then dropped at the end (never a seeded one). */
  database: string
  log: (s: string) => void
}

const COLUMNS = ['external_ref', 'name', 'given_name', 'family_name', 'gender', 'acquisition_source', 'company']

/** The upload: N customers, several scripts, no two alike. */
function writeUpload(file: string, rows: number): number {
  const given = ['Ada', 'Wei', 'Олег', 'Fatima', 'Hiro', 'Priya', 'Lucas', 'Na']
  const family = ['Lovelace', '张', 'Петров', 'Haddad', 'Tanaka', 'Sharma', 'Silva', '李']
  const lines = [COLUMNS.join(',')]
  for (let i = 0; i < rows; i++) {
    const g = given[i % given.length]!
    const f = family[(i * 7) % family.length]!
    lines.push([`imp-${i}`, `${g} ${f} ${i}`, g, f, i % 3 === 0 ? 'female' : 'male', 'import', `Company ${i % 997}`].join(','))
  }
  const text = lines.join('\n') + '\n'
  writeFileSync(file, text)
  return Buffer.byteLength(text)
}

/** The service in this process, on the import database, with the limits that would skew the timing off. */
async function startApi(db: Db) {
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
    .setSubject('bench:import').setIssuer('bench').setAudience('crm-api').setIssuedAt().setExpirationTime('6h').sign(privateKey)
  return { app, port, token }
}

export async function runImportBench(o: ImportOptions): Promise<ImportFigures> {
  if (/^crm_bench_\d+$/.test(o.database)) throw new Error(`${o.database} is a seeded bench database: the import drops its database`)
  const url = new URL(o.adminUrl)
  url.pathname = `/${o.database}`
  const admin = new pg.Client({ connectionString: o.adminUrl })
  await admin.connect()
  await admin.query(`drop database if exists "${o.database}" with (force)`)
  await admin.query(`create database "${o.database}"`)
  // As the owner (role: null): it migrates and truncates, which the API's role may not.
  const db = createDb({ connectionString: url.toString(), max: 10, statementTimeoutMs: 0, role: null })
  const work = path.join(tmpdir(), `crm-import-bench-${process.pid}`)
  mkdirSync(work, { recursive: true })
  const file = path.join(work, 'customers.csv')
  let api: Awaited<ReturnType<typeof startApi>> | undefined
  try {
    await migrateToLatest(db)
    o.log(`import: ${o.rows} rows, ${(writeUpload(file, o.rows) / 1e6).toFixed(1)} MB, database ${o.database}`)
    api = await startApi(db)
    const { port, token } = api

    const reset = async () => {
      await sql`truncate customers, contact_points, audit_events, imports, import_customer_rows cascade`.execute(db)
      await sql`vacuum analyze customers`.execute(db)
    }
    const rawCopy = async () => {
      const client = new pg.Client({ connectionString: url.toString() })
      await client.connect()
      try {
        const t0 = performance.now()
        await pipeline(createReadStream(file), client.query(copyFrom(`copy customers (${COLUMNS.join(', ')}) from stdin with (format csv, header true)`)))
        return performance.now() - t0
      } finally {
        await client.end()
      }
    }
    const apiImport = async () => {
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
          if (job.rows_created !== o.rows) throw new Error(`imported ${job.rows_created} of ${o.rows}`)
          return performance.now() - t0
        }
        if (job.status === 'failed') throw new Error(`import failed: ${job.failure}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }

    const figures: ImportFigures = { rows: o.rows, rawMs: [], apiMs: [], ratios: [] }
    for (let round = 0; round < o.rounds; round++) {
      // Alternate which goes first, so neither always meets a warmer cache.
      for (const which of round % 2 === 0 ? ['raw', 'api'] : ['api', 'raw']) {
        await reset()
        const ms = which === 'raw' ? await rawCopy() : await apiImport()
        ;(which === 'raw' ? figures.rawMs : figures.apiMs).push(ms)
        const audit = await sql<{ n: number }>`select count(*)::int as n from audit_events where entity = 'customers'`.execute(db)
        o.log(`import round ${round + 1}/${o.rounds} ${which}: ${(ms / 1000).toFixed(2)} s (${Math.round(o.rows / (ms / 1000))} rows/s, ${audit.rows[0]!.n} customer audit rows)`)
      }
      figures.ratios.push(figures.rawMs[round]! / figures.apiMs[round]!)
    }
    return figures
  } finally {
    await api?.app.close()
    await db.destroy()
    await admin.query(`drop database if exists "${o.database}" with (force)`).catch(() => {})
    await admin.end()
    rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
      'admin-url': { type: 'string', default: process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
      database: { type: 'string', default: 'crm_bench_import' },
    },
  })
  const figures = await runImportBench({
    rows: Number(values.rows), rounds: Number(values.rounds), adminUrl: values['admin-url']!, database: values.database!,
    log: (s) => process.stderr.write(`[import ${new Date().toISOString().slice(11, 19)}] ${s}\n`),
  })
  process.stdout.write('\n' + importReport(figures) + '\n')
}
