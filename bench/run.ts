/**
 * `npm run bench -- [--sizes 10000,100000] [--seconds 10] [--rounds 3] [--only a,b] [--admin-url URL]`
 *
 * For each size: a seeded database crm_bench_<size>, the service (src/server.ts, as `npm start`
 * runs it) and the minimal baseline each on its own port, pinned to CPU 0; the load generator
 * (wrk or autocannon, and pgbench) pinned to CPU 1. Rounds interleave every scenario × size ×
 * variant, rotating the variant order each round; the report gives the median of the rounds with
 * their min and max. See bench/README.md.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { createDb } from '../src/db/database.js'
import { findCustomerQuery } from '../src/modules/customers/customers.repository.js'
import { ensureDatabase, loadFixtures } from './fixtures.js'
import { httpLoad, loader, pgbenchLoad, pgbenchPath, has, type Measurement } from './lib/load.js'
import { runBatchCreate, type BatchFigures } from './batch.js'
import { report, type Result } from './report.js'
import { pgbenchGetScript, SCENARIOS, type Fixtures, type KeyedSql, type Scenario, type Variant } from './scenarios.js'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    'admin-url': { type: 'string', default: process.env.BENCH_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
    seed: { type: 'string', default: '1' },
    'throughput-connections': { type: 'string', default: '10' },
    'latency-connections': { type: 'string', default: '4' },
    batches: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench/results' },
  },
})

const sizes = values.sizes!.split(',').map(Number)
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)
const only = values.only ? new Set(values.only.split(',')) : undefined
const SERVER_CPU = 0
const LOAD_CPU = 1
const log = (s: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`)

// A signing key of the run's own: the service trusts its public half through AUTH_JWKS_FILE.
const work = path.join(tmpdir(), `crm-bench-${process.pid}`)
mkdirSync(work, { recursive: true })
const { publicKey, privateKey } = await generateKeyPair('ES256')
const jwksFile = path.join(work, 'jwks.json')
writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }] }))
const ISSUER = 'crm-bench'
const AUDIENCE = 'crm-api'
const token = await new SignJWT({ scope: 'admin' }).setProtectedHeader({ alg: 'ES256', kid: 'bench' }).setSubject('bench')
  .setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('6h').sign(privateKey)
const authorization = `Bearer ${token}`

const children: ChildProcess[] = []
function startProcess(script: string, env: Record<string, string>): ChildProcess {
  const args = ['--import', 'tsx', script]
  const [cmd, argv] = has('taskset') ? ['taskset', ['-c', String(SERVER_CPU), process.execPath, ...args]] : [process.execPath, args]
  const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(child)
  return child
}
async function waitReady(baseUrl: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${baseUrl}/healthz`)).ok) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${baseUrl} did not become ready`)
}
const stopAll = () => {
  for (const c of children) c.kill('SIGTERM')
}
process.on('exit', stopAll)

interface Target {
  size: number
  url: string
  fixtures: Fixtures
  full: string
  minimal: string
  pids: { full: number; minimal: number }
}

/**
 * CPU time (user + system, ms) a process has used, from /proc: the server's CPU per request
 * is a figure other processes on a shared machine barely disturb, unlike latency and req/s.
 */
function cpuMs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
  } catch {
    return undefined
  }
}

const targets: Target[] = []
// The SQL of a customer read, compiled from the repository so that the baselines run exactly it.
const ID_MARK = '00000000-0000-0000-0000-000000000000'
const compiled = findCustomerQuery(createDb({ connectionString: values['admin-url']!, max: 1 }), ID_MARK).compile()
const getSql: KeyedSql = { sql: compiled.sql, parameters: [...compiled.parameters], idIndex: compiled.parameters.indexOf(ID_MARK) }

