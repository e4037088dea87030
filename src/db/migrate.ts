import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, Migrator, sql, type Kysely, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely'
import { closeWriteGate } from './write-gate.js'

/**
 * Under tsx this module is src/db/migrate.ts and the migrations are the .ts sources in migrations/;
 * in the build (`npm run build`) it is <out>/db/migrate.js and they are compiled to <out>/migrations.
 */
const COMPILED = !fileURLToPath(import.meta.url).endsWith('.ts')
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), COMPILED ? '../migrations' : '../../migrations')

/**
 * The sha256 of every migration source, by name: written by `npm run db:schema` next to the
 * sources, and copied by the build next to the compiled migrations, which are verified against it.
 */
export const CHECKSUM_MANIFEST = 'checksums.json'

/** The table where each applied migration's checksum is kept (next to Kysely's kysely_migration). */
export const CHECKSUM_TABLE = 'crm_migration_checksums'

/**
 * How long a migration statement may wait for a lock before it fails (SQLSTATE 55P03). Without
 * it an ALTER TABLE queued behind one long transaction blocks every request that touches the
 * table behind it, for as long as that transaction lasts. A migration that fails this way rolls
 * back and is retried after a pause.
 */
export interface MigrateOptions {
  /** Default 5000 (MIGRATION_LOCK_TIMEOUT_MS); 0: wait forever (PostgreSQL's default). */
  lockTimeoutMs?: number
  /** Attempts after the first when a lock is not granted in time; default 3 (MIGRATION_LOCK_RETRIES). */
  lockRetries?: number
  /** Pause before a retry, doubled each time; default 1000. */
  retryDelayMs?: number
}

const DEFAULTS: Required<MigrateOptions> = { lockTimeoutMs: 5000, lockRetries: 3, retryDelayMs: 1000 }

/**
 * A migration module. A migration runs in a transaction of its own unless it exports
 * `transactional = false`: it then runs outside any transaction, for the statements PostgreSQL
 * refuses inside one (CREATE INDEX CONCURRENTLY) or that should not hold their lock for long
 * (ALTER TABLE ... VALIDATE CONSTRAINT after adding it NOT VALID).
 * Such a migration must be safe to run again (IF NOT EXISTS): a crash between its statements and
 * its kysely_migration row leaves it applied but unrecorded. See docs/database.md, "Migrations".
 */
export interface CrmMigration extends Migration {
  transactional?: boolean
}

const isTransactional = (m: CrmMigration | undefined) => m?.transactional !== false

/** Every migration in `dir`, each of its statements run under the lock timeout. */
async function loadMigrations(dir: string, lockTimeoutMs: number): Promise<Record<string, CrmMigration>> {
  const files = (await new FileMigrationProvider({ fs, path, migrationFolder: dir }).getMigrations()) as Record<string, CrmMigration>
  const timeout = `${lockTimeoutMs}ms`
  const wrap = (m: CrmMigration, step: Migration['up']): Migration['up'] =>
    async (db) => {
      if (isTransactional(m)) {
        // The gate first, then the tables: see src/db/write-gate.ts. (migrateTo runs several in
        // one transaction: PostgreSQL counts the gate taken again as one lock held to the end.)
        await sql`select set_config('lock_timeout', ${timeout}, true), ${closeWriteGate}`.execute(db)
        return step(db)
      }
      // Outside a transaction a session setting is the only kind; put it back for what follows.
      await sql`select set_config('lock_timeout', ${timeout}, false)`.execute(db)
      try {
        return await step(db)
      } finally {
        await sql`reset lock_timeout`.execute(db)
      }
    }
  return Object.fromEntries(
    Object.entries(files).map(([name, m]) => [
      name,
      { transactional: isTransactional(m), up: wrap(m, m.up), ...(m.down ? { down: wrap(m, m.down) } : {}) },
    ]),
  )
}

