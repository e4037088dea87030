/**
 * `npm test`: runs the suite against a real PostgreSQL with no set-up.
 * Uses DATABASE_URL when set (its database is only used to create others), else an embedded
 * server under .data/test-pg. Migrates one template database, then each test file clones it
 * (CREATE DATABASE ... TEMPLATE, see test/helpers/db.ts) so files run in parallel.
 */
import { spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
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
// One seed for the run's randomized tests (test/helpers/seed.ts), so the rerun below replays
// exactly what failed, and the closing lines say how to replay it.
const runSeed = process.env.CRM_TEST_SEED || String(randomInt(2 ** 31))
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
  const { summary } = first
  code = first.code
  // CI keeps only the end of the output: name each failed assertion, with the subtests it sits in, just above the count.
  if (first.failures.length) process.stdout.write(`\nfailed:\n${first.failures.slice(0, 50).map((f) => `  ${f}\n`).join('')}`)
  // Locally a file that failed runs once more on its own, to say whether its failures come back.
  // That only informs: the count and the exit code are the first run's, so a rerun never turns a
  // failure green. CI runs without it (see rerunWanted).
  const files = [...new Set(first.failures.map((f) => f.split(' > ')[0]!))]
  let flaky = ''
  if (first.failures.length && rerunWanted() && files.every((f) => /\.test\.ts$/.test(f))) {
    process.stdout.write(`\nrunning again, once: ${files.join(' ')}\n`)
    const again = await runTap(files)
    if (again.code === 0 && again.summary && !again.summary.fail) {
      flaky = `flaky: the ${first.failures.length} failure(s) above did not come back when their files ran again (the run still fails)`
    } else {
      if (again.failures.length) process.stdout.write(`\nfailed again:\n${again.failures.slice(0, 50).map((f) => `  ${f}\n`).join('')}`)
      flaky = 'not flaky: the failures came back when their files ran again'
    }
  }
  const passed = summary?.pass ?? 0
  const failed = summary ? (summary.fail ?? 0) : Math.max(1, code)
  const skipped = (summary?.skip ?? 0) + (summary?.todo ?? 0)
  if (flaky) process.stdout.write(`\n${flaky}\n`)
  if (failed > 0) process.stdout.write(`\nrandomized tests ran with seed=${runSeed}: CRM_TEST_SEED=${runSeed} npm test -- <file> replays them\n`)
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
      env: { ...process.env, CRM_TEST_ADMIN_URL: adminUrl, CRM_TEST_TEMPLATE: template, CRM_TEST_RUN_SEED: runSeed },
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

/**
 * Whether a failed file runs once more: CRM_TEST_RERUN=1 or 0 decides; else never in CI (CI set to
 * anything but "" / "0" / "false"), where a failure must stay the last thing the log shows.
 */
function rerunWanted(): boolean {
  const asked = process.env.CRM_TEST_RERUN
  if (asked === '0' || asked === '1') return asked === '1'
  const ci = process.env.CI
  return ci === undefined || ci === '' || ci === '0' || ci === 'false'
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
