import { execFile } from 'node:child_process'
import { appendFileSync, chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './cluster.js'

const run = promisify(execFile)

/** The PostgreSQL 15 binaries of the machine (pg_basebackup among them); PG_BIN overrides. */
const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin'

/** PostgreSQL refuses to run as root: as root, the clusters belong to the 'postgres' user. */
const owner = (() => {
  if (process.getuid?.() !== 0) return undefined
  return { uid: Number(process.env.PG_UID ?? 101), gid: Number(process.env.PG_GID ?? 104) }
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
