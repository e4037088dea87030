/**
 * `npx tsx bench/metrics-batch.ts [--rounds 3] [--items 1000] [--customers 10] [--admin-url URL]`
 *
 * What the customer-metrics triggers cost a batch: POST /v1/orders/batch and
 * POST /v1/interactions/batch with N items (one INSERT per item, src/lib/batch.ts) spread over
 * C customers, through buildApp + app.inject, in three databases of their own:
 *   deferred   all migrations: touched customers recorded per row, refreshed once at commit
 *              (migrations/20261123T160000_metrics_deferred.ts)
 *   statement  the migrations up to the one before it: every statement refreshes its customers' metrics
 *   none       deferred with the metrics triggers disabled: the floor (metrics NOT maintained)
 * Rounds rotate the order of the three; each round uses fresh customers so that every mode
 * sees the same rows per customer. Reports median, min and max per mode and request, and
 * checks that the maintained metrics equal a recomputation from the raw rows.
 * Databases crm_bench_metrics_<mode> are dropped at the end.
 */
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { sql } from 'kysely'
import pg from 'pg'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { buildApp, type App } from '../src/app.js'
import { createDb, type Db } from '../src/db/database.js'
import { createMigrationDb } from '../src/db/connect.js'
import { migrateTo, migrateToLatest } from '../src/db/migrate.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    items: { type: 'string', default: '1000' },
    customers: { type: 'string', default: '10' },
    'admin-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
  },
})
const rounds = Number(values.rounds)
const items = Number(values.items)
const customerCount = Number(values.customers)
const adminUrl = values['admin-url']!
const log = (s: string) => process.stderr.write(`[metrics ${new Date().toISOString().slice(11, 19)}] ${s}\n`)

type Mode = 'deferred' | 'statement' | 'none'
const MODES: Mode[] = ['deferred', 'statement', 'none']

const { publicKey, privateKey } = await generateKeyPair('ES256')
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }
const headers = {
  authorization: `Bearer ${await new SignJWT({ scope: 'orders:write interactions:write' }).setProtectedHeader({ alg: 'ES256', kid: 'bench' })
    .setSubject('bench:metrics').setIssuer('bench').setAudience('crm-api').setIssuedAt().setExpirationTime('2h').sign(privateKey)}`,
}

const admin = new pg.Client({ connectionString: adminUrl })
await admin.connect()
const envs = new Map<Mode, { db: Db; owner: Db; app: App; name: string }>()
try {
  for (const mode of MODES) {
    const name = `crm_bench_metrics_${mode}`
    await admin.query(`drop database if exists ${name} with (force)`)
    await admin.query(`create database ${name}`)
    const url = Object.assign(new URL(adminUrl), { pathname: `/${name}` }).toString()
    // Migrations, trigger switches and VACUUM as the owner; the app as the API's role (crm_app).
    const owner = createMigrationDb(url)
    await migrateToLatest(owner)
    // Back to the migration before metrics_deferred (later ones, such as the pending set, go with it).
    if (mode === 'statement') await migrateTo(owner, '20261123T150000_search_and_scale')
    if (mode === 'none') {
      for (const table of ['orders', 'interactions', 'feedback']) {
        for (const op of ['insert', 'update', 'delete']) {
          await sql.raw(`alter table ${table} disable trigger metrics_${op}, disable trigger metrics_collect_${op}`).execute(owner)
        }
      }
    }
    const db = createDb({ connectionString: url, max: 4, statementTimeoutMs: 0 })
    const app = await buildApp({
      db, ownsDb: false, requestTimeoutMs: 600_000,
      auth: { issuer: 'bench', audience: 'crm-api', algorithms: ['ES256'], clockToleranceSeconds: 5, jwks: { keys: [jwk] } },
    })
    await app.ready()
    envs.set(mode, { db, owner, app, name })
  }

  const times = new Map<string, number[]>()
  const record = (key: string, ms: number) => times.set(key, [...(times.get(key) ?? []), ms])

  for (let round = 0; round < rounds; round++) {
    const order = MODES.map((_, i) => MODES[(i + round) % MODES.length]!)
    for (const mode of order) {
      const { db, owner, app } = envs.get(mode)!
      const customers = (await db.insertInto('customers')
        .values(Array.from({ length: customerCount }, (_, i) => ({ name: `Bench ${round}-${i}` })) as never)
        .returning('id').execute()).map((r) => r.id)
      await sql`vacuum analyze`.execute(owner)
      const orderItems = Array.from({ length: items }, (_, i) => ({
        customer_id: customers[i % customerCount], currency: 'EUR', status: i % 4 === 0 ? 'pending' : 'paid',
        ordered_at: new Date(Date.now() - i * 60_000).toISOString(),
        items: [{ product_name: `Product ${i}`, quantity: 1 + (i % 3), unit_price: '12.34' }],
      }))
      const interactionItems = Array.from({ length: items }, (_, i) => ({
        customer_id: customers[i % customerCount], channel: 'phone', occurred_at: new Date(Date.now() - i * 60_000).toISOString(),
      }))
      for (const [what, payload] of [['orders', orderItems], ['interactions', interactionItems]] as const) {
        const started = performance.now()
        const res = await app.inject({ method: 'POST', url: `/v1/${what}/batch`, headers, payload: { items: payload } })
        const ms = performance.now() - started
        if (res.statusCode !== 200) throw new Error(`${mode} ${what}: ${res.statusCode} ${res.body.slice(0, 300)}`)
        record(`${what} ${mode}`, ms)
        log(`round ${round + 1} ${mode.padEnd(9)} ${what.padEnd(12)} ${ms.toFixed(0)} ms`)
      }
    }
  }

  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b)
    const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
    return { median: mid, min: s[0]!, max: s[s.length - 1]! }
  }
  console.log(`${items}-item batches over ${customerCount} customers, ${rounds} rounds (ms: median [min–max])`)
  for (const what of ['orders', 'interactions']) {
    for (const mode of MODES) {
      const { median, min, max } = stats(times.get(`${what} ${mode}`)!)
      console.log(`  ${what.padEnd(12)} ${mode.padEnd(9)} ${median.toFixed(0).padStart(6)} [${min.toFixed(0)}–${max.toFixed(0)}]`)
    }
  }

  // The maintained metrics must be exact in both metrics modes.
  for (const mode of ['deferred', 'statement'] as const) {
    const { rows } = await sql<{ wrong: number }>`
      select count(*)::int as wrong from customers c
      left join customer_metrics m on m.customer_id = c.id
      where (coalesce(m.order_count, 0), coalesce(m.interaction_count, 0)) is distinct from (
        (select count(*)::int from orders o where o.customer_id = c.id and o.archived_at is null and o.status in ('paid', 'fulfilled', 'partially_refunded')),
        (select count(*)::int from interactions i where i.customer_id = c.id and i.archived_at is null))`.execute(envs.get(mode)!.db)
    console.log(`  ${mode}: customers whose metrics differ from a recomputation: ${rows[0]!.wrong}`)
  }
} finally {
  for (const { db, owner, app, name } of envs.values()) {
    await app.close()
    await db.destroy()
    await owner.destroy()
    await admin.query(`drop database if exists ${name} with (force)`)
  }
  await admin.end()
}
