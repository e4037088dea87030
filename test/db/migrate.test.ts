import t from 'tap'
import { sql } from 'kysely'
import { readdirSync } from 'node:fs'
import { createTestDatabase } from '../helpers/db.js'
import { MIGRATIONS_DIR, migrateDown, migrateToLatest, pendingMigrations } from '../../src/db/migrate.js'

const database = await createTestDatabase()
t.teardown(() => database.drop())
// Migrations run as the owner, as the server runs them, not as the API role.
const db = database.ownerDb

const files = readdirSync(MIGRATIONS_DIR).filter((f) => /\.ts$/.test(f)).map((f) => f.replace(/\.ts$/, '')).sort()
const tables = async () =>
  (await sql<{ t: string }>`select tablename as t from pg_tables where schemaname = 'public' and tablename not like 'kysely_%' order by 1`.execute(db)).rows.map((r) => r.t)

t.test('the cloned template is fully migrated', async (t) => {
  t.same(await pendingMigrations(db), [])
  t.ok((await tables()).includes('customers'))
})

t.test('every migration goes down and up again, one at a time', async (t) => {
  const before = await tables()
  for (let i = files.length - 1; i >= 0; i--) {
    const { results = [] } = await migrateDown(db)
    t.same(results.map((r) => [r.migrationName, r.direction, r.status]), [[files[i], 'Down', 'Success']], `down ${files[i]}`)
  }
  t.same(await tables(), [], 'nothing is left after the last down')
  t.same(await pendingMigrations(db), files)
  const { results = [] } = await migrateToLatest(db)
  t.same(results.map((r) => r.migrationName), files, 'all of them apply again in order')
  t.same(await tables(), before, 'the same tables as before')
})
