/**
 * Load generators, each run as a child process pinned to the load core: wrk (C, with a Lua
 * script that picks a random path per request) when installed, else autocannon; and pgbench for
 * the database-only baseline. Each returns the same Measurement.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export interface Measurement {
  requests: number
  seconds: number
  rps: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Non-2xx/3xx answers, timeouts and socket errors: must be 0 for a valid figure. */
  errors: number
  /** CPU time the server process spent per request (HTTP variants on Linux). */
  serverCpuMsPerRequest?: number
}

export interface HttpLoad {
  baseUrl: string
  paths: string[]
  headers: Record<string, string>
  method?: 'GET' | 'POST'
  body?: string
  connections: number
  seconds: number
}

const here = path.dirname(fileURLToPath(import.meta.url))
const work = mkdtempSync(path.join(tmpdir(), 'crm-bench-'))
let fileNo = 0
const tmpFile = (name: string, content: string) => {
  const file = path.join(work, `${++fileNo}-${name}`)
  writeFileSync(file, content)
  return file
}

export const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const PIN = has('taskset')

/** Runs a command on the given CPU (when taskset exists) and collects its output. */
export function run(cmd: string, args: string[], cpu: number | undefined, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const [file, argv] = PIN && cpu !== undefined ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args]
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }))
  })
}

const WRK_SCRIPT = `
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local body_file = os.getenv("BENCH_BODY")
if body_file and body_file ~= "" then
  local f = io.open(body_file, "r"); wrk.body = f:read("*a"); f:close()
  wrk.headers["Content-Type"] = "application/json"
end
math.randomseed(os.time())
request = function()
  return wrk.format(nil, paths[math.random(#paths)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
`

function parseResult(stdout: string): Record<string, number> {
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '))
  if (!line) throw new Error(`load generator printed no result:\n${stdout.slice(-2000)}`)
  return JSON.parse(line.slice('BENCH_RESULT '.length)) as Record<string, number>
}

export const loader = has('wrk') ? 'wrk' : 'autocannon'

export async function httpLoad(l: HttpLoad, cpu?: number): Promise<Measurement> {
  const pathsFile = tmpFile('paths.txt', l.paths.join('\n') + '\n')
  const bodyFile = l.body ? tmpFile('body.json', l.body) : ''
  const env = { BENCH_PATHS: pathsFile, BENCH_METHOD: l.method ?? 'GET', BENCH_AUTH: l.headers.authorization ?? '', BENCH_BODY: bodyFile }
  if (loader === 'wrk') {
    const script = tmpFile('load.lua', WRK_SCRIPT)
    const r = await run('wrk', ['-t1', `-c${l.connections}`, `-d${l.seconds}s`, '--timeout', '10s', '-s', script, l.baseUrl], cpu, env)
    if (r.code !== 0) throw new Error(`wrk failed: ${r.stderr}`)
    const x = parseResult(r.stdout)
    const seconds = x.duration_us! / 1e6
    return { requests: x.requests!, seconds, rps: x.requests! / seconds, p50Ms: x.p50_us! / 1000, p99Ms: x.p99_us! / 1000, maxMs: x.max_us! / 1000, errors: x.errors! }
  }
  const r = await run(process.execPath, ['--import', 'tsx', path.join(here, 'autocannon-child.ts')], cpu, {
    ...env, BENCH_URL: l.baseUrl, BENCH_CONNECTIONS: String(l.connections), BENCH_SECONDS: String(l.seconds),
  })
  if (r.code !== 0) throw new Error(`autocannon failed: ${r.stderr}`)
  const x = parseResult(r.stdout)
  return { requests: x.requests!, seconds: x.seconds!, rps: x.requests! / x.seconds!, p50Ms: x.p50_ms!, p99Ms: x.p99_ms!, maxMs: x.max_ms!, errors: x.errors! }
}

/** Nearest-rank percentile of sorted latencies. */
const quantile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

export function pgbenchPath(): string | undefined {
  if (has('pgbench')) return 'pgbench'
  for (const v of ['17', '16', '15']) {
    const p = `/usr/lib/postgresql/${v}/bin/pgbench`
    if (spawnSync('test', ['-x', p]).status === 0) return p
  }
  return undefined
}

/**
 * pgbench -M extended running `script` (its own SQL, with \\set / \\gset lines) against the
 * database; latencies from its per-transaction log.
 */
export async function pgbenchLoad(url: string, script: string, connections: number, seconds: number, cpu?: number): Promise<Measurement> {
  const bin = pgbenchPath()
  if (!bin) throw new Error('pgbench is not installed')
  const dir = mkdtempSync(path.join(work, 'pgbench-'))
  const u = new URL(url)
  const r = await run(bin, [
    '-n', '-M', 'extended', '-c', String(connections), '-j', '1', '-T', String(seconds), '-f', tmpFile('pgbench.sql', script),
    '-l', `--log-prefix=${path.join(dir, 'tx')}`, '-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'),
    u.pathname.slice(1),
  ], cpu)
  if (r.code !== 0) throw new Error(`pgbench failed: ${r.stderr}`)
  const latencies: number[] = []
  let failed = 0
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const cols = line.split(' ')
      if (cols.length < 6) continue
      if (cols[2] === 'failed' || cols[2] === 'skipped') failed++
      else latencies.push(Number(cols[2]) / 1000)
    }
  }
  latencies.sort((a, b) => a - b)
  return { requests: latencies.length, seconds, rps: latencies.length / seconds, p50Ms: quantile(latencies, 50), p99Ms: quantile(latencies, 99), maxMs: latencies[latencies.length - 1] ?? NaN, errors: failed }
}

export interface SequentialLoad {
  baseUrl: string
  paths: string[]
  headers: Record<string, string>
  seconds: number
  /** Whole passes over `paths` to make at least, however long they take. */
  minPasses: number
  /** A request still unanswered after this long counts as an error. */
  timeoutMs?: number
}

/**
 * One request at a time over one keep-alive connection, from this process: the load of heavy
 * reads (segment counts, analytics), one of which can last a second or more. It makes whole
 * passes over the paths in order, so each path is sampled equally, until `seconds` have passed
 * and at least `minPasses` passes are done: a fixed-duration tool (wrk) would leave a handful of
 * samples, or none, and cut the last request off. The client's own work per request is a
 * fraction of a millisecond beside the server's, so this loop is not pinned to the load core.
 */
export async function sequentialLoad(l: SequentialLoad): Promise<Measurement> {
  const latencies: number[] = []
  let errors = 0
  const started = performance.now()
  for (let pass = 0; pass < l.minPasses || performance.now() - started < l.seconds * 1000; pass++) {
    for (const p of l.paths) {
      const t0 = performance.now()
      try {
        const res = await fetch(l.baseUrl + p, { headers: l.headers, signal: AbortSignal.timeout(l.timeoutMs ?? 60_000) })
        await res.arrayBuffer()
        if (res.status >= 400) errors++
      } catch {
        errors++
      }
      latencies.push(performance.now() - t0)
    }
  }
  const seconds = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return {
    requests: latencies.length, seconds, rps: latencies.length / seconds,
    p50Ms: quantile(latencies, 50), p99Ms: quantile(latencies, 99), maxMs: latencies[latencies.length - 1] ?? NaN, errors,
  }
}
