/**
 * `npm test`: runs the suite against a real PostgreSQL with no set-up.
 * Uses DATABASE_URL when set (its database is only used to create others), else an embedded
 * server under .data/test-pg. Migrates one template database, then each test file clones it
 * (CREATE DATABASE ... TEMPLATE, see test/helpers/db.ts) so files run in parallel.
 */
import { spawn } from 'node:child_process'
import pg from 'pg'
import { createDb } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { startEmbeddedPostgres, type EmbeddedServer } from '../src/db/embedded.js'

let embedded: EmbeddedServer | undefined
let adminUrl = process.env.DATABASE_URL
if (!adminUrl) {
  process.stdout.write('DATABASE_URL is unset: starting embedded PostgreSQL for the tests (.data/test-pg)\n')
  embedded = await startEmbeddedPostgres({ dir: '.data/test-pg', port: Number(process.env.EMBEDDED_TEST_PG_PORT ?? 54330), database: 'postgres' })
  adminUrl = embedded.url
}

const template = `crm_tpl_${process.pid}`
const withDatabase = (url: string, name: string) => {
  const u = new URL(url)
  u.pathname = '/' + name
  return u.toString()
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

let code = 1
try {
  await admin(async (c) => {
    // Databases left by an interrupted run (their runner's pid is gone) are dropped first.
    const stale = await c.query<{ datname: string }>(`select datname from pg_database where datname ~ '^crm_(tpl|t)_'`)
    for (const { datname } of stale.rows) {
      const pid = Number(/^crm_(?:tpl|t)_(\d+)/.exec(datname)?.[1])
      if (pid && pid !== process.pid && !alive(pid)) await c.query(`drop database if exists "${datname}" with (force)`)
    }
    await c.query(`create database "${template}"`)
  })
  const db = createDb({ connectionString: withDatabase(adminUrl, template), max: 1, role: null })
  await migrateToLatest(db)
  await db.destroy()

  let summary: Record<string, number> | undefined
  code = await new Promise<number>((resolve) => {
    const child = spawn('node_modules/.bin/tap', process.argv.slice(2), {
      stdio: ['inherit', 'pipe', 'inherit'],
      env: { ...process.env, CRM_TEST_ADMIN_URL: adminUrl, CRM_TEST_TEMPLATE: template },
    })
    // Pass tap's output through, keeping its closing "# { total: N, pass: N, fail: N }" line
    // to print the plain "N passed, N failed" line CI reads.
    let tail = ''
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk)
      tail = (tail + chunk.toString('utf8')).slice(-4096)
      const m = /# \{ (total: \d+[^}]*)\}/.exec(tail)
      if (m) summary = Object.fromEntries(m[1]!.split(',').map((kv) => kv.trim().split(': ')).map(([k, v]) => [k!, Number(v)]))
    })
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)))
  })
  const passed = summary?.pass ?? 0
  const failed = summary ? (summary.fail ?? 0) : Math.max(1, code)
  const skipped = (summary?.skip ?? 0) + (summary?.todo ?? 0)
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
  if (code === 0 && failed > 0) code = 1
} catch (err) {
  console.error(err)
  code = 1
} finally {
  await admin(async (c) => {
    const mine = await c.query<{ datname: string }>(`select datname from pg_database where datname like $1 or datname = $2`, [`crm_t_${process.pid}_%`, template])
    for (const { datname } of mine.rows) await c.query(`drop database if exists "${datname}" with (force)`)
  }).catch((err) => console.error('cleanup failed:', err))
  await embedded?.stop()
}
process.exit(code)

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
