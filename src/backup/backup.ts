/**
 * Backup and restore of the whole database with pg_dump/pg_restore (custom format), each dump
 * with its manifest (see manifest.ts). A restore reports success only after the restored database
 * matched the manifest: every table's row count, the migration level, and an intact audit chain
 * with the backup's head.
 */
import { spawn } from 'node:child_process'
import { rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { createMigrationDb } from '../db/connect.js'
import { findPgTool, pgToolConnection } from '../db/pg-tools.js'
import { sealAuditTrail, verifyAuditChain } from '../modules/audit/index.js'
import {
  analyzeDatabase, dropPartitionedTables, ensureRoles, exportSnapshot, grantedRoles, inRecovery, migrationLevel, serverMajor, tableRowCounts, userRelationCount,
} from './backup.repository.js'
import { compareWithManifest, MANIFEST_FORMAT, manifestPath, readManifest, sha256File, writeManifest, type BackupManifest } from './manifest.js'

const SEAL_BATCH = 50_000

export async function createBackup(opts: { url: string; out: string }): Promise<BackupManifest> {
  const db = createMigrationDb(opts.url)
  const partial = `${opts.out}.partial`
  try {
    const major = await serverMajor(db)
    const pgDump = await findPgTool('pg_dump', major)
    // Seal first, so the chain covers every audit event committed so far (a replica cannot write: its primary seals).
    if (!(await inRecovery(db))) {
      let sealed: number
      do sealed = await sealAuditTrail(db, { maxRows: SEAL_BATCH })
      while (sealed === SEAL_BATCH)
    }
    const manifest = await db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(async (trx) => {
      // pg_dump reads the snapshot this transaction holds: the counts below describe exactly the dump.
      const snapshot = await exportSnapshot(trx)
      const { dbname, env } = pgToolConnection(opts.url)
      await runTool(pgDump, ['--format=custom', `--snapshot=${snapshot}`, `--file=${partial}`, `--dbname=${dbname}`], env)
      const chain = await verifyAuditChain(trx, { readOnly: true })
      return {
        format: MANIFEST_FORMAT,
        created_at: new Date().toISOString(),
        server_major: major,
        dump: { file: path.basename(opts.out), bytes: 0, sha256: '', format: 'pg_dump custom' },
        migrations: await migrationLevel(trx),
        row_counts: await tableRowCounts(trx),
        audit_chain: {
          intact: chain.intact, sealed_count: chain.sealed_count, unsealed_count: chain.unsealed_count,
          head_seq: chain.head_seq, head_hash: chain.head_hash, broken_seq: chain.broken_seq, reason: chain.reason,
        },
        roles: await grantedRoles(trx),
      } satisfies BackupManifest
    })
    manifest.dump.bytes = (await stat(partial)).size
    manifest.dump.sha256 = await sha256File(partial)
    await rename(partial, opts.out)
    await writeManifest(opts.out, manifest)
    return manifest
  } finally {
    await rm(partial, { force: true })
    await db.destroy()
  }
}

export class RestoreError extends Error {
  override name = 'RestoreError'
}

export interface RestoreResult {
  manifest: BackupManifest
  createdRoles: string[]
}

/**
 * Restores `input` into the database at `url`: refuses a dump that is not the one the manifest
 * describes and, unless `force`, a database that holds anything; then pg_restore in one
 * transaction, then the checks against the manifest. A RestoreError says what failed.
 */
export async function restoreBackup(opts: { input: string; url: string; force?: boolean }): Promise<RestoreResult> {
  const manifest = await readManifest(opts.input)
  const sha256 = await sha256File(opts.input).catch((err: Error) => {
    throw new RestoreError(`cannot read ${opts.input}: ${err.message}`)
  })
  if (sha256 !== manifest.dump.sha256) {
    throw new RestoreError(`${opts.input} is not the dump ${manifestPath(opts.input)} describes (sha256 ${sha256.slice(0, 12)}…, manifest ${manifest.dump.sha256.slice(0, 12)}…): refusing to restore it`)
  }
  const db = createMigrationDb(opts.url)
  try {
    const major = await serverMajor(db)
    if (major < manifest.server_major) throw new RestoreError(`the target server is PostgreSQL ${major}; the backup comes from ${manifest.server_major}: restore into ${manifest.server_major} or newer`)
    const pgRestore = await findPgTool('pg_restore', major)
    const existing = await userRelationCount(db)
    if (existing > 0 && !opts.force) {
      throw new RestoreError(`the target database is not empty (${existing} tables, views or sequences): restore into a new database, or pass --force to replace what the backup holds`)
    }
    if (existing > 0 && opts.force) {
      // pg_restore --clean drops a partition's primary key on its own, which PostgreSQL refuses
      // (it is the parent's): the partitioned tables go first, whole, with their partitions.
      // Outside pg_restore's transaction: with --force a failed restore leaves them dropped.
      await dropPartitionedTables(db)
    }
    const createdRoles = await ensureRoles(db, manifest.roles)
    const { dbname, env } = pgToolConnection(opts.url)
    // One transaction: a restore that fails part-way leaves the database as it was. --no-owner:
    // the restoring user owns what it creates; the grants (the API role's, least privilege) stay.
    const args = ['--single-transaction', '--exit-on-error', '--no-owner', ...(opts.force ? ['--clean', '--if-exists'] : []), `--dbname=${dbname}`, opts.input]
    await runTool(pgRestore, args, env).catch((err: Error) => {
      throw new RestoreError(`pg_restore failed, nothing was restored${opts.force && existing > 0 ? ' (but --force had dropped the target\'s partitioned tables, audit_events and events, first)' : ''}: ${err.message}`)
    })
    const problems = compareWithManifest(manifest, {
      migrations: await migrationLevel(db),
      row_counts: await tableRowCounts(db),
      audit_chain: await verifyAuditChain(db, { readOnly: true }),
    })
    if (problems.length) {
      throw new RestoreError(`the restored database does not match the backup's manifest; do not use it:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    }
    await analyzeDatabase(db)
    return { manifest, createdRoles }
  } finally {
    await db.destroy()
  }
}

/** Runs a PostgreSQL client program; rejects with the end of its stderr when it fails. */
function runTool(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)))
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (code === 0) resolve()
      else reject(new Error(`${path.basename(bin)} exited with ${code ?? signal}: ${stderr.trim() || 'no message'}`))
    })
  })
}