function migratorOver(db: Kysely<any>, migrations: Record<string, CrmMigration>, transactional: boolean): Migrator {
  const provider: MigrationProvider = { getMigrations: async () => migrations }
  return new Migrator({
    db,
    // Work lands from parallel branches: a migration dated before one a database already ran
    // (written at the same time, merged later) still applies, in name order among the pending.
    allowUnorderedMigrations: true,
    disableTransactions: !transactional,
    provider,
  })
}

/** A migrator over every migration in `dir`, all pending ones in one transaction (what migrateTo uses). */
export function createMigrator(db: Kysely<any>, dir = MIGRATIONS_DIR, opts: MigrateOptions = {}): Migrator {
  const { lockTimeoutMs } = { ...DEFAULTS, ...opts }
  return new Migrator({ db, allowUnorderedMigrations: true, provider: { getMigrations: () => loadMigrations(dir, lockTimeoutMs) } })
}

function check(result: MigrationResultSet): MigrationResultSet {
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')
    const err = result.error instanceof Error ? result.error : new Error(String(result.error))
    err.message = `migration ${failed?.migrationName ?? '?'} failed: ${err.message}`
    throw err
  }
  return result
}

const LOCK_NOT_AVAILABLE = '55P03'
/**
 * A migration that locks several tables can deadlock with writers that touch them in another
 * order (the money migration and a transaction writing a customer, then its interactions: seen
 * by test/db/migrations-under-load.test.ts). PostgreSQL rolls the migration back; it is retried
 * like a lock timeout.
 */
const DEADLOCK_DETECTED = '40P01'
const RETRYABLE = new Set([LOCK_NOT_AVAILABLE, DEADLOCK_DETECTED])

/** Runs `attempt` again, after a growing pause, when it failed only because it did not get its locks (in time). */
async function retryingLockTimeouts(opts: Required<MigrateOptions>, attempt: () => Promise<MigrationResultSet>): Promise<MigrationResultSet> {
  for (let i = 0; ; i++) {
    try {
      return check(await attempt())
    } catch (err) {
      const code = (err as { code?: string }).code
      if (!code || !RETRYABLE.has(code)) throw err
      if (i >= opts.lockRetries) {
        ;(err as Error).message += code === LOCK_NOT_AVAILABLE
          ? ` (no lock within ${opts.lockTimeoutMs} ms, ${i + 1} attempts: a long transaction holds the table; this migration was not applied)`
          : ` (${i + 1} attempts deadlocked with other transactions; this migration was not applied)`
        throw err
      }
      await new Promise((resolve) => setTimeout(resolve, opts.retryDelayMs * 2 ** i))
    }
  }
}

async function appliedNames(db: Kysely<any>, dir: string, opts: MigrateOptions): Promise<Set<string>> {
  return new Set((await createMigrator(db, dir, opts).getMigrations()).filter((m) => m.executedAt !== undefined).map((m) => m.name))
}

/**
 * Applies every pending migration in name order, each in a transaction of its own (or, for a
 * non-transactional one, in none), recorded as it commits. One transaction per migration, not
 * one for all: the locks of each are released at its commit, so writers wait for the longest
 * migration, not for all of them together (bench/migrations-under-load.ts measured this wave's
 * eight in one transaction holding writers for the whole run), and a failure keeps what already
 * applied.
 */
export async function migrateToLatest(db: Kysely<any>, dir = MIGRATIONS_DIR, opts: MigrateOptions = {}): Promise<MigrationResultSet> {
  const o = { ...DEFAULTS, ...opts }
  await verifyMigrationChecksums(db, dir)
  const all = await loadMigrations(dir, o.lockTimeoutMs)
  const results: NonNullable<MigrationResultSet['results']> = []
  for (;;) {
    const applied = await appliedNames(db, dir, o)
    const pending = Object.keys(all).sort().filter((name) => !applied.has(name))
    if (pending.length === 0) break
    const next = pending[0]!
    const transactional = isTransactional(all[next])
    // The migrator sees what ran plus the next one, so it applies exactly that one.
    const visible = Object.fromEntries(Object.entries(all).filter(([name]) => applied.has(name) || name === next))
    const result = await retryingLockTimeouts(o, () => migratorOver(db, visible, transactional).migrateToLatest())
    await recordChecksums(db, dir, result)
    results.push(...(result.results ?? []))
  }
  // Also sets the checksum table's grants when nothing was pending (it may have been created just now).
  if (results.length === 0) await recordChecksums(db, dir, { results })
  return { results }
}

