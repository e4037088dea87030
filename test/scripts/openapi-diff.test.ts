import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { allowsBreaking, release } from '../../scripts/openapi-diff.js'

/**
 * `npm run openapi:diff` (scripts/openapi-diff.ts) run as CI runs it, on copies of the committed
 * contract: a breaking change fails it unless the version is raised incompatibly; an additive
 * change passes.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const CONTRACT = JSON.parse(readFileSync(path.join(ROOT, 'openapi/openapi.json'), 'utf8')) as Doc
const VERSION = CONTRACT.info.version

interface Doc {
  info: { version: string }
  paths: Record<string, Record<string, { parameters?: unknown[]; [k: string]: unknown }>>
  components: { schemas: Record<string, { properties: Record<string, unknown>; required?: string[] }> }
}

const dir = mkdtempSync(path.join(tmpdir(), 'crm-openapi-diff-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
mkdirSync(path.join(dir, 'released'))
writeFileSync(path.join(dir, 'released', `${VERSION}.json`), JSON.stringify(CONTRACT))

let n = 0
async function runDiff(change: (doc: Doc) => void): Promise<{ code: number; output: string }> {
  const doc = structuredClone(CONTRACT)
  change(doc)
  const file = path.join(dir, `current-${n++}.json`)
  writeFileSync(file, JSON.stringify(doc))
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/openapi-diff.ts', '--current', file, '--released', path.join(dir, 'released')], { cwd: ROOT })
    return { code: 0, output: stdout + stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, output: e.stdout + e.stderr }
  }
}

const removeOperation = (doc: Doc) => { delete doc.paths['/v1/orders']!.get }
const removeResponseField = (doc: Doc) => {
  const customer = doc.components.schemas.Customer!
  delete customer.properties.name
  customer.required = customer.required?.filter((f) => f !== 'name')
}

t.test('the released contract itself has no breaking change', async (t) => {
  const r = await runDiff(() => {})
  t.equal(r.code, 0, r.output)
  t.match(r.output, /no breaking change/)
})

t.test('removing an operation fails, naming it', async (t) => {
  const r = await runDiff(removeOperation)
  t.equal(r.code, 1, r.output)
  t.match(r.output, /GET \/v1\/orders/)
  t.match(r.output, /raise the API version/)
})

t.test('removing a required response field fails, naming it where clients read it', async (t) => {
  const r = await runDiff(removeResponseField)
  t.equal(r.code, 1, r.output)
  t.match(r.output, /Removed\] property `name`/)
  t.match(r.output, /\/paths\/~1v1~1customers/)
})

t.test('adding a required query parameter fails', async (t) => {
  const r = await runDiff((doc) => {
    doc.paths['/v1/customers']!.get!.parameters!.push({ in: 'query', name: 'region', required: true, schema: { type: 'string' } })
  })
  t.equal(r.code, 1, r.output)
  t.match(r.output, /region/)
})

t.test('an additive change passes: a new optional parameter, a new response field, a new operation', async (t) => {
  const r = await runDiff((doc) => {
    doc.paths['/v1/customers']!.get!.parameters!.push({ in: 'query', name: 'region', required: false, schema: { type: 'string' } })
    doc.components.schemas.Customer!.properties.region = { type: 'string', description: 'Sales region' }
    doc.paths['/v1/regions'] = { get: { operationId: 'listRegions', tags: ['customers'], responses: { 200: { description: 'ok' } } } }
  })
  t.equal(r.code, 0, r.output)
})

t.test('a new problem code is additive; a new value of another response enum still breaks', async (t) => {
  const codes = (doc: Doc) => (doc.components.schemas.Problem!.properties.code as { enum: string[] }).enum
  const added = await runDiff((doc) => { codes(doc).push('brand-new-cause') })
  t.equal(added.code, 0, added.output)
  const stage = await runDiff((doc) => { (doc.components.schemas.Customer!.properties.lifecycle_stage as { enum: string[] }).enum.push('dormant') })
  t.equal(stage.code, 1, 'a lifecycle stage clients do not know')
  t.match(stage.output, /lifecycle_stage/)
})

t.test('a breaking change passes once the version is raised incompatibly, and only then', async (t) => {
  const [major, minor, patch] = VERSION.split('.').map(Number) as [number, number, number]
  const compatible = `${major}.${major === 0 ? minor : minor + 1}.${patch + 1}`
  const incompatible = major === 0 ? `0.${minor + 1}.0` : `${major + 1}.0.0`
  const bumped = (v: string) => (doc: Doc) => { removeOperation(doc); doc.info.version = v }
  t.equal((await runDiff(bumped(compatible))).code, 1, `${VERSION} → ${compatible} does not allow it`)
  const r = await runDiff(bumped(incompatible))
  t.equal(r.code, 0, `${VERSION} → ${incompatible} allows it: ${r.output}`)
  t.match(r.output, /allowed by the version bump/)
})

t.test('semver: what counts as an incompatible bump', async (t) => {
  t.ok(allowsBreaking('0.1.0', '0.2.0'))
  t.notOk(allowsBreaking('0.1.0', '0.1.9'))
  t.ok(allowsBreaking('1.4.2', '2.0.0'))
  t.notOk(allowsBreaking('1.4.2', '1.5.0'))
  t.notOk(allowsBreaking('1.0.0', '1.0.0'))
})

t.test('openapi:release writes the copy once and will not silently replace another contract of the same version', async (t) => {
  const releasedDir = path.join(dir, 'release-test')
  const file = path.join(dir, 'release-current.json')
  writeFileSync(file, JSON.stringify(CONTRACT))
  t.ok((await release(file, releasedDir, false)).ok)
  t.ok(existsSync(path.join(releasedDir, `${VERSION}.json`)))
  t.match((await release(file, releasedDir, false)).message, /already this contract/)
  const changed = structuredClone(CONTRACT)
  removeOperation(changed)
  writeFileSync(file, JSON.stringify(changed))
  const refused = await release(file, releasedDir, false)
  t.notOk(refused.ok, refused.message)
  t.ok((await release(file, releasedDir, true)).ok, '--force replaces it')
  t.same(JSON.parse(readFileSync(path.join(releasedDir, `${VERSION}.json`), 'utf8')), changed)
})
