/**
 * `npm run migrate` (in production `node dist/cli/migrate.js`) applies every pending migration;
 * `-- down` reverts the latest one. Uses DATABASE_URL, or the embedded PostgreSQL under DATA_DIR
 * like `npm start`. Start migrates on its own unless MIGRATE_ON_START=false (the production
 * default): then this is the release step that runs before the new version's instances start.
 */
import { pino, type LoggerOptions } from 'pino'
import { loggerOptions } from '../app.js'
import { loadConfig, migrateOptions, orExitOnConfigError } from '../config.js'
import { createMigrationDb, resolveDatabase, type DatabaseTarget } from '../db/connect.js'
import { migrateDown, migrateToLatest } from '../db/migrate.js'

const direction = process.argv[2] ?? 'up'
if (process.argv.length > 3 || (direction !== 'up' && direction !== 'down')) {
  process.stderr.write('usage: npm run migrate [-- up|down]\n')
  process.exit(2)
}

const config = await orExitOnConfigError(() => loadConfig())

const log = pino(loggerOptions(config.LOG_LEVEL) as LoggerOptions)
let target: DatabaseTarget | undefined
let code = 0
try {
  target = await resolveDatabase(config, log)
  const db = createMigrationDb(target.url, log)
  try {
    const { results = [] } = direction === 'up' ? await migrateToLatest(db, undefined, migrateOptions(config)) : await migrateDown(db, undefined, migrateOptions(config))
    if (results.length === 0) process.stdout.write(direction === 'up' ? 'No pending migrations.\n' : 'No migration to revert.\n')
    for (const r of results) process.stdout.write(`${r.direction === 'Up' ? 'applied ' : 'reverted'} ${r.migrationName}\n`)
  } finally {
    await db.destroy()
  }
} catch (err) {
  process.stderr.write(`migrate ${direction} failed: ${(err as Error).message}\n`)
  code = 1
} finally {
  await target?.embedded?.stop()
}
process.exit(code)
