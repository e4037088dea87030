/**
 * The change feed: write throughput with the outbox vs without it, and feed read throughput
 * through the API vs the same query in process.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/events.ts
 *   (ROUNDS=5 ROUND_MS=3000 WRITERS=4 EVENTS=100000 PAGE=200, the API's largest page)
 *
 * A scratch database, migrated, dropped at the end. Rounds interleave the two sides of each
 * comparison and alternate which goes first; the report gives the median ratio with its min and
 * max, and each side's median.
 *
 * 1. Writes: WRITERS concurrent loops, one customer per audited transaction (the API's create).
 *    "outbox" rounds keep the events_derive trigger; "no outbox" rounds run with it disabled
 *    (ALTER TABLE audit_events DISABLE TRIGGER, by the owner, between rounds): the audit trail is
 *    written on both sides, so the ratio is the outbox's own cost.
 * 2. Reads: EVENTS events, then one reader follows the whole feed from the start, PAGE events a
 *    request: "API" is GET /v1/events over real HTTP from the app listening in this process
 *    (auth, validation, masking for a token without pii:read, serialization); "in process" is
 *    the same query (eventsAfter) called directly and JSON.stringify'd: what HTTP, auth,
 *    validation, masking and the response schema add.
 */
import { sql } from 'kysely'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { createDb, type Db } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { buildApp } from '../src/app.js'
import { eventsAfter, FEED_START } from '../src/modules/events/index.js'
import { scratchDatabase } from './lib/scratch-db.js'

const ROUNDS = Number(process.env.ROUNDS ?? 5)
const ROUND_MS = Number(process.env.ROUND_MS ?? 3000)
const WRITERS = Number(process.env.WRITERS ?? 4)
const EVENTS = Number(process.env.EVENTS ?? 100_000)
const PAGE = Number(process.env.PAGE ?? 200)

const scratch = scratchDatabase('events')
const dbUrl = scratch.url

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const spread = (xs: number[], digits = 2) =>
  `${median(xs).toFixed(digits)} (min ${Math.min(...xs).toFixed(digits)}, max ${Math.max(...xs).toFixed(digits)})`

/** Customers created per second over one round, each in its own audited transaction. */
async function writeRound(db: Db, label: string): Promise<number> {
  const end = Date.now() + ROUND_MS
  let count = 0
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    for (let i = 0; Date.now() < end; i++) {
      await db.transaction().execute(async (trx) => {
        await sql`select set_config('crm.actor', 'bench:writer', true), set_config('crm.request_id', ${`${label}-${w}-${i}`}, true),
                         set_config('crm.route', 'POST /v1/customers', true)`.execute(trx)
        await trx.insertInto('customers').values({ name: `Bench ${label} ${w}-${i}`, tags: ['bench'], attributes: { round: label } } as never).execute()
      })
      count += 1
    }
  }))
  return count / (Number(process.hrtime.bigint() - started) / 1e9)
}

async function setOutbox(owner: Db, on: boolean) {
  await sql.raw(`alter table audit_events ${on ? 'enable' : 'disable'} trigger events_derive`).execute(owner)
}

/** Events per second for one reader following the whole feed through the API. */
async function apiRead(baseUrl: string, authorization: string, total: number): Promise<number> {
  let after = ''
  let read = 0
  const started = process.hrtime.bigint()
  for (;;) {
    const res = await fetch(`${baseUrl}/v1/events?limit=${PAGE}${after ? `&after=${after}` : ''}`, { headers: { authorization } })
    if (!res.ok) throw new Error(`${res.status} ${await res.text()}`)
    const body = (await res.json()) as { data: unknown[]; next_position: string }
    read += body.data.length
    after = body.next_position
    if (body.data.length === 0) break
  }
  if (read !== total) throw new Error(`the API read ${read} events of ${total}`)
  return read / (Number(process.hrtime.bigint() - started) / 1e9)
}

/**
 * The same walk in process: the feed's own query (eventsAfter, frontier included) and
 * JSON.stringify, without HTTP, authentication, validation, masking or the response schema.
 */
async function bareRead(db: Db, total: number): Promise<number> {
  let position = FEED_START
  let read = 0
  const started = process.hrtime.bigint()
  for (;;) {
    const page = await eventsAfter(db, position, { limit: PAGE })
    if (page.expired) throw new Error('expired')
    if (page.events.length === 0) break
    JSON.stringify(page.events)
    read += page.events.length
    position = page.next
  }
  if (read !== total) throw new Error(`the in-process reader read ${read} events of ${total}`)
  return read / (Number(process.hrtime.bigint() - started) / 1e9)
}

