/**
 * Webhooks: write throughput with active subscriptions vs none, and delivery lag at a steady rate.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/webhooks.ts
 *
 * Creates a scratch database, migrates it, starts a receiver (a plain node:http server in a child
 * process, answering 204 and recording each delivery's lag) and the delivery worker in a process
 * of its own, as `npm run worker` runs it (src/cli/worker.ts; the API then runs with
 * WEBHOOK_WORKER=off): the writers here do not share an event loop with it. Default worker
 * settings unless WEBHOOK_CONCURRENCY / WEBHOOK_POLL_MS say otherwise; IN_PROCESS=1 runs the
 * worker in this process instead (the API's default), for comparison.
 *
 * 1. Throughput: interleaved rounds of WRITERS concurrent loops, each creating one customer per
 *    audited transaction (as POST /v1/customers does: the audit trigger and the event outbox
 *    fire in both), with SUBSCRIPTIONS active subscriptions to `customer.*` ("with": the worker
 *    fans out and delivers while the writers write) or none ("without": the worker polls idle).
 *    Each "with" round's backlog is drained before the next round starts (not timed). Reports
 *    each pair, then both rates and their ratio side by side as median (min, max). Target:
 *    median ratio >= 0.85.
 * 2. Lag: RATE customer creates per second for LAG_SECONDS with SUBSCRIPTIONS subscriptions;
 *    lag = when the receiver got a delivery - the event's occurred_at (its transaction's start).
 *    Reports p50, p95, p99 and max, then where the lag goes (event to queued delivery, queued
 *    to first attempt) and the attempts by outcome. Target: p99 < 1 s at 500 events/s.
 *
 * The machine's load average is printed at the start and the end (the figures depend on it).
 * The scratch database is dropped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { loadavg } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { sql } from 'kysely'
import { createDb, type Db } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { insertCustomer } from '../src/modules/customers/customers.repository.js'
import { feedHead } from '../src/modules/events/index.js'
import { targetPolicy } from '../src/modules/webhooks/webhooks.ssrf.js'
import { DEFAULT_WORKER_OPTIONS, DeliveryWorker } from '../src/modules/webhooks/webhooks.worker.js'
import * as repo from '../src/modules/webhooks/webhooks.repository.js'
import { newSecret } from '../src/modules/webhooks/webhooks.signer.js'
import { scratchDatabase } from './lib/scratch-db.js'

const ROUNDS = Number(process.env.ROUNDS ?? 5)
const ROUND_MS = Number(process.env.ROUND_MS ?? 3000)
const WRITERS = Number(process.env.WRITERS ?? 4)
const SUBSCRIPTIONS = Number(process.env.SUBSCRIPTIONS ?? 3)
const RATE = Number(process.env.RATE ?? 500)
const LAG_SECONDS = Number(process.env.LAG_SECONDS ?? 10)
const IN_PROCESS = process.env.IN_PROCESS === '1'
const workerOptions = {
  ...DEFAULT_WORKER_OPTIONS,
  ...(process.env.WEBHOOK_CONCURRENCY ? { concurrency: Number(process.env.WEBHOOK_CONCURRENCY) } : {}),
  ...(process.env.WEBHOOK_POLL_MS ? { pollMs: Number(process.env.WEBHOOK_POLL_MS) } : {}),
}

const scratch = scratchDatabase('webhooks')
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

const RECEIVER = `
const http = require('node:http')
let lags = []
http.createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const now = Date.now()
    if (req.url === '/stats') return res.end(JSON.stringify({ lags }))
    if (req.url === '/reset') { lags = []; return res.end('{}') }
    try { lags.push(now - Date.parse(JSON.parse(Buffer.concat(chunks).toString()).data.occurred_at)) } catch {}
    res.writeHead(204).end()
  })
}).listen(0, '127.0.0.1', function () { console.log(JSON.stringify({ port: this.address().port })) })
`

async function startReceiver() {
  const child = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve))
  const base = `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`
  return {
    url: `${base}/hook`,
    stats: async () => ((await (await fetch(`${base}/stats`)).json()) as { lags: number[] }).lags,
    reset: () => fetch(`${base}/reset`),
    stop: () => child.kill(),
  }
}

/**
 * The worker as `npm run worker` starts it (src/cli/worker.ts under tsx), on the scratch
 * database. WORKER_NODE_ARGS adds node flags (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
async function startWorkerProcess(): Promise<{ stop: () => Promise<void> }> {
  const nodeArgs = (process.env.WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean)
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/cli/worker.ts'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      DATABASE_URL: scratch.url,
      DB_ROLE: 'none',
      LOG_LEVEL: 'info',
      WEBHOOK_ALLOWED_HOSTS: '127.0.0.0/8',
      WEBHOOK_CONCURRENCY: String(workerOptions.concurrency),
      WEBHOOK_POLL_MS: String(workerOptions.pollMs),
    },
  })
  const lines = createInterface({ input: child.stdout! })
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the worker exited (${code}) before it started`)))
    lines.on('line', (line) => {
      if (line.includes('webhook worker started')) resolve()
      else if (/"level":(4|5|6)\d/.test(line)) console.error(line)
    })
  })
  return {
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGTERM')
    }),
  }
}

async function subscribe(db: Db, url: string, n: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const row = await repo.insertSubscription(db, { url, event_types: ['customer.*'], filter: null, status: 'active', description: `bench ${i}` })
    await repo.rotateSecret(db, row.id, newSecret(), null)
    await repo.setCursor(db, row.id, await feedHead(db), false)
    ids.push(row.id)
  }
  return ids
}

async function unsubscribe(db: Db): Promise<void> {
  await db.deleteFrom('webhook_subscriptions').execute()
}

async function createCustomer(db: Db, label: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`select set_config('crm.actor', 'bench:writer', true), set_config('crm.request_id', ${label}, true),
                     set_config('crm.route', 'POST /v1/customers', true)`.execute(trx)
    await insertCustomer(trx, { name: `Bench ${label}`, tags: ['bench'] })
  })
}

/** Customers created per second by WRITERS loops over one round. */
async function round(db: Db, label: string): Promise<number> {
  const end = Date.now() + ROUND_MS
  let count = 0
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    for (let i = 0; Date.now() < end; i++) {
      await createCustomer(db, `${label}-${w}-${i}`)
      count += 1
    }
  }))
  return count / (Number(process.hrtime.bigint() - started) / 1e9)
}

