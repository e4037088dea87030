/**
 * The autocannon load generator, in its own process (bench/lib/load.ts starts it pinned to the
 * load core when wrk is not installed). Same inputs as the wrk script: environment variables.
 */
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'

const paths = readFileSync(process.env.BENCH_PATHS!, 'utf8').split('\n').filter(Boolean)
const body = process.env.BENCH_BODY ? readFileSync(process.env.BENCH_BODY, 'utf8') : undefined
const headers: Record<string, string> = {}
if (process.env.BENCH_AUTH) headers.authorization = process.env.BENCH_AUTH
if (body) headers['content-type'] = 'application/json'

const result = await autocannon({
  url: process.env.BENCH_URL!,
  connections: Number(process.env.BENCH_CONNECTIONS),
  duration: Number(process.env.BENCH_SECONDS),
  method: (process.env.BENCH_METHOD ?? 'GET') as 'GET',
  headers,
  body,
  requests: [{ setupRequest: (req) => ({ ...req, path: paths[Math.floor(Math.random() * paths.length)]! }) }],
})
process.stdout.write(`BENCH_RESULT ${JSON.stringify({
  requests: result.requests.total, seconds: result.duration, p50_ms: result.latency.p50, p99_ms: result.latency.p99, max_ms: result.latency.max,
  errors: result.errors + result.timeouts + result.non2xx,
})}\n`)