/** Reverts the latest applied migration (outside a transaction when it is a non-transactional one). */
export async function migrateDown(db: Kysely<any>, dir = MIGRATIONS_DIR, opts: MigrateOptions = {}): Promise<MigrationResultSet> {
  const o = { ...DEFAULTS, ...opts }
  await verifyMigrationChecksums(db, dir)
  const all = await loadMigrations(dir, o.lockTimeoutMs)
  const applied = (await createMigrator(db, dir, o).getMigrations()).filter((m) => m.executedAt !== undefined)
  // Kysely reverts the one it ran last (by its timestamp, then name).
  const last = applied.sort((a, b) => a.executedAt!.getTime() - b.executedAt!.getTime() || a.name.localeCompare(b.name)).at(-1)
  const transactional = isTransactional(last ? all[last.name] : undefined)
  return recordChecksums(db, dir, await retryingLockTimeouts(o, () => migratorOver(db, all, transactional).migrateDown()))
}

/** Applies or reverts migrations until `name` is the last one applied, in one transaction (benchmarks compare designs this way). */
export async function migrateTo(db: Kysely<any>, name: string, dir = MIGRATIONS_DIR): Promise<MigrationResultSet> {
  await verifyMigrationChecksums(db, dir)
  return recordChecksums(db, dir, check(await createMigrator(db, dir).migrateTo(name)))
}

/** True when every migration file has been applied: what /readyz reports. */
export async function pendingMigrations(db: Kysely<any>): Promise<string[]> {
  const all = await createMigrator(db).getMigrations()
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name)
}

/**
 * sha256 (hex) of each migration's source, by migration name (the file name without its
 * extension, as Kysely names it). A directory of .ts sources is hashed (line endings normalized,
 * so a CRLF checkout hashes the same). A directory of compiled .js migrations with the build's
 * checksums.json answers the manifest's checksums: the build checked them against the sources it
 * compiled, so a database migrated by the build and one migrated under tsx record the same sums.
 */
export function migrationFileChecksums(dir = MIGRATIONS_DIR): Record<string, string> {
  const files = readdirSync(dir).filter((f) => /\.(ts|js|mts|mjs)$/.test(f) && !/\.d\.ts$/.test(f)).sort()
  const manifestFile = path.join(dir, CHECKSUM_MANIFEST)
  if (!files.some((f) => /\.m?ts$/.test(f)) && existsSync(manifestFile)) return compiledChecksums(files, manifestFile)
  return sourceChecksums(dir, files)
}

function sourceChecksums(dir: string, files: string[]): Record<string, string> {
  const sums: Record<string, string> = {}
  for (const file of files) {
    const text = readFileSync(path.join(dir, file), 'utf8').replace(/\r\n/g, '\n')
    sums[migrationName(file)] = createHash('sha256').update(text).digest('hex')
  }
  return sums
}

function compiledChecksums(files: string[], manifestFile: string): Record<string, string> {
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, string>
  const unlisted = files.map(migrationName).filter((name) => !manifest[name])
  if (unlisted.length) {
    throw new Error(`compiled migration${unlisted.length > 1 ? 's' : ''} ${unlisted.join(', ')} not in ${manifestFile}: the build is incomplete, run npm run build again`)
  }
  return Object.fromEntries(files.map((f) => [migrationName(f), manifest[migrationName(f)]!]))
}

const migrationName = (file: string) => file.replace(/\.[^.]+$/, '')

/**
 * Migrations whose sha256 in a source directory's checksums.json is not their source's, or that
 * only one side has: empty when the manifest is current (the build ships it only then).
 */