try {
  for (const [k, size] of sizes.entries()) {
    const url = await ensureDatabase(values['admin-url']!, `crm_bench_${size}`, size, Number(values.seed), log)
    const fixtures = await loadFixtures(url, size)
    const full = `http://127.0.0.1:${3910 + k * 10}`
    const minimal = `http://127.0.0.1:${3911 + k * 10}`
    const fullProcess = startProcess('src/server.ts', {
      DATABASE_URL: url, PORT: String(3910 + k * 10), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'production',
      AUTH_JWKS_FILE: jwksFile, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, AUTH_ALGORITHMS: 'ES256',
    })
    const minimalProcess = startProcess('bench/baseline/minimal-server.ts', {
      DATABASE_URL: url, PORT: String(3911 + k * 10), BENCH_SQL: getSql.sql, BENCH_PARAMS: JSON.stringify(getSql.parameters), BENCH_ID_INDEX: String(getSql.idIndex),
    })
    await Promise.all([waitReady(full), waitReady(minimal)])
    targets.push({ size, url, fixtures, full, minimal, pids: { full: fullProcess.pid!, minimal: minimalProcess.pid! } })
  }
  log(`load generator: ${loader}${pgbenchPath() ? ', pgbench' : ''}; servers on CPU ${SERVER_CPU}, load on CPU ${LOAD_CPU}${has('taskset') ? '' : ' (taskset missing: not pinned)'}`)

  const active = SCENARIOS.filter((s) => !s.pending && (!only || only.has(s.name)))
  const results: Result[] = []
  const measure = async (s: Scenario, t: Target, v: Variant, secs: number): Promise<Measurement> => {
    const connections = Number(s.load === 'throughput' ? values['throughput-connections'] : values['latency-connections'])
    if (v === 'pgbench') return pgbenchLoad(t.url, pgbenchGetScript(getSql, t.fixtures.customerIds.length), connections, secs, LOAD_CPU)
    const pid = v === 'minimal' ? t.pids.minimal : t.pids.full
    const before = cpuMs(pid)
    const m = await httpLoad({ baseUrl: v === 'minimal' ? t.minimal : t.full, paths: s.paths!(t.fixtures, v), headers: { authorization }, connections, seconds: secs }, LOAD_CPU)
    const after = cpuMs(pid)
    if (before !== undefined && after !== undefined && m.requests > 0) m.serverCpuMsPerRequest = (after - before) / m.requests
    return m
  }
  const variantsOf = (s: Scenario) => s.variants.filter((v) => v !== 'pgbench' || pgbenchPath())

  log('warm-up')
  for (const s of active) for (const t of targets) for (const v of variantsOf(s)) await measure(s, t, v, 5)

  for (let r = 0; r < rounds; r++) {
    for (const s of active) {
      for (const t of targets) {
        const vs = variantsOf(s)
        const order = vs.map((_, i) => vs[(i + r) % vs.length]!)
        for (const v of order) {
          const m = await measure(s, t, v, seconds)
          results.push({ scenario: s.name, size: t.size, variant: v, round: r, m })
          log(`round ${r + 1}/${rounds} ${s.name} ${t.size} ${v}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms` +
            `${m.serverCpuMsPerRequest !== undefined ? `, server CPU ${m.serverCpuMsPerRequest.toFixed(3)} ms/req` : ''}${m.errors ? `, ${m.errors} ERRORS` : ''}`)
        }
      }
    }
  }

  const batches: BatchFigures[] = []
  if (!only || only.has('batch_create_orders')) {
    for (const t of targets) {
      batches.push(await runBatchCreate(t.full, authorization, t.fixtures.customerIds, Number(values.batches), t.size))
      log(`batch_create_orders ${t.size}: ${JSON.stringify(batches[batches.length - 1])}`)
    }
  }

  const text = report({
    results, batches, scenarios: SCENARIOS, sizes, seconds, rounds, loader,
    connections: { throughput: Number(values['throughput-connections']), latency: Number(values['latency-connections']) },
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
  })
  mkdirSync(values.out!, { recursive: true })
  const file = path.join(values.out!, `${new Date().toISOString().replace(/[:.]/g, '-')}.md`)
  writeFileSync(file, text)
  process.stdout.write(text + `\n(written to ${file})\n`)
} finally {
  stopAll()
}
process.exit(0)
