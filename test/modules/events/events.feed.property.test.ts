import t from 'tap'
import fc from 'fast-check'
import { createDb } from '../../../src/db/database.js'
import { inAuditedTransaction } from '../../../src/plugins/audit.js'
import { eventsAfter, feedHead, positionBefore, type EventRecord, type Position } from '../../../src/modules/events/index.js'
import { createTestDatabase } from '../../helpers/db.js'
import { seeded, testSeed } from '../../helpers/seed.js'

/**
 * The feed's promise under concurrency: writers on several connections run transactions that
 * interleave their writes, hold them open for random times and commit or roll back in random
 * order, while a reader follows the feed with random page sizes. The reader must see every event
 * of every committed transaction exactly once, in strictly increasing positions, and none of a
 * rolled-back one. A reader that trusted "position > cursor" alone would skip the events of a
 * transaction that wrote early and committed late.
 */

const SEED = testSeed()
const WRITERS = 4
const database = await createTestDatabase()
const writers = createDb({ connectionString: database.url, max: WRITERS })
t.teardown(async () => {
  await writers.destroy()
  await database.drop()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const transaction = fc.record({
  writer: fc.integer({ min: 0, max: WRITERS - 1 }),
  /** Customers written, one statement each, with a pause between statements. */
  rows: fc.integer({ min: 1, max: 3 }),
  pauseMs: fc.integer({ min: 0, max: 15 }),
  /** How long the transaction stays open after its last write. */
  holdMs: fc.integer({ min: 0, max: 60 }),
  rollback: fc.boolean(),
})
const scenario = fc.record({
  transactions: fc.array(transaction, { minLength: 4, maxLength: 16 }),
  pageSizes: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 8 }),
  readPauseMs: fc.integer({ min: 0, max: 10 }),
})

let run = 0

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never

async function check(s: Scenario): Promise<void> {
  run += 1
  const committed = new Set<string>()
  const rolledBack = new Set<string>()
  const start: Position = await feedHead(database.db)

  const writeAll = async (writer: number) => {
    for (const [i, tx] of s.transactions.entries()) {
      if (tx.writer !== writer) continue
      const ids: string[] = []
      try {
        await inAuditedTransaction(writers, { actor: `test:writer-${writer}`, requestId: `run-${run}-tx-${i}`, route: 'property' }, async (trx) => {
          for (let k = 0; k < tx.rows; k++) {
            const row = await trx.insertInto('customers').values({ name: `run ${run} tx ${i} row ${k}` } as never).returning('id').executeTakeFirstOrThrow()
            ids.push(row.id)
            await sleep(tx.pauseMs)
          }
          await sleep(tx.holdMs)
          if (tx.rollback) throw new Error('rolled back on purpose')
        })
        for (const id of ids) committed.add(id)
      } catch (err) {
        if ((err as Error).message !== 'rolled back on purpose') throw err
        for (const id of ids) rolledBack.add(id)
      }
    }
  }

  const seen: EventRecord[] = []
  let done = false
  const follow = async () => {
    let position = start
    for (let n = 0; ; n++) {
      const finished = done
      const page = await eventsAfter(database.db, position, { limit: s.pageSizes[n % s.pageSizes.length]! })
      if (page.expired) throw new Error('the feed expired during the test')
      seen.push(...page.events)
      position = page.next
      // Once every writer has ended, an empty page means everything committed has been read.
      if (finished && page.events.length === 0) return
      if (page.events.length === 0) await sleep(s.readPauseMs)
    }
  }

  const reader = follow()
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writeAll(w)))
  done = true
  await reader

  const ids = seen.map((e) => e.id)
  if (new Set(ids).size !== ids.length) throw new Error('an event was read twice')
  for (let i = 1; i < seen.length; i++) {
    if (!positionBefore(seen[i - 1]!.position, seen[i]!.position)) throw new Error(`positions do not increase at ${i}`)
  }
  const created = seen.filter((e) => e.type === 'customer.created').map((e) => e.entity_id)
  const leaked = created.filter((id) => rolledBack.has(id))
  if (leaked.length) throw new Error(`${leaked.length} event(s) of rolled-back transactions were read`)
  const missed = [...committed].filter((id) => !created.includes(id))
  if (missed.length) throw new Error(`${missed.length} committed event(s) were never read`)
  if (created.length !== committed.size) throw new Error(`read ${created.length} creations for ${committed.size} committed customers`)
}

t.test(seeded('concurrent writers committing in random order: the reader sees each committed event once, no rolled-back one', SEED), async (t) => {
  await fc.assert(fc.asyncProperty(scenario, check), { numRuns: 8, seed: SEED })
  t.pass(`${run} scenarios held`)
})