async function drained(db: Db): Promise<void> {
  for (;;) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from webhook_deliveries where status = 'pending'`.execute(db)
    const { rows: behind } = await sql<{ n: number }>`
      select count(*)::int as n from webhook_cursors c
      where exists (select 1 from events e where (e.txid, e.seq) > (c.txid, c.seq) and e.txid < pg_snapshot_xmin(pg_current_snapshot()))`.execute(db)
    if (rows[0]!.n === 0 && behind[0]!.n === 0) return
    await new Promise((r) => setTimeout(r, 100))
  }
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!
}
const median = (xs: number[]) => quantile(xs, 0.5)

const load = () => loadavg().map((l) => l.toFixed(2)).join(', ')
await scratch.create()
// A slow machine queues the lag phase's creates for the pool rather than failing them (0: no connect timeout).
const db = createDb({ connectionString: scratch.url, max: WRITERS + 12, role: null, statementTimeoutMs: 0, connectTimeoutMs: 0 })
const receiver = await startReceiver()
let stopWorker = async () => {}
try {
  await migrateToLatest(db)
  if (IN_PROCESS) {
    const worker = new DeliveryWorker(db, { ...workerOptions, policy: targetPolicy('127.0.0.0/8') }, pino({ level: 'warn' }))
    worker.start()
    stopWorker = () => worker.stop()
  } else {
    stopWorker = (await startWorkerProcess()).stop
  }
  console.log(`worker ${IN_PROCESS ? 'in the bench process' : 'in a process of its own (npm run worker)'}: concurrency ${workerOptions.concurrency}, ` +
    `poll ${workerOptions.pollMs} ms; ${WRITERS} writers, ${SUBSCRIPTIONS} subscriptions; load average ${load()}`)

  await round(db, 'warmup-none')
  await subscribe(db, receiver.url, SUBSCRIPTIONS)
  await round(db, 'warmup-with')
  await drained(db)
  await unsubscribe(db)

  const ratios: number[] = []
  const withRates: number[] = []
  const withoutRates: number[] = []
  for (let r = 1; r <= ROUNDS; r++) {
    let withSubs = 0
    let without = 0
    const runWith = async () => {
      await subscribe(db, receiver.url, SUBSCRIPTIONS)
      withSubs = await round(db, `with${r}`)
      await drained(db)
      await unsubscribe(db)
    }
    const runWithout = async () => {
      without = await round(db, `none${r}`)
    }
    // Alternate which goes first, so a trend in the machine's load does not favour one side.
    if (r % 2) {
      await runWith()
      await runWithout()
    } else {
      await runWithout()
      await runWith()
    }
    ratios.push(withSubs / without)
    withRates.push(withSubs)
    withoutRates.push(without)
    console.log(`round ${r}: with ${SUBSCRIPTIONS} subscriptions ${withSubs.toFixed(0)} creates/s, without ${without.toFixed(0)} creates/s, ratio ${(withSubs / without).toFixed(3)}`)
  }
  if (ratios.length) {
    const spread = (xs: number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}, ${Math.max(...xs).toFixed(digits)})`
    console.log(`creates/s with ${SUBSCRIPTIONS} subscriptions ${spread(withRates, 0)}, without ${spread(withoutRates, 0)}; ` +
      `ratio ${spread(ratios, 3)} (median (min, max) of ${ROUNDS} interleaved rounds of ${ROUND_MS} ms; target >= 0.85)`)
  }

  // Delivery lag at a steady rate.
  await subscribe(db, receiver.url, SUBSCRIPTIONS)
  await receiver.reset()
  const total = RATE * LAG_SECONDS
  const began = Date.now()
  const inFlight = new Set<Promise<void>>()
  for (let i = 0; i < total; i++) {
    const due = began + (i * 1000) / RATE
    const wait = due - Date.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    const p: Promise<void> = createCustomer(db, `lag-${i}`).finally(() => inFlight.delete(p))
    inFlight.add(p)
  }
  await Promise.all(inFlight)
  const achieved = total / ((Date.now() - began) / 1000)
  await drained(db)
  const lags = await receiver.stats()
  console.log(`delivery lag at ${achieved.toFixed(0)} events/s (target rate ${RATE}) to ${SUBSCRIPTIONS} subscriptions, ${lags.length} deliveries: ` +
    `p50 ${quantile(lags, 0.5)} ms, p95 ${quantile(lags, 0.95)} ms, p99 ${quantile(lags, 0.99)} ms, max ${Math.max(...lags)} ms (target p99 < 1000 ms)`)
  // Where the lag goes: event to queued delivery (the fan-out) and queued to first attempt (the queue and the send).
  const { rows: stages } = await sql<{ stage: string; p50: number; p99: number }>`
    select 'event to queued' as stage, percentile_cont(0.5) within group (order by ms) as p50, percentile_cont(0.99) within group (order by ms) as p99
    from (select extract(epoch from d.created_at - e.occurred_at) * 1000 as ms from webhook_deliveries d join events e on e.id = d.event_id) x
    union all
    select 'queued to first attempt', percentile_cont(0.5) within group (order by ms), percentile_cont(0.99) within group (order by ms)
    from (select extract(epoch from a.started_at - d.created_at) * 1000 as ms from webhook_deliveries d join webhook_delivery_attempts a on a.delivery_id = d.id and a.attempt = 1) x`.execute(db)
  console.log(`stages: ${stages.map((s) => `${s.stage} p50 ${Math.round(s.p50)} ms, p99 ${Math.round(s.p99)} ms`).join('; ')}`)
  const { rows: outcomes } = await sql<{ outcome: string; n: number }>`
    select coalesce(status_code::text, left(error, 60)) as outcome, count(*)::int as n from webhook_delivery_attempts group by 1 order by 2 desc limit 5`.execute(db)
  console.log(`attempts: ${outcomes.map((o) => `${o.outcome} ${o.n}`).join(', ')}`)
  console.log(`load average at the end ${load()}`)
} finally {
  await stopWorker()
  receiver.stop()
  await db.destroy()
  await scratch.drop()
}
