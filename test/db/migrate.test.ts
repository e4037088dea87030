import t from 'tap'
import { sql } from 'kysely'
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createTestDatabase } from '../helpers/db.js'
import {
  CHECKSUM_MANIFEST,
  CHECKSUM_TABLE,
  MIGRATIONS_DIR,
  MigrationChecksumError,
  migrateDown,
  migrateToLatest,
  migrationFileChecksums,
  pendingMigrations,
  staleChecksumManifest,
} from '../../src/db/migrate.js'

const database = await createTestDatabase()
t.teardown(() => database.drop())
// Migrations run as the owner, as the server runs them, not as the API role.
const db = database.ownerDb

const files = readdirSync(MIGRATIONS_DIR).filter((f) => /\.ts$/.test(f)).map((f) => f.replace(/\.ts$/, '')).sort()
const tables = async () =>
  (await sql<{ t: string }>`select tablename as t from pg_tables where schemaname = 'public' and tablename not like 'kysely_%' and tablename <> ${CHECKSUM_TABLE} order by 1`.execute(db)).rows.map((r) => r.t)
const recorded = async () =>
  Object.fromEntries((await sql<{ name: string; sha256: string }>`select name, sha256 from ${sql.table(CHECKSUM_TABLE)} order by name`.execute(db)).rows.map((r) => [r.name, r.sha256]))

t.test('the cloned template is fully migrated', async (t) => {
  t.same(await pendingMigrations(db), [])
  t.ok((await tables()).includes('customers'))
  t.same(await recorded(), migrationFileChecksums(), 'every applied migration has its file checksum recorded')
})

t.test('every migration goes down and up again, one at a time', async (t) => {
  const before = await tables()
  for (let i = files.length - 1; i >= 0; i--) {
    const { results = [] } = await migrateDown(db)
    t.same(results.map((r) => [r.migrationName, r.direction, r.status]), [[files[i], 'Down', 'Success']], `down ${files[i]}`)
  }
  t.same(await tables(), [], 'nothing is left after the last down')
  t.same(await recorded(), {}, 'a reverted migration loses its checksum')
  t.same(await pendingMigrations(db), files)
  const { results = [] } = await migrateToLatest(db)
  t.same(results.map((r) => r.migrationName), files, 'all of them apply again in order')
  t.same(await tables(), before, 'the same tables as before')
  t.same(await recorded(), migrationFileChecksums(), 'and their checksums are recorded again')
})

t.test('an applied migration whose recorded checksum differs from its file fails the migrate, naming the file', async (t) => {
  const name = files[3]!
  const original = (await recorded())[name]!
  await sql`update ${sql.table(CHECKSUM_TABLE)} set sha256 = ${'0'.repeat(64)} where name = ${name}`.execute(db)
  t.teardown(() => sql`update ${sql.table(CHECKSUM_TABLE)} set sha256 = ${original} where name = ${name}`.execute(db))
  const err = await migrateToLatest(db).then(() => undefined, (e: unknown) => e)
  t.type(err, MigrationChecksumError)
  t.match((err as Error).message, `migrations/${name}.ts`)
  t.match((err as Error).message, /frozen/)
  await t.rejects(migrateDown(db), MigrationChecksumError, 'going down is refused too')
  t.same(await pendingMigrations(db), [], 'nothing was reverted')
})

t.test('editing a migration file that has run fails the migrate before anything runs', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'crm-migrations-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(MIGRATIONS_DIR, dir, { recursive: true })
  const name = files[files.length - 1]!
  appendFileSync(path.join(dir, `${name}.ts`), '\n// an edit after the migration landed\n')
  await t.rejects(migrateToLatest(db, dir), { name: 'MigrationChecksumError', message: new RegExp(`migrations/${name}\\.ts \\(sha256 `) })
  t.same(await recorded(), migrationFileChecksums(), 'the recorded checksums are unchanged')
  t.notOk(Object.keys(migrationFileChecksums(dir)).some((n) => n !== name && migrationFileChecksums(dir)[n] !== migrationFileChecksums()[n]), 'only that file differs')
})

t.test('compiled migrations (the build) answer the checksums of the manifest the build ships, and are verified against them', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'crm-compiled-migrations-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const manifest = JSON.parse(readFileSync(path.join(MIGRATIONS_DIR, CHECKSUM_MANIFEST), 'utf8')) as Record<string, string>
  for (const name of files) writeFileSync(path.join(dir, `${name}.js`), 'export async function up() {}\n')
  writeFileSync(path.join(dir, CHECKSUM_MANIFEST), JSON.stringify(manifest))
  t.same(migrationFileChecksums(dir), migrationFileChecksums(), 'the same sums as the sources: a database migrated either way verifies under the other')

  const name = files[files.length - 1]!
  writeFileSync(path.join(dir, CHECKSUM_MANIFEST), JSON.stringify({ ...manifest, [name]: '0'.repeat(64) }))
  await t.rejects(migrateToLatest(db, dir), { name: 'MigrationChecksumError', message: new RegExp(`migrations/${name}\\.ts \\(sha256 `) }, 'a build whose manifest differs from what ran is refused')

  writeFileSync(path.join(dir, CHECKSUM_MANIFEST), JSON.stringify(manifest))
  writeFileSync(path.join(dir, '20991231T000000_unlisted.js'), 'export async function up() {}\n')
  t.throws(() => migrationFileChecksums(dir), { message: /compiled migration 20991231T000000_unlisted not in .*checksums\.json: the build is incomplete/ })
  t.same(await recorded(), migrationFileChecksums(), 'the recorded checksums are unchanged')
})

