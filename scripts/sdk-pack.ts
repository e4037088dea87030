/**
 * `npm run sdk:pack-check` (CI): `npm pack` in sdk/ yields a tarball a client team can install.
 * Packs it (prepack builds sdk/dist with tsc), installs the tarball into an empty project in a
 * temporary folder, as a consumer would, then: imports it with Node (ESM), compiles a consumer
 * file against its declarations with `tsc --strict` (DOM lib, no Node types: what a browser app
 * has), and checks that the built code imports nothing from Node ("node:" or a bare Node module),
 * so it runs in browsers too.
 */
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = resolve(import.meta.dirname, '..')
const sdkDir = join(root, 'sdk')
const tmp = await mkdtemp(join(tmpdir(), 'crm-sdk-pack-'))

const CONSUMER = `import { createCrmClient, CrmProblem, ifMatch, verifyWebhook, WebhookVerificationError, type Customer } from '@crm-api/sdk'

const crm = createCrmClient({ baseUrl: 'https://crm.example.com', token: async () => 'token' })
export async function rename(id: string, name: string): Promise<Customer | string> {
  try {
    const { data } = await crm.getCustomer({ path: { id } })
    const { data: updated } = await crm.updateCustomer({ path: { id }, body: { name }, headers: ifMatch(data) })
    return updated
  } catch (err) {
    if (err instanceof CrmProblem) return err.code
    throw err
  }
}
export async function names(): Promise<string[]> {
  const out: string[] = []
  for await (const c of crm.paginate((cursor) => crm.listCustomers({ query: cursor ? { cursor } : {} }))) out.push(c.name)
  return out
}
export async function follow(after: string | undefined, signal: AbortSignal): Promise<string | undefined> {
  const feed = crm.events.follow({ after, types: ['customer.created', 'order.paid'], signal })
  for await (const e of feed) console.log(e.position, e.type, e.entity_id, e.version)
  return feed.position
}
export async function receive(request: Request, secrets: string[]): Promise<Response> {
  try {
    const { type, data } = await verifyWebhook({ secrets, headers: request.headers, body: await request.text() })
    return new Response(type + ' ' + data.entity_id)
  } catch (err) {
    if (err instanceof WebhookVerificationError) return new Response(err.reason, { status: 400 })
    throw err
  }
}
`

try {
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: sdkDir, maxBuffer: 64 * 1024 * 1024 })
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string; size: number; entryCount: number }>
  if (!packed) throw new Error('npm pack wrote no tarball')
  const tarball = join(tmp, packed.filename)

  const app = join(tmp, 'app')
  await mkdir(app)
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'sdk-consumer', private: true, type: 'module' }))
  // The SDK has no dependencies: installing the tarball needs no registry.
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: app })

  const { stdout: imported } = await run(process.execPath, ['--input-type=module', '-e',
    "const sdk = await import('@crm-api/sdk'); const c = sdk.createCrmClient({ baseUrl: 'http://localhost', token: () => 't' }); " +
    "console.log(typeof c.listCustomers === 'function' && typeof c.events.follow === 'function' && typeof sdk.verifyWebhook === 'function' && new sdk.CrmProblem(412, { code: 'version-mismatch' }).code)"], { cwd: app })
  if (imported.trim() !== 'version-mismatch') throw new Error(`importing the installed package answered ${imported}`)

  await writeFile(join(app, 'consumer.ts'), CONSUMER)
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM', 'DOM.Iterable'], types: [], strict: true, skipLibCheck: false, noEmit: true },
    files: ['consumer.ts'],
  }))
  await run(join(root, 'node_modules/.bin/tsc'), ['-p', join(app, 'tsconfig.json')], { cwd: app }).catch((err: { stdout?: string }) => {
    throw new Error(`a consumer does not compile against the installed package:\n${err.stdout ?? err}`)
  })

  const dist = join(app, 'node_modules/@crm-api/sdk/dist')
  const nodeOnly: string[] = []
  const builtins = new Set(builtinModules)
  for (const file of await readdir(dist, { recursive: true })) {
    if (!String(file).endsWith('.js')) continue
    const code = await readFile(join(dist, String(file)), 'utf8')
    for (const m of code.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1]!
      if (spec.startsWith('node:') || builtins.has(spec.split('/')[0]!)) nodeOnly.push(`${file}: ${spec}`)
    }
  }
  if (nodeOnly.length) throw new Error(`the built SDK imports Node modules:\n${nodeOnly.join('\n')}`)

  console.log(`sdk: ${packed.filename} (${(packed.size / 1024).toFixed(0)} kB, ${packed.entryCount} files) installs, imports in Node, compiles for a browser consumer with tsc --strict, imports nothing from Node`)
} catch (err) {
  console.error(String(err instanceof Error ? err.message : err))
  process.exitCode = 1
} finally {
  await rm(tmp, { recursive: true, force: true })
  await rm(join(sdkDir, 'dist'), { recursive: true, force: true })
}
