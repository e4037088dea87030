/**
 * `npm run openapi` writes openapi/openapi.json from the routes' schemas;
 * `npm run openapi:check` exits 1 when the committed file differs from what the code produces.
 * Needs no database: the app is built on a pool that is never used (pg.Pool connects lazily).
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../src/app.js'
import { createDb } from '../src/db/database.js'

const FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../openapi/openapi.json')
const check = process.argv.includes('--check')

const app = await buildApp({
  db: createDb({ connectionString: 'postgres://openapi@127.0.0.1:1/unused' }),
  auth: { issuer: 'openapi', audience: 'openapi', algorithms: ['ES256'], clockToleranceSeconds: 0, jwks: { keys: [] } },
})
await app.ready()
// The top level keeps the plugin's order (openapi, info, servers, ...); everything below is sorted.
const spec = stable(app.swagger(), true) as Spec
await app.close()
const text = JSON.stringify(spec, null, 2) + '\n'

if (!check) {
  await mkdir(path.dirname(FILE), { recursive: true })
  await writeFile(FILE, text)
  process.stdout.write(`wrote ${path.relative(process.cwd(), FILE)} (${Object.keys(spec.paths ?? {}).length} paths, ${Object.keys(spec.components?.schemas ?? {}).length} schemas)\n`)
  process.exit(0)
}

const committed = await readFile(FILE, 'utf8').catch(() => undefined)
if (committed === text) {
  process.stdout.write('openapi/openapi.json is up to date\n')
  process.exit(0)
}
process.stderr.write(committed === undefined ? 'openapi/openapi.json is missing.\n' : `openapi/openapi.json differs from the code:\n${summarize(JSON.parse(committed) as Spec, spec)}\n`)
process.stderr.write('Run "npm run openapi" and commit the result.\n')
process.exit(1)

interface Spec {
  paths?: Record<string, Record<string, unknown>>
  components?: { schemas?: Record<string, unknown> }
  [key: string]: unknown
}

/**
 * Object keys sorted, so the file does not depend on the order in which modules register
 * routes and schemas; except a schema's `properties` and any `example`, whose order is authored
 * (it is the field order readers and generated SDKs see).
 */
function stable(value: unknown, keepOrder = false): unknown {
  if (Array.isArray(value)) return value.map((v) => stable(v))
  if (value === null || typeof value !== 'object') return value
  const entries = Object.entries(value as Record<string, unknown>)
  if (!keepOrder) entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return Object.fromEntries(
    entries.map(([k, v]) => {
      if (k === 'example' || k === 'examples') return [k, v]
      return [k, stable(v, !keepOrder && k === 'properties')]
    }),
  )
}

/** One line per path operation or component schema added, removed or changed. */
function summarize(before: Spec, after: Spec): string {
  const lines: string[] = []
  const compare = (label: string, a: Record<string, unknown> = {}, b: Record<string, unknown> = {}) => {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!(key in a)) lines.push(`  + ${label} ${key}`)
      else if (!(key in b)) lines.push(`  - ${label} ${key}`)
      else if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) lines.push(`  ~ ${label} ${key}`)
    }
  }
  const operations = (spec: Spec) =>
    Object.fromEntries(Object.entries(spec.paths ?? {}).flatMap(([p, ops]) => Object.entries(ops).map(([m, op]) => [`${m.toUpperCase()} ${p}`, op])))
  compare('operation', operations(before), operations(after))
  compare('schema', before.components?.schemas, after.components?.schemas)
  const { paths: _a, components: _b, ...restBefore } = before
  const { paths: _c, components: _d, ...restAfter } = after
  if (JSON.stringify(restBefore) !== JSON.stringify(restAfter)) lines.push('  ~ document metadata (info, tags, servers, security)')
  if (JSON.stringify({ ...before.components, schemas: undefined }) !== JSON.stringify({ ...after.components, schemas: undefined })) lines.push('  ~ components (other than schemas)')
  if (lines.length === 0) lines.push('  (formatting only)')
  const shown = lines.slice(0, 40)
  if (lines.length > shown.length) shown.push(`  ... and ${lines.length - shown.length} more`)
  return shown.join('\n')
}