export function staleChecksumManifest(dir = MIGRATIONS_DIR): string[] {
  const manifest = JSON.parse(readFileSync(path.join(dir, CHECKSUM_MANIFEST), 'utf8')) as Record<string, string>
  const sources = migrationFileChecksums(dir)
  return [...new Set([...Object.keys(sources), ...Object.keys(manifest)])].filter((name) => sources[name] !== manifest[name]).sort()
}

export class MigrationChecksumError extends Error {
  constructor(readonly changed: Array<{ name: string; recorded: string; now: string }>, source: string) {
    super(
      `migration file${changed.length > 1 ? 's' : ''} changed after ${source}: ` +
        changed.map((c) => `migrations/${c.name}.ts (sha256 ${c.recorded.slice(0, 12)}…, file now ${c.now.slice(0, 12)}…)`).join(', ') +
        '. A migration that has landed is frozen: restore the file and put the change in a new migration.',
    )
    this.name = 'MigrationChecksumError'
  }
}

/**
 * Fails, naming the files, when an applied migration's file no longer hashes to the checksum
 * recorded when it ran. Applied migrations with no checksum yet (a database migrated before
 * checksums existed) get their file's checksum recorded now.
 */
export async function verifyMigrationChecksums(db: Kysely<any>, dir = MIGRATIONS_DIR): Promise<void> {
  const files = migrationFileChecksums(dir)
  await db.transaction().execute(async (trx) => {
    // One migrating process at a time creates the table and backfills (servers may start together).
    await sql`select pg_advisory_xact_lock(hashtext(${CHECKSUM_TABLE}))`.execute(trx)
    await sql`create table if not exists ${sql.table(CHECKSUM_TABLE)} (
      name text primary key,
      sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
      recorded_at timestamptz not null default now()
    )`.execute(trx)
    const migrated = (await sql<{ t: string | null }>`select to_regclass('kysely_migration')::text as t`.execute(trx)).rows[0]?.t
    if (!migrated) return
    const applied = await sql<{ name: string; sha256: string | null }>`
      select m.name, c.sha256 from kysely_migration m left join ${sql.table(CHECKSUM_TABLE)} c using (name) order by m.name`.execute(trx)
    const changed = applied.rows.filter((r) => r.sha256 !== null && files[r.name] !== undefined && files[r.name] !== r.sha256)
    if (changed.length) throw new MigrationChecksumError(changed.map((r) => ({ name: r.name, recorded: r.sha256!, now: files[r.name]! })), 'they were applied to this database')
    // A missing file is Kysely's to report ("previously executed migration ... is missing").
    const unrecorded = applied.rows.filter((r) => r.sha256 === null && files[r.name] !== undefined)
    for (const r of unrecorded) await sql`insert into ${sql.table(CHECKSUM_TABLE)} (name, sha256) values (${r.name}, ${files[r.name]!}) on conflict do nothing`.execute(trx)
  })
}

async function recordChecksums(db: Kysely<any>, dir: string, result: MigrationResultSet): Promise<MigrationResultSet> {
  const files = migrationFileChecksums(dir)
  for (const r of result.results ?? []) {
    if (r.status !== 'Success') continue
    if (r.direction === 'Up') {
      await sql`insert into ${sql.table(CHECKSUM_TABLE)} (name, sha256) values (${r.migrationName}, ${files[r.migrationName]!})
        on conflict (name) do update set sha256 = excluded.sha256, recorded_at = now()`.execute(db)
    } else {
      await sql`delete from ${sql.table(CHECKSUM_TABLE)} where name = ${r.migrationName}`.execute(db)
    }
  }
  // The API's role reads the migration tables but never writes them (see the audit_chain
  // migration); this table is created before or after that role's grants, so its grants are set here.
  await sql`do $$ begin
    if exists (select from pg_roles where rolname = 'crm_app') then
      revoke insert, update, delete, truncate, references, trigger on ${sql.raw(CHECKSUM_TABLE)} from crm_app;
    end if;
  end $$`.execute(db)
  return result
}
