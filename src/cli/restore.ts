/**
 * `npm run restore -- --in FILE --database-url URL [--force]` (in production
 * `node dist/cli/restore.js`): restores a backup of `npm run backup` into the database at URL and
 * verifies it against FILE.manifest.json (row counts, migration level, audit chain). Exits 0 only
 * when the restored database matched; refuses a non-empty database unless --force.
 */
import { parseArgs } from 'node:util'
import { restoreBackup } from '../backup/backup.js'

const usage = 'usage: npm run restore -- --in FILE --database-url postgres://... [--force]'
let args
try {
  args = parseArgs({ options: { in: { type: 'string' }, 'database-url': { type: 'string' }, force: { type: 'boolean', default: false } } }).values
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${usage}\n`)
  process.exit(2)
}
// No fallback to DATABASE_URL: a restore overwrites, so its target is always named.
if (!args.in || !args['database-url']) {
  process.stderr.write(`${!args.in ? '--in' : '--database-url'} is required\n${usage}\n`)
  process.exit(2)
}

const started = Date.now()
try {
  const { manifest: m, createdRoles } = await restoreBackup({ input: args.in, url: args['database-url'], force: args.force })
  const rows = Object.values(m.row_counts).reduce((a, b) => a + b, 0)
  process.stdout.write(
    `restored and verified ${args.in}: migration ${m.migrations.last ?? 'none'}; ${Object.keys(m.row_counts).length} tables, ${rows} rows as in the manifest; ` +
      `audit chain intact, head ${m.audit_chain.head_seq ?? 0}${m.audit_chain.head_hash ? ` ${m.audit_chain.head_hash}` : ''}` +
      `${createdRoles.length ? `; created NOLOGIN role(s) ${createdRoles.join(', ')}` : ''}; ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  )
  process.exit(0)
} catch (err) {
  process.stderr.write(`restore failed: ${(err as Error).message}\n`)
  process.exit(1)
}
