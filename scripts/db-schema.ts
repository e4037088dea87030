/**
 * `npm run db:schema` migrates a scratch database from nothing and writes what it finds:
 *   db/schema.sql            the schema, pg_dump --schema-only, normalized
 *   src/db/schema.ts         the table types, by kysely-codegen
 *   docs/database.md         its generated section: triggers by table, functions and their migration
 *   migrations/checksums.json sha256 of every migration file
 * `npm run db:schema:check` produces the same in memory and exits 1, naming each file, when a
 * committed one differs, and names any migration edited after it landed.
 *
 * Needs DATABASE_URL (a user that may create databases) on PostgreSQL 15 with a pg_dump of the
 * same major: the embedded server of `npm start` is PostgreSQL 17 and ships no pg_dump, and
 * another major would deparse some definitions differently. The scratch database is always dropped.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { sql } from 'kysely'
import { createMigrationDb } from '../src/db/connect.js'
import { migrateToLatest, migrationFileChecksums } from '../src/db/migrate.js'
import { catalogSection, DOC_BEGIN, DOC_END } from './db-schema/catalog.js'
import { findPgTool } from '../src/db/pg-tools.js'
import { dumpSchema, SCHEMA_PG_MAJOR } from './db-schema/dump.js'
import { generateTypes } from './db-schema/types.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const FILES = {
  sql: 'db/schema.sql',
  types: 'src/db/schema.ts',
  doc: 'docs/database.md',
  manifest: 'migrations/checksums.json',
}
const check = process.argv.includes('--check')

/** Thrown: the scratch database is dropped on the way out, then the message is printed. */
function fail(message: string): never {
  throw new Error(message)
}

try {
  const adminUrl = process.env.DATABASE_URL
  if (!adminUrl) {
    fail(
      `DATABASE_URL is unset. The schema is generated on PostgreSQL ${SCHEMA_PG_MAJOR} with its pg_dump (the embedded server ` +
        `is another major and has no pg_dump): set DATABASE_URL to a PostgreSQL ${SCHEMA_PG_MAJOR} server whose user may create databases, ` +
        `e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres as in CI.`,
    )
  }
  const outputs = await generateAll(adminUrl)
  if (!check) {
    for (const [file, text] of Object.entries(outputs)) {
      await mkdir(path.dirname(path.join(ROOT, file)), { recursive: true })
      await writeFile(path.join(ROOT, file), text)
      process.stdout.write(`wrote ${file}\n`)
    }
  } else {
    const problems = await compareAll(outputs)
    if (problems.length) {
      process.stderr.write(`${problems.join('\n\n')}\n\n`)
      fail('the committed schema files differ from a fresh migrate (see above).')
    }
    process.stdout.write(`${Object.keys(outputs).join(', ')} are up to date; no landed migration was edited\n`)
  }
} catch (err) {
  process.stderr.write(`db:schema${check ? ':check' : ''}: ${err instanceof Error ? err.message : String(err)}\n`)
  // Explicit: a client left open by the failure must not keep the process alive.
  process.exit(1)
}
process.exit(0)

