/**
 * `npm run bench -- [--sizes 10000,100000] [--seconds 10] [--rounds 3] [--only a,b] [--admin-url URL] [--import-rows N]`
 *
 * For each size: a seeded database crm_bench_<size>, the service (src/server.ts, as `npm start`
 * runs it) and the minimal baseline each on its own port, pinned to CPU 0; the load generator
 * (wrk or autocannon, and pgbench) pinned to CPU 1. Rounds interleave every scenario × size ×
 * variant, rotating the variant order each round; the report gives the median of the rounds with
 * their min and max. Then batch creates and the import (raw COPY vs the API, in a database of its
 * own). See bench/README.md.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { createDb } from '../src/db/database.js'
import { findCustomerQuery } from '../src/modules/customers/customers.repository.js'
import { ensureDatabase, ensureSegments, loadFixtures } from './fixtures.js'
import { httpLoad, loader, pgbenchLoad, pgbenchPath, has, sequentialLoad, type Measurement } from './lib/load.js'
import { runBatchCreate, type BatchFigures } from './batch.js'
import { runImportBench, type ImportFigures } from './import.js'
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
    'database-prefix': { type: 'string', default: 'crm_bench_' },
    'throughput-connections': { type: 'string', default: '10' },
    'latency-connections': { type: 'string', default: '4' },
    'min-passes': { type: 'string', default: '3' },
    batches: { type: 'string', default: '5' },
    'import-rows': { type: 'string', default: '100000' },
    'import-rounds': { type: 'string' },
    'import-database': { type: 'string', default: 'crm_bench_import' },
    'port-base': { type: 'string', default: '3910' },
    out: { type: 'string', default: 'bench/results' },
  },
})

const sizes = values.sizes!.split(',').map(Number)
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)
const only = values.only ? new Set(values.only.split(',')) : undefined
const wanted = (name: string) => !only || only.has(name)
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
/**
 * Fails unless the port is free: a server of another bench run answering there would pass
 * waitReady and be measured in place of this run's.
 */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', () => reject(new Error(`port ${port} is in use (another bench running?): choose others with --port-base`)))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()))
  })
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

const active = SCENARIOS.filter((s) => !s.pending && wanted(s.name))
// The import runs in a database of its own: alone, it needs neither the seeded databases nor the servers.
const needsServers = active.length > 0 || wanted('batch_create_orders')

try {
  for (const [k, size] of (needsServers ? sizes : []).entries()) {
    const url = await ensureDatabase(values['admin-url']!, `${values['database-prefix']}${size}`, size, Number(values.seed), log)
    const fixtures = await loadFixtures(url, size)
    const fullPort = Number(values['port-base']) + k * 10
    const minimalPort = fullPort + 1
    await assertPortFree(fullPort)
    await assertPortFree(minimalPort)
    const full = `http://127.0.0.1:${fullPort}`
    const minimal = `http://127.0.0.1:${minimalPort}`
    const fullProcess = startProcess('src/server.ts', {
      DATABASE_URL: url, PORT: String(fullPort), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'production',
      AUTH_JWKS_FILE: jwksFile, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, AUTH_ALGORITHMS: 'ES256',
      // One token sends every request: under the default limit (1000 a minute per subject) all
      // but the first thousand would be 429s. The limiter still runs on every request.
      RATE_LIMIT_MAX: '1000000000',
    })
    const minimalProcess = startProcess('bench/baseline/minimal-server.ts', {
      DATABASE_URL: url, PORT: String(minimalPort), BENCH_SQL: getSql.sql, BENCH_PARAMS: JSON.stringify(getSql.parameters), BENCH_ID_INDEX: String(getSql.idIndex),
    })
    await Promise.all([waitReady(full), waitReady(minimal)])
    if (active.some((s) => s.name === 'segment_count')) fixtures.segmentIds = await ensureSegments(url, full, authorization, log)
    targets.push({ size, url, fixtures, full, minimal, pids: { full: fullProcess.pid!, minimal: minimalProcess.pid! } })
  }
  if (needsServers) log(`load generator: ${loader}${pgbenchPath() ? ', pgbench' : ''}; servers on CPU ${SERVER_CPU}, load on CPU ${LOAD_CPU}${has('taskset') ? '' : ' (taskset missing: not pinned)'}`)

  const results: Result[] = []
  // A warm-up runs each figure for 5 s (a sequential one: one pass over its paths).
  const measure = async (s: Scenario, t: Target, v: Variant, secs: number, warmUp = false): Promise<Measurement> => {
    const connections = s.load === 'sequential' ? 1 : Number(s.load === 'throughput' ? values['throughput-connections'] : values['latency-connections'])
    if (v === 'pgbench') return pgbenchLoad(t.url, pgbenchGetScript(getSql, t.fixtures.customerIds.length), connections, secs, LOAD_CPU)
    const pid = v === 'minimal' ? t.pids.minimal : t.pids.full
    const before = cpuMs(pid)
    const baseUrl = v === 'minimal' ? t.minimal : t.full
    const paths = s.paths!(t.fixtures, v)
    const m = s.load === 'sequential'
      ? await sequentialLoad({ baseUrl, paths, headers: { authorization }, seconds: warmUp ? 0 : secs, minPasses: warmUp ? 1 : Number(values['min-passes']) })
      : await httpLoad({ baseUrl, paths, headers: { authorization }, connections, seconds: secs }, LOAD_CPU)
    const after = cpuMs(pid)
    if (before !== undefined && after !== undefined && m.requests > 0) m.serverCpuMsPerRequest = (after - before) / m.requests
    return m
  }
  const variantsOf = (s: Scenario) => s.variants.filter((v) => v !== 'pgbench' || pgbenchPath())

  if (active.length) log('warm-up')
  for (const s of active) for (const t of targets) for (const v of variantsOf(s)) await measure(s, t, v, 5, true)

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
  if (needsServers && wanted('batch_create_orders')) {
    for (const t of targets) {
      batches.push(await runBatchCreate(t.full, authorization, t.fixtures.customerIds, Number(values.batches), t.size))
      log(`batch_create_orders ${t.size}: ${JSON.stringify(batches[batches.length - 1])}`)
    }
  }

  let imports: ImportFigures | undefined
  if (wanted('import')) {
    imports = await runImportBench({
      rows: Number(values['import-rows']), rounds: Number(values['import-rounds'] ?? values.rounds), adminUrl: values['admin-url']!,
      database: values['import-database']!, log,
    })
  }

  const text = report({
    results, batches, imports, scenarios: SCENARIOS, sizes, seconds, rounds, loader,
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
