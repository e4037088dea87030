import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { createDb, type Db } from '../../src/db/database.js'

/**
 * A database of the test file's own, cloned from the migrated template that scripts/test.ts
 * prepared, and dropped when the file ends.
 */
export interface TestDatabase {
  /** The pool the app uses: it runs as the API's role (crm_app), as in production. */
  db: Db
  /** The same database as its owner (the login user), for set-up the API's role may not do. */
  ownerDb: Db
  url: string
  name: string
  drop(): Promise<void>
}

function env(name: string): string {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is unset: run the tests with "npm test"`)
  return v
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: env('CRM_TEST_ADMIN_URL') })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** Named after the runner's pid, so a later run drops what an interrupted one left. */
function newDatabaseName(): string {
  const runnerPid = env('CRM_TEST_TEMPLATE').replace('crm_tpl_', '')
  return `crm_t_${runnerPid}_${randomBytes(4).toString('hex')}`
}

function databaseUrl(name: string): string {
  const u = new URL(env('CRM_TEST_ADMIN_URL'))
  u.pathname = '/' + name
  return u.toString()
}

/** A database with nothing in it (not even the migrations), for what creates a schema itself: dropped by drop(). */
export async function createEmptyDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = newDatabaseName()
  await admin((c) => c.query(`create database "${name}" template template0 encoding 'UTF8'`))
  return { url: databaseUrl(name), name, drop: () => admin((c) => c.query(`drop database if exists "${name}" with (force)`)).then(() => {}) }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const template = env('CRM_TEST_TEMPLATE')
  const name = newDatabaseName()
  // Two files cloning the template at the same moment can collide ("being accessed by other
  // users"): retry briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      await admin((c) => c.query(`create database "${name}" template "${template}"`))
      break
    } catch (err) {
      if (attempt >= 20 || (err as { code?: string }).code !== '55006') throw err
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200))
    }
  }
  const url = databaseUrl(name)
  const db = createDb({ connectionString: url, max: 5 })
  const ownerDb = createDb({ connectionString: url, max: 2, role: null })
  return {
    db,
    ownerDb,
    url,
    name,
    async drop() {
      await db.destroy()
      await ownerDb.destroy()
      await admin((c) => c.query(`drop database if exists "${name}" with (force)`))
    },
  }
}
