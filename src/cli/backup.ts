/**
 * `npm run backup -- --out FILE [--database-url URL]` (in production `node dist/cli/backup.js`):
 * pg_dump (custom format) of DATABASE_URL, or of --database-url, to FILE, and its manifest to
 * FILE.manifest.json (see src/backup/manifest.ts). Needs the pg_dump of the server's major.
 */
import { parseArgs } from 'node:util'
import { createBackup } from '../backup/backup.js'
import { manifestPath } from '../backup/manifest.js'

const usage = 'usage: npm run backup -- --out FILE [--database-url postgres://...]'
let args
try {
  args = parseArgs({ options: { out: { type: 'string' }, 'database-url': { type: 'string' } } }).values
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${usage}\n`)
  process.exit(2)
}
const url = args['database-url'] ?? process.env.DATABASE_URL
if (!args.out || !url) {
  process.stderr.write(`${!args.out ? '--out is required' : 'set DATABASE_URL or pass --database-url (the embedded development database has no pg_dump)'}\n${usage}\n`)
  process.exit(2)
}

const started = Date.now()
try {
  const m = await createBackup({ url, out: args.out })
  const rows = Object.values(m.row_counts).reduce((a, b) => a + b, 0)
  process.stdout.write(
    `backup written: ${args.out} (${m.dump.bytes} bytes, sha256 ${m.dump.sha256}) and ${manifestPath(args.out)}\n` +
      `  migration ${m.migrations.last ?? 'none'}; ${Object.keys(m.row_counts).length} tables, ${rows} rows; ` +
      `audit chain ${m.audit_chain.intact ? 'intact' : `BROKEN at ${m.audit_chain.broken_seq} (${m.audit_chain.reason})`}, head ${m.audit_chain.head_seq ?? 0}` +
      `${m.audit_chain.head_hash ? ` ${m.audit_chain.head_hash}` : ''}; ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  )
  process.exit(0)
} catch (err) {
  process.stderr.write(`backup failed: ${(err as Error).message}\n`)
  process.exit(1)
}