/** Every output file's full expected content, by path relative to the repository. */
async function generateAll(url: string): Promise<Record<string, string>> {
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  const major = Math.floor(Number((await admin.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]!.v) / 10000)
  if (major !== SCHEMA_PG_MAJOR) {
    await admin.end()
    fail(`DATABASE_URL is PostgreSQL ${major}; the committed schema is generated on PostgreSQL ${SCHEMA_PG_MAJOR} (CI's). Point DATABASE_URL at a ${SCHEMA_PG_MAJOR} server.`)
  }
  const pgDump = await findPgTool('pg_dump', major).catch((err: Error) => fail(err.message))
  const scratch = `crm_schema_${process.pid}`
  await dropStale(admin)
  const drop = async () => {
    await admin.query(`drop database if exists "${scratch}" with (force)`)
  }
  // Interrupted by Ctrl-C or a CI timeout: the scratch database still goes.
  const onSignal = (signal: NodeJS.Signals) => {
    void drop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    await admin.query(`create database "${scratch}" template template0 encoding 'UTF8'`)
    const u = new URL(url)
    u.pathname = `/${scratch}`
    const db = createMigrationDb(u.toString())
    try {
      await migrateToLatest(db)
      const owner = (await sql<{ u: string }>`select current_user as u`.execute(db)).rows[0]!.u
      const doc = await readFile(path.join(ROOT, FILES.doc), 'utf8').catch(() => fail(`${FILES.doc} is missing: it holds the prose around the generated section`))
      return {
        [FILES.sql]: await dumpSchema(pgDump, u.toString(), owner),
        [FILES.types]: await generateTypes(db),
        [FILES.doc]: replaceSection(doc, await catalogSection(db)),
        [FILES.manifest]: JSON.stringify(migrationFileChecksums(), null, 2) + '\n',
      }
    } finally {
      await db.destroy()
    }
  } finally {
    await drop()
    await admin.end()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Scratch databases of runs that were killed (their pid is gone). */
async function dropStale(admin: pg.Client): Promise<void> {
  const stale = await admin.query<{ datname: string }>(`select datname from pg_database where datname ~ '^crm_schema_[0-9]+$'`)
  for (const { datname } of stale.rows) {
    const pid = Number(datname.slice('crm_schema_'.length))
    let alive = true
    try {
      process.kill(pid, 0)
    } catch {
      alive = false
    }
    if (!alive) await admin.query(`drop database if exists "${datname}" with (force)`)
  }
}

function replaceSection(doc: string, section: string): string {
  const begin = doc.indexOf(DOC_BEGIN)
  const end = doc.indexOf(DOC_END)
  if (begin < 0 || end < begin) fail(`${FILES.doc} lacks the markers of its generated section:\n${DOC_BEGIN}\n${DOC_END}`)
  return doc.slice(0, begin) + section + doc.slice(end + DOC_END.length)
}

async function compareAll(expected: Record<string, string>): Promise<string[]> {
  const problems: string[] = []
  const committedManifest = await readFile(path.join(ROOT, FILES.manifest), 'utf8').then((t) => JSON.parse(t) as Record<string, string>, () => undefined)
  if (committedManifest) {
    const files = migrationFileChecksums()
    const edited = Object.entries(committedManifest).filter(([name, sum]) => files[name] !== undefined && files[name] !== sum).map(([name]) => `migrations/${name}.ts`)
    const removed = Object.keys(committedManifest).filter((name) => files[name] === undefined).map((name) => `migrations/${name}.ts`)
    if (edited.length) problems.push(`A migration that has landed was edited: ${edited.join(', ')}. Migrations are frozen: restore the file and put the change in a new migration.`)
    if (removed.length) problems.push(`A migration that has landed was removed: ${removed.join(', ')}.`)
  }
  for (const [file, text] of Object.entries(expected)) {
    const committed = await readFile(path.join(ROOT, file), 'utf8').catch(() => undefined)
    if (committed === text) continue
    if (committed === undefined) {
      problems.push(`${file} is missing. Run "npm run db:schema" and commit it.`)
      continue
    }
    problems.push(`${file} differs from a fresh migrate (- committed, + expected):\n${await unifiedDiff(committed, text)}\nRun "npm run db:schema" and commit the result.`)
  }
  return problems
}

/** The first lines of `diff -u`, enough to see what changed. */
async function unifiedDiff(a: string, b: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'db-schema-'))
  try {
    await writeFile(path.join(dir, 'committed'), a)
    await writeFile(path.join(dir, 'expected'), b)
    const out = await new Promise<string>((resolve) => {
      execFile('diff', ['-u', path.join(dir, 'committed'), path.join(dir, 'expected')], { maxBuffer: 16 * 1024 * 1024 }, (_err, stdout) => resolve(stdout))
    })
    const lines = out.split('\n').slice(2)
    if (lines.length <= 1) return '  (diff unavailable)'
    return lines.slice(0, 60).join('\n') + (lines.length > 60 ? `\n... ${lines.length - 60} more diff lines` : '')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

