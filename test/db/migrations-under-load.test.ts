import t from 'tap'
import { sql } from 'kysely'
import { readdirSync } from 'node:fs'
import { createTestDatabase } from '../helpers/db.js'
import { MIGRATIONS_DIR, pendingMigrations } from '../../src/db/migrate.js'
import { seedDatabase } from '../../scripts/seed/load.js'
import { migrateUnderLoad } from '../../bench/migrations-under-load.js'
import { testSeed } from '../helpers/seed.js'

// This wave's migrations, applied again to a seeded database while writers insert and update:
// every writer transaction commits, the migrations finish, and the longest wait is reported
// (bench/migrations-under-load.ts measures it at 100k customers and more).
const FROM = '20261204'
const database = await createTestDatabase()
t.teardown(() => database.drop())

t.test('the migrations apply under concurrent writes, and no writer fails', async (t) => {
  await seedDatabase({ url: database.url, customers: 2000, seed: testSeed() })
  const expected = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.ts') && f >= FROM).map((f) => f.replace(/\.ts$/, '')).sort()
  t.ok(expected.length > 0, `migrations from ${FROM} exist`)
  const f = await migrateUnderLoad(database.url, { from: FROM, writers: 3 })
  t.same(f.applied, expected, 'exactly those migrations ran again, in order')
  t.same(f.writerErrors, [], 'no writer transaction failed')
  t.ok(f.writerTransactions > 0, 'the writers wrote while the migrations ran')
  t.same(await pendingMigrations(database.ownerDb), [])
  const written = await sql<{ n: number }>`select count(*)::int as n from customers where name like 'Load %'`.execute(database.ownerDb)
  t.equal(written.rows[0]!.n, f.writerTransactions, 'every committed writer transaction is there')
  t.comment(
    `${f.applied.length} migrations in ${(f.migrateMs / 1000).toFixed(1)} s at 2,000 customers; ${f.writerTransactions} writer transactions, ` +
      `p99 ${f.writerP99Ms.toFixed(0)} ms, longest ${f.writerMaxMs.toFixed(0)} ms; longest lock wait ${f.longestLockWaitMs.toFixed(0)} ms` +
      (f.longestLockBlocker ? ` behind: ${f.longestLockBlocker.replace(/\s+/g, ' ').slice(0, 120)}` : ''),
  )
})
