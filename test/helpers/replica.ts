import { execFile, execFileSync } from 'node:child_process'
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './cluster.js'

const run = promisify(execFile)

/**
 * The machine's PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): PG_BIN, else the
 * newest /usr/lib/postgresql/<version>/bin (Debian's layout; both servers use the same ones).
 */
const BIN = (() => {
  if (process.env.PG_BIN) return process.env.PG_BIN
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'pg_basebackup'))) : []
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0]
  if (!newest) throw new Error(`no PostgreSQL server binaries under ${root}/<version>/bin (install postgresql, or set PG_BIN): the replica test needs initdb, pg_ctl and pg_basebackup`)
  return path.join(root, newest, 'bin')
})()

/** PostgreSQL refuses to run as root: as root, the clusters belong to the 'postgres' user. */
const owner = (() => {
  if (process.getuid?.() !== 0) return undefined
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  return { uid: id('-u'), gid: id('-g') }
})()

async function pg(bin: string, args: string[]): Promise<string> {
  const { stdout } = await run(path.join(BIN, bin), args, { ...(owner ?? {}), env: { ...process.env, LC_ALL: 'C' }, timeout: 120_000 })
  return stdout
}

export interface OwnedServer {
  dir: string
  port: number
  url(database: string): string
  /** pg_ctl stop; 'immediate' is a crash (no shutdown checkpoint, connections cut). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>
  start(): Promise<void>
}

function server(dir: string, port: number): OwnedServer {
  let running = false
  return {
    dir,
    port,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async stop(mode = 'fast') {
      if (!running) return
      running = false
      await pg('pg_ctl', ['-D', dir, '-m', mode, '-w', 'stop'])
    },
    async start() {
      if (running) return
      await pg('pg_ctl', ['-D', dir, '-l', path.join(dir, 'server.log'), '-w', 'start'])
      running = true
    },
  }
}

export interface StreamingPair {
  primary: OwnedServer
  replica: OwnedServer
  /** Stops both servers and removes their directories. */
  destroy(): Promise<void>
}

/**
 * A primary and a streaming replica that the test owns: initdb, then pg_basebackup -R of the
 * running primary (the replica's standby.signal and primary_conninfo), each on a free port of
 * 127.0.0.1, trusted local connections, fsync off (the data is thrown away).
 */
export async function startStreamingPair(): Promise<StreamingPair> {
  const base = mkdtempSync(path.join(tmpdir(), 'crm-replica-'))
  if (owner) chownSync(base, owner.uid, owner.gid)
  const primaryDir = path.join(base, 'primary')
  const replicaDir = path.join(base, 'replica')
  const [primaryPort, replicaPort] = [await freePort(), await freePort()]
  const settings = (port: number) =>
    [
      `port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${base}'`, 'fsync = off', 'synchronous_commit = on',
      'full_page_writes = off', 'max_connections = 60', 'shared_buffers = 32MB', 'wal_level = replica', 'max_wal_senders = 4',
      'hot_standby = on', 'wal_receiver_status_interval = 1s', 'max_standby_streaming_delay = 5s',
    ].join('\n') + '\n'
  const pair = { primary: server(primaryDir, primaryPort), replica: server(replicaDir, replicaPort) }
  const destroy = async () => {
    await pair.replica.stop('immediate').catch(() => {})
    await pair.primary.stop('immediate').catch(() => {})
    rmSync(base, { recursive: true, force: true })
  }
  try {
    await pg('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync', '--no-instructions'])
    appendFileSync(primaryDir + '/postgresql.conf', settings(primaryPort))
    await pair.primary.start()
    await pg('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', replicaDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'])
    // The copied postgresql.conf names the primary's port; the last setting wins.
    appendFileSync(replicaDir + '/postgresql.conf', `port = ${replicaPort}\n`)
    await pair.replica.start()
  } catch (err) {
    await destroy()
    throw err
  }
  return { ...pair, destroy }
}
