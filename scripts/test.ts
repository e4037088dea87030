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

  const first = await runTap(process.argv.slice(2))
  let { summary } = first
  code = first.code
  // CI keeps only the end of the output: name each failed assertion, with the subtests it sits in, just above the count.
  if (first.failures.length) process.stdout.write(`\nfailed:\n${first.failures.slice(0, 50).map((f) => `  ${f}\n`).join('')}`)
  // A file that failed is run once more on its own. If it passes then, its failures are reported
  // as flaky (named above and below, never silently), and the run counts as passed; if it fails
  // again, the run fails.
  const files = [...new Set(first.failures.map((f) => f.split(' > ')[0]!))]
  if (first.failures.length && process.env.CRM_TEST_RERUN !== '0' && files.every((f) => /\.test\.ts$/.test(f))) {
    process.stdout.write(`\nrunning again, once: ${files.join(' ')}\n`)
    const again = await runTap(files)
    if (again.code === 0 && again.summary && !again.summary.fail) {
      process.stdout.write(`\nflaky: ${first.failures.length} assertion(s) failed on the first run and passed when their files ran again:\n${first.failures.slice(0, 50).map((f) => `  ${f}\n`).join('')}`)
      summary = summary && { ...summary, fail: 0 }
      code = 0
    } else {
      if (again.failures.length) process.stdout.write(`\nfailed again:\n${again.failures.slice(0, 50).map((f) => `  ${f}\n`).join('')}`)
      code = code || 1
    }
  }
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

/** Runs tap on these arguments, passing its output through; its closing counts and the failed assertions. */
function runTap(args: string[]): Promise<{ code: number; summary?: Record<string, number>; failures: string[] }> {
  return new Promise((resolve) => {
    const child = spawn('node_modules/.bin/tap', args, {
      stdio: ['inherit', 'pipe', 'inherit'],
      env: { ...process.env, CRM_TEST_ADMIN_URL: adminUrl, CRM_TEST_TEMPLATE: template },
    })
    // Keeps tap's closing "# { total: N, pass: N, fail: N }" line, for the plain "N passed, N failed" line CI reads.
    let summary: Record<string, number> | undefined
    const failures = failureTrail()
    let tail = ''
    let partial = ''
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk)
      const text = chunk.toString('utf8')
      tail = (tail + text).slice(-4096)
      const m = /# \{ (total: \d+[^}]*)\}/.exec(tail)
      if (m) summary = Object.fromEntries(m[1]!.split(',').map((kv) => kv.trim().split(': ')).map(([k, v]) => [k!, Number(v)]))
      const lines = (partial + text).split('\n')
      partial = lines.pop()!
      for (const line of lines) failures.see(line)
    })
    child.on('exit', (c, signal) => resolve({ code: c ?? (signal ? 1 : 0), summary, failures: failures.list }))
  })
}

/**
 * Follows tap's indented TAP stream: "# Subtest: name" opens a level, "not ok N - what" at a level is
 * a failure inside the subtests above it. Leaf failures only: a subtest that failed because one of its
 * assertions did is already named by that assertion's path.
 */
function failureTrail() {
  const path: string[] = []
  const list: string[] = []
  return {
    list,
    see(line: string) {
      const indent = /^ */.exec(line)![0].length / 4
      const subtest = /^\s*# Subtest: (.*)$/.exec(line)
      if (subtest) {
        path.length = indent
        path[indent] = subtest[1]!
        return
      }
      const failed = /^\s*not ok \d+ - (.*?)(?: # time=.*)?$/.exec(line)
      if (!failed) return
      const where = path.slice(0, indent)
      const name = failed[1]!
      // The closing "not ok" of a subtest repeats the name of the level it closes.
      if (path[indent] === name && list.some((f) => f.startsWith([...where, name].join(' > ')))) return
      list.push([...where, name].join(' > '))
    },
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
