import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, Migrator, type Kysely, type MigrationResultSet } from 'kysely'

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations')

export function createMigrator(db: Kysely<any>): Migrator {
  return new Migrator({
    db,
    // Work lands from parallel branches: a migration dated before one a database already ran
    // (written at the same time, merged later) still applies, in name order among the pending.
    allowUnorderedMigrations: true,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }),
  })
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

export async function migrateToLatest(db: Kysely<any>): Promise<MigrationResultSet> {
  return check(await createMigrator(db).migrateToLatest())
}

export async function migrateDown(db: Kysely<any>): Promise<MigrationResultSet> {
  return check(await createMigrator(db).migrateDown())
}

/** Applies or reverts migrations until `name` is the last one applied (benchmarks compare designs this way). */
export async function migrateTo(db: Kysely<any>, name: string): Promise<MigrationResultSet> {
  return check(await createMigrator(db).migrateTo(name))
}

/** True when every migration file has been applied: what /readyz reports. */
export async function pendingMigrations(db: Kysely<any>): Promise<string[]> {
  const all = await createMigrator(db).getMigrations()
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name)
}
