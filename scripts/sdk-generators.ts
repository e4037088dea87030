/**
 * `npm run sdk:generators` (CI): the contract works for the generators client teams use, as a new
 * user would run them. openapi-typescript, @hey-api/openapi-ts and orval (fetch client) each
 * generate from openapi/openapi.json with their command line and its defaults, no patch and no
 * config, into a temporary folder; each output must then compile with `tsc --strict` (and the
 * generated declarations checked too: skipLibCheck off). Prints one line per generator and fails
 * when any step fails.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const CONTRACT = join(root, 'openapi/openapi.json')
const bin = (name: string) => join(root, 'node_modules/.bin', name)

interface Generator {
  name: string
  /** The command line, given the output folder. */
  command: (out: string) => [string, string[]]
}

const GENERATORS: Generator[] = [
  { name: 'openapi-typescript', command: (out) => [bin('openapi-typescript'), [CONTRACT, '-o', join(out, 'schema.d.ts')]] },
  { name: '@hey-api/openapi-ts', command: (out) => [bin('openapi-ts'), ['-i', CONTRACT, '-o', out]] },
  { name: 'orval', command: (out) => [bin('orval'), ['--input', CONTRACT, '--output', join(out, 'api.ts'), '--client', 'fetch']] },
]

/** What the output is compiled with: strict, for a browser or Node (DOM lib), nothing skipped. */
const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'Bundler',
    lib: ['ES2022', 'DOM', 'DOM.Iterable'],
    types: [],
    strict: true,
    skipLibCheck: false,
    noEmit: true,
  },
  include: ['**/*.ts'],
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } })
    let output = ''
    child.stdout.on('data', (c: Buffer) => (output += c.toString()))
    child.stderr.on('data', (c: Buffer) => (output += c.toString()))
    child.on('close', (code) => done({ code: code ?? 1, output }))
  })
}

const tmp = await mkdtemp(join(tmpdir(), 'crm-generators-'))
let failed = 0
try {
  for (const g of GENERATORS) {
    const out = join(tmp, g.name.replace(/[^a-z0-9]+/gi, '-'))
    const [cmd, args] = g.command(out)
    const gen = await run(cmd, args, tmp)
    const files = gen.code === 0 ? (await readdir(out, { recursive: true }).catch(() => [])).filter((f) => String(f).endsWith('.ts')) : []
    if (gen.code !== 0 || files.length === 0) {
      failed++
      console.log(`FAIL ${g.name}: generation failed (exit ${gen.code})\n${indent(gen.output)}`)
      continue
    }
    await writeFile(join(out, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2))
    const tsc = await run(bin('tsc'), ['-p', join(out, 'tsconfig.json')], out)
    if (tsc.code !== 0) {
      failed++
      console.log(`FAIL ${g.name}: ${files.length} file(s) generated, tsc --strict fails\n${indent(tsc.output)}`)
      continue
    }
    console.log(`ok   ${g.name}: ${files.length} file(s) generated, compile with tsc --strict`)
  }
} finally {
  await rm(tmp, { recursive: true, force: true })
}
if (failed) {
  console.log(`${failed} of ${GENERATORS.length} generators failed on openapi/openapi.json`)
  process.exitCode = 1
}

function indent(text: string): string {
  const lines = text.trim().split('\n')
  const shown = lines.slice(0, 40).map((l) => `    ${l}`)
  if (lines.length > 40) shown.push(`    ... ${lines.length - 40} more lines`)
  return shown.join('\n')
}
