/**
 * What a backup says about itself, written next to the dump as <dump>.manifest.json: the dump's
 * sha256, the migration level, the exact row count of every table and the audit chain's state,
 * all read in the snapshot pg_dump dumped. A restore checks the restored database against it.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import type { ChainVerification } from '../modules/audit/index.js'
import type { MigrationLevel } from './backup.repository.js'

export const MANIFEST_FORMAT = 'crm-api-backup/1'

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT
  created_at: string
  /** The source server's major: a restore needs a server at least as new. */
  server_major: number
  dump: { file: string; bytes: number; sha256: string; format: 'pg_dump custom' }
  migrations: MigrationLevel
  row_counts: Record<string, number>
  audit_chain: Pick<ChainVerification, 'intact' | 'sealed_count' | 'unsealed_count' | 'head_seq' | 'head_hash' | 'broken_seq' | 'reason'>
  /** Roles the grants name (created as NOLOGIN on restore when the target cluster lacks them). */
  roles: string[]
}

export const manifestPath = (dumpFile: string) => `${dumpFile}.manifest.json`

export async function writeManifest(dumpFile: string, manifest: BackupManifest): Promise<void> {
  await writeFile(manifestPath(dumpFile), JSON.stringify(manifest, null, 2) + '\n')
}

export async function readManifest(dumpFile: string): Promise<BackupManifest> {
  const file = manifestPath(dumpFile)
  const text = await readFile(file, 'utf8').catch(() => {
    throw new Error(`${file} is missing: a backup is the dump and its manifest, written side by side by npm run backup`)
  })
  const manifest = JSON.parse(text) as BackupManifest
  if (manifest.format !== MANIFEST_FORMAT) throw new Error(`${file} is not a ${MANIFEST_FORMAT} manifest (format ${JSON.stringify(manifest.format)})`)
  return manifest
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    createReadStream(file).on('data', (chunk) => hash.update(chunk)).on('error', reject).on('end', () => resolve(hash.digest('hex')))
  })
}

/** What the restored database holds, read the way the manifest was. */
export type RestoredState = Pick<BackupManifest, 'migrations' | 'row_counts' | 'audit_chain'>

/** Every way the restored database differs from the manifest, one readable line each; empty when it matches. */
export function compareWithManifest(manifest: BackupManifest, restored: RestoredState): string[] {
  const problems: string[] = []
  const tables = [...new Set([...Object.keys(manifest.row_counts), ...Object.keys(restored.row_counts)])].sort()
  for (const table of tables) {
    const want = manifest.row_counts[table]
    const got = restored.row_counts[table]
    if (want === undefined) problems.push(`table ${table} is not in the backup (${got} rows)`)
    else if (got === undefined) problems.push(`table ${table} is missing (the backup has ${want} rows)`)
    else if (want !== got) problems.push(`table ${table} has ${got} rows, the backup ${want}`)
  }
  if (restored.migrations.last !== manifest.migrations.last) {
    problems.push(`the last applied migration is ${restored.migrations.last ?? 'none'}, the backup's ${manifest.migrations.last ?? 'none'}`)
  }
  const sums = (level: MigrationLevel) => JSON.stringify(level.applied)
  if (restored.migrations.last === manifest.migrations.last && sums(restored.migrations) !== sums(manifest.migrations)) {
    problems.push('the applied migrations or their checksums differ from the backup\'s')
  }
  const chain = restored.audit_chain
  if (!chain.intact) {
    problems.push(`the audit chain is broken at position ${chain.broken_seq}: ${chain.reason}` + (manifest.audit_chain.intact ? '' : ' (it was already broken when the backup was taken)'))
  }
  for (const key of ['sealed_count', 'head_seq', 'head_hash'] as const) {
    if (String(chain[key]) !== String(manifest.audit_chain[key])) problems.push(`the audit chain's ${key} is ${chain[key]}, the backup's ${manifest.audit_chain[key]}`)
  }
  return problems
}