t.test('the committed checksum manifest is current, and an edited source or a missing entry makes it stale (the build refuses then)', async (t) => {
  t.same(staleChecksumManifest(), [], 'migrations/checksums.json matches the sources')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'crm-migrations-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(MIGRATIONS_DIR, dir, { recursive: true })
  const [first, last] = [files[0]!, files[files.length - 1]!]
  appendFileSync(path.join(dir, `${last}.ts`), '\n// an edit after the migration landed\n')
  const manifest = JSON.parse(readFileSync(path.join(dir, CHECKSUM_MANIFEST), 'utf8')) as Record<string, string>
  delete manifest[first]
  writeFileSync(path.join(dir, CHECKSUM_MANIFEST), JSON.stringify(manifest))
  t.same(staleChecksumManifest(dir), [first, last])
})

t.test('a database migrated before checksums existed gets them recorded on its next migrate', async (t) => {
  await sql`drop table ${sql.table(CHECKSUM_TABLE)}`.execute(db)
  const { results = [] } = await migrateToLatest(db)
  t.same(results, [], 'no migration ran')
  t.same(await recorded(), migrationFileChecksums(), 'every applied migration got its checksum')
})

t.test("the API's role reads the checksums but cannot change them", async (t) => {
  const app = database.db
  t.ok((await sql`select name from ${sql.table(CHECKSUM_TABLE)}`.execute(app)).rows.length > 0)
  await t.rejects(sql`update ${sql.table(CHECKSUM_TABLE)} set sha256 = ${'0'.repeat(64)}`.execute(app), { code: '42501' })
  await t.rejects(sql`delete from ${sql.table(CHECKSUM_TABLE)}`.execute(app), { code: '42501' })
})

/** A copy of the migrations plus `extra` (name → source), inside the project so their imports resolve. */
function migrationsWith(t: { teardown(fn: () => void): void }, extra: Record<string, string>): string {
  mkdirSync('.data', { recursive: true })
  const dir = mkdtempSync(path.resolve('.data/migrations-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(MIGRATIONS_DIR, dir, { recursive: true })
  for (const [name, source] of Object.entries(extra)) writeFileSync(path.join(dir, `${name}.ts`), source)
  return dir
}

t.test('a migration that exports transactional = false runs alone outside a transaction (CREATE INDEX CONCURRENTLY)', async (t) => {
  const dir = migrationsWith(t, {
    '29990101T000000_plain': `import { sql } from 'kysely'
export const up = async (db: any) => { await sql\`create table crm_test_plain (id int, note text)\`.execute(db) }
export const down = async (db: any) => { await sql\`drop table crm_test_plain\`.execute(db) }`,
    '29990101T000001_concurrent': `import { sql } from 'kysely'
export const transactional = false
export const up = async (db: any) => { await sql\`create index concurrently if not exists crm_test_plain_note on crm_test_plain (note)\`.execute(db) }
export const down = async (db: any) => { await sql\`drop index concurrently if exists crm_test_plain_note\`.execute(db) }`,
    '29990101T000002_after': `import { sql } from 'kysely'
export const up = async (db: any) => { await sql\`alter table crm_test_plain add column later int\`.execute(db) }
export const down = async (db: any) => { await sql\`alter table crm_test_plain drop column later\`.execute(db) }`,
  })
  const { results = [] } = await migrateToLatest(db, dir)
  t.same(results.map((r) => [r.migrationName, r.status]), [
    ['29990101T000000_plain', 'Success'], ['29990101T000001_concurrent', 'Success'], ['29990101T000002_after', 'Success'],
  ], 'in name order, the concurrent one between the others')
  const index = await sql<{ valid: boolean }>`select indisvalid as valid from pg_index where indexrelid = 'crm_test_plain_note'::regclass`.execute(db)
  t.same(index.rows, [{ valid: true }], 'the index was built concurrently and is valid')
  for (const name of ['29990101T000002_after', '29990101T000001_concurrent', '29990101T000000_plain']) {
    const down = await migrateDown(db, dir)
    t.same(down.results?.map((r) => [r.migrationName, r.status]), [[name, 'Success']], `down ${name}`)
  }
  t.same(await pendingMigrations(db), [], 'back where it was')
})

t.test('a migration that cannot get its lock in time gives up, is retried, and leaves nothing applied', async (t) => {
  const dir = migrationsWith(t, {
    '29990101T000100_alter_customers': `import { sql } from 'kysely'
export const up = async (db: any) => { await sql\`alter table customers add column crm_test_col int\`.execute(db) }
export const down = async (db: any) => { await sql\`alter table customers drop column crm_test_col\`.execute(db) }`,
  })
  // A long reader: ALTER TABLE needs an ACCESS EXCLUSIVE lock, which waits for it.
  const failure = await database.ownerDb.connection().execute(async (conn) => {
    await sql`begin`.execute(conn)
    await sql`select count(*) from customers`.execute(conn)
    const err = await migrateToLatest(db, dir, { lockTimeoutMs: 100, lockRetries: 2, retryDelayMs: 20 }).then(() => undefined, (e: unknown) => e)
    await sql`rollback`.execute(conn)
    return err
  })
  t.match(failure, { code: '55P03', message: /29990101T000100_alter_customers failed: .*no lock within 100 ms, 3 attempts/ })
  t.same(await pendingMigrations(db), [], 'the real migrations were all applied already')
  const column = await sql`select 1 from information_schema.columns where table_name = 'customers' and column_name = 'crm_test_col'`.execute(db)
  t.equal(column.rows.length, 0, 'the column was not added')
  const { results = [] } = await migrateToLatest(db, dir, { lockTimeoutMs: 100 })
  t.same(results.map((r) => r.migrationName), ['29990101T000100_alter_customers'], 'once the reader is gone it applies')
  await migrateDown(db, dir)
})