await scratch.create()
const owner = createDb({ connectionString: dbUrl, max: 2, role: null, statementTimeoutMs: 0 })
const db = createDb({ connectionString: dbUrl, max: WRITERS + 2, statementTimeoutMs: 0 })
try {
  await migrateToLatest(owner)

  // 1. Writes.
  await writeRound(db, 'warmup-a')
  await setOutbox(owner, false)
  await writeRound(db, 'warmup-b')
  const withOutbox: number[] = []
  const without: number[] = []
  const ratios: number[] = []
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 ? [true, false] : [false, true]
    const got: Record<string, number> = {}
    for (const on of order) {
      await setOutbox(owner, on)
      got[String(on)] = await writeRound(db, `${on ? 'o' : 'n'}${r}`)
    }
    withOutbox.push(got.true!)
    without.push(got.false!)
    ratios.push(got.true! / got.false!)
    console.log(`writes round ${r}: outbox ${got.true!.toFixed(0)}/s, no outbox ${got.false!.toFixed(0)}/s, ratio ${(got.true! / got.false!).toFixed(3)}`)
  }
  await setOutbox(owner, true)

  // 2. Reads: a feed of exactly EVENTS events (the write rounds' events are purged first).
  await sql`select crm_events_purge(now() + interval '1 day', 10000000)`.execute(owner)
  await sql`delete from events_horizon`.execute(owner)
  for (let done = 0; done < EVENTS; done += 1000) {
    const n = Math.min(1000, EVENTS - done)
    await db.transaction().execute(async (trx) => {
      await sql`select set_config('crm.actor', 'bench:seed', true)`.execute(trx)
      await sql`insert into customers (name, birthday, tags, attributes)
                select 'Feed ' || g, date '1990-01-01' + g % 9000, array['bench'], jsonb_build_object('n', g)
                from generate_series(1, ${n}::int) g`.execute(trx)
    })
  }
  const total = Number((await sql<{ n: string }>`select count(*) as n from events`.execute(owner)).rows[0]!.n)

  const { publicKey, privateKey } = await generateKeyPair('ES256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }
  const token = await new SignJWT({ scope: 'events:read' }).setProtectedHeader({ alg: 'ES256', kid: 'bench' }).setSubject('bench')
    .setIssuer('crm-bench').setAudience('crm-api').setIssuedAt().setExpirationTime('1h').sign(privateKey)
  const app = await buildApp({
    db, ownsDb: false, auth: { issuer: 'crm-bench', audience: 'crm-api', algorithms: ['ES256'], clockToleranceSeconds: 5, jwks: { keys: [jwk] } },
    rateLimit: { max: 1_000_000_000, windowMs: 60_000, authFailureMax: 100 },
  })
  const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' })
  try {
    await apiRead(baseUrl, `Bearer ${token}`, total)
    await bareRead(db, total)
    const api: number[] = []
    const bare: number[] = []
    const readRatios: number[] = []
    for (let r = 1; r <= ROUNDS; r++) {
      let a: number
      let b: number
      if (r % 2) {
        a = await apiRead(baseUrl, `Bearer ${token}`, total)
        b = await bareRead(db, total)
      } else {
        b = await bareRead(db, total)
        a = await apiRead(baseUrl, `Bearer ${token}`, total)
      }
      api.push(a)
      bare.push(b)
      readRatios.push(a / b)
      console.log(`reads round ${r}: API ${a.toFixed(0)} events/s, in process ${b.toFixed(0)} events/s, ratio ${(a / b).toFixed(3)}`)
    }
    console.log('')
    console.log(`| figure | median (min, max) over ${ROUNDS} interleaved rounds |`)
    console.log('| --- | --- |')
    console.log(`| writes/s with the outbox (${WRITERS} writers, 1 customer per transaction) | ${spread(withOutbox, 0)} |`)
    console.log(`| writes/s without it | ${spread(without, 0)} |`)
    console.log(`| ratio with / without | ${spread(ratios, 3)} |`)
    console.log(`| feed reads, API (events/s, ${total} events, pages of ${PAGE}, masked) | ${spread(api, 0)} |`)
    console.log(`| feed reads, in-process baseline (eventsAfter + JSON.stringify, events/s) | ${spread(bare, 0)} |`)
    console.log(`| ratio API / in process | ${spread(readRatios, 3)} |`)
  } finally {
    await app.close()
  }
} finally {
  await db.destroy()
  await owner.destroy()
  await scratch.drop()
}
