/**
 * Write throughput with the audit trail vs without it.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench/audit-overhead.ts
 *
 * Creates a scratch database, migrates it, then runs interleaved rounds of WRITERS concurrent
 * loops, each inserting one customer per transaction through the customers repository with the
 * request's audit context set (as the API does). "Audited" rounds keep the triggers and run the
 * chain sealer every SEAL_EVERY_MS (more often than the server's default, to count its cost);
 * "bare" rounds set session_replication_role = replica in each transaction, which skips the
 * audit triggers (customers has no other insert trigger and no foreign key). Reports each pair's
 * ratio and the median. The scratch database is dropped at the end.
 */
import { sql } from 'kysely'
import { createDb, type Db } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { insertCustomer } from '../src/modules/customers/customers.repository.js'
import { sealAuditTrail } from '../src/modules/audit/audit.repository.js'
import { scratchDatabase } from './lib/scratch-db.js'

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const ROUND_MS = Number(process.env.ROUND_MS ?? 3000)
const WRITERS = Number(process.env.WRITERS ?? 4)
const SEAL_EVERY_MS = Number(process.env.SEAL_EVERY_MS ?? 1000)
/** Customers per transaction: 1 is the API's create; more shifts the cost from COMMIT to the rows. */
const ROWS_PER_TX = Number(process.env.ROWS_PER_TX ?? 1)

const scratch = scratchDatabase('audit')
const dbUrl = scratch.url

/** Customers inserted per second over one round (ROWS_PER_TX per transaction, one insert each). */
async function round(db: Db, audited: boolean, label: string): Promise<number> {
  const end = Date.now() + ROUND_MS
  let count = 0
  let sealer: NodeJS.Timeout | undefined
  let sealing: Promise<unknown> = Promise.resolve()
  if (audited) sealer = setInterval(() => (sealing = sealAuditTrail(db, { wait: false })), SEAL_EVERY_MS)
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; Date.now() < end; i++) {
        await db.transaction().execute(async (trx) => {
          await sql`select set_config('crm.actor', 'bench:writer', true), set_config('crm.request_id', ${`${label}-${w}-${i}`}, true),
                           set_config('crm.route', 'POST /v1/customers', true)`.execute(trx)
          if (!audited) await sql`set local session_replication_role = replica`.execute(trx)
          for (let k = 0; k < ROWS_PER_TX; k++) {
            await insertCustomer(trx, { name: `Bench ${label} ${w}-${i}-${k}`, tags: ['bench'], attributes: { round: label } })
          }
        })
        count += ROWS_PER_TX
      }
    }),
  )
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  clearInterval(sealer)
  await sealing
  return count / seconds
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

await scratch.create()
// The owner: session_replication_role needs it (the API's role could not turn triggers off).
const db = createDb({ connectionString: dbUrl, max: WRITERS + 1, role: null, statementTimeoutMs: 0 })
try {
  await migrateToLatest(db)
  await round(db, true, 'warmup-a')
  await round(db, false, 'warmup-b')
  const ratios: number[] = []
  for (let r = 1; r <= ROUNDS; r++) {
    // Alternate which goes first, so a trend in the machine's load does not favour one side.
    let audited: number
    let bare: number
    if (r % 2) {
      audited = await round(db, true, `a${r}`)
      bare = await round(db, false, `b${r}`)
    } else {
      bare = await round(db, false, `b${r}`)
      audited = await round(db, true, `a${r}`)
    }
    ratios.push(audited / bare)
    console.log(`round ${r}: audited ${audited.toFixed(0)} rows/s, bare ${bare.toFixed(0)} rows/s, ratio ${(audited / bare * 100).toFixed(1)}%`)
  }
  const sealed = await sealAuditTrail(db)
  const { rows } = await sql<{ intact: boolean; sealed_count: number }>`select intact, sealed_count from crm_audit_verify()`.execute(db)
  console.log(`final seal ${sealed} rows; chain intact ${rows[0]!.intact} over ${rows[0]!.sealed_count} events`)
  console.log(`audit overhead: median write throughput with audit = ${(median(ratios) * 100).toFixed(1)}% of without ` +
    `(${ROUNDS} interleaved rounds of ${ROUND_MS} ms, ${WRITERS} writers, ${ROWS_PER_TX} insert(s) per transaction, sealing every ${SEAL_EVERY_MS} ms)`)
} finally {
  await db.destroy()
  await scratch.drop()
}
