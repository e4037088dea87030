/**
 * `npm run build [-- --out-dir DIR] [-- --no-check]` compiles what production runs, so it needs
 * neither tsx nor TypeScript (default DIR: dist/):
 *   DIR/server.js, DIR/cli/migrate.js, DIR/cli/backup.js, ...   src/ (tsconfig.build.json)
 *   DIR/migrations/*.js                                          migrations/ (tsconfig.build-migrations.json)
 *   DIR/migrations/checksums.json                                the sources' sha256, which the compiled migrate verifies against
 * DIR must sit inside the project (Node finds node_modules and package.json's "type": "module"
 * by walking up from it). --no-check emits without type checking (the same output; CI typechecks
 * on its own): the build test uses it to stay fast.
 */
import { spawn } from 'node:child_process'
import { copyFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CHECKSUM_MANIFEST, MIGRATIONS_DIR, staleChecksumManifest } from '../src/db/migrate.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

function fail(message: string): never {
  process.stderr.write(`build: ${message}\n`)
  process.exit(1)
}

const { values: args } = parseArgs({ options: { 'out-dir': { type: 'string', default: 'dist' }, 'no-check': { type: 'boolean', default: false } } })
const outDir = path.resolve(args['out-dir'])
const relative = path.relative(ROOT, outDir)
if (!relative || relative.startsWith('..') || path.isAbsolute(relative)) fail(`--out-dir must be a directory inside ${ROOT} (got ${outDir})`)

// The compiled migrate trusts the committed manifest: it must be the sources' (db:schema writes it).
const manifestFile = path.join(MIGRATIONS_DIR, CHECKSUM_MANIFEST)
const stale = staleChecksumManifest(MIGRATIONS_DIR)
if (stale.length) fail(`migrations/${CHECKSUM_MANIFEST} does not match the migration sources (${stale.join(', ')}): run npm run db:schema`)

rmSync(outDir, { recursive: true, force: true })
const check = args['no-check'] ? ['--noCheck'] : []
await tsc(['-p', 'tsconfig.build.json', '--outDir', outDir, ...check])
await tsc(['-p', 'tsconfig.build-migrations.json', '--outDir', path.join(outDir, 'migrations'), ...check])
copyFileSync(manifestFile, path.join(outDir, 'migrations', CHECKSUM_MANIFEST))
process.stdout.write(`built ${relative}/ (start: node ${relative}/server.js; migrate: node ${relative}/cli/migrate.js)\n`)

function tsc(tscArgs: string[]): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), ...tscArgs], { cwd: ROOT, stdio: 'inherit' })
    child.on('exit', (code) => (code === 0 ? resolve() : fail(`tsc ${tscArgs.join(' ')} failed`)))
  })
}
