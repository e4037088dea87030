/**
 * Breaking changes against the released contract.
 *
 * `npm run openapi:diff` compares openapi/openapi.json with the newest released copy
 * (openapi/released/<version>.json) and exits 1 when a change would break a client of that release
 * (an operation, response field or enum value removed, a parameter or request field newly required,
 * a type narrowed, a security requirement added ...) unless `info.version` (package.json's
 * version) was raised past it incompatibly: a new major, or for 0.x a new minor (semver).
 * `npm run openapi:release` writes openapi/openapi.json as openapi/released/<info.version>.json,
 * the copy the next changes are held to (`--force` replaces a release of the same version).
 *
 * The comparison is api-smart-diff's: it classifies each change of an OpenAPI 3.0 or 3.1 document
 * as breaking or not by where it is (a field removed from a response breaks clients, from a request
 * does not). Component schemas are compared where operations use them (its `paths` entries): a
 * component on its own is classified without knowing whether it is read or written.
 * Options: --current FILE, --released DIR (tests use them).
 */
import { apiCompare } from 'api-smart-diff'
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

type Doc = { info?: { version?: string }; [key: string]: unknown }
export interface Change { description: string; path: string }

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export function parseVersion(v: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(v)
  if (!m) throw new Error(`"${v}" is not a semantic version (MAJOR.MINOR.PATCH)`)
  return [Number(m[1]), Number(m[2]), Number(m[3])]
}

export function compareVersions(a: string, b: string): number {
  const [x, y] = [parseVersion(a), parseVersion(b)]
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!
  return 0
}

/** Whether `to` may break clients of `from` under semver: a new major, or a new minor while at 0.x. */
export function allowsBreaking(from: string, to: string): boolean {
  const [a, b] = [parseVersion(from), parseVersion(to)]
  return b[0] > a[0] || (a[0] === 0 && b[0] === 0 && b[1] > a[1])
}

/**
 * A new problem code: a value added to the `code` enum of a problem+json response (or of the
 * registry's own pages, /problems). The registry
 * (src/lib/problem-types.ts) only ever grows and each code keeps its status, so a client that
 * branches on the codes it knows still meets only statuses it handles; api-smart-diff counts any
 * value added to a response enum as breaking, which would make every new cause a new API version.
 */
const isNewProblemCode = (d: { action: string; path: ReadonlyArray<unknown> }) => {
  const p = d.path.map(String)
  const whereCodes = p.includes('application/problem+json') || (p[0] === 'paths' && (p[1] === '/problems' || p[1]?.startsWith('/problems/')))
  return d.action === 'add' && whereCodes && p.slice(-3, -1).join('/') === 'code/enum'
}

export function breakingChanges(released: Doc, current: Doc): Change[] {
  const { diffs } = apiCompare(structuredClone(released), structuredClone(current))
  return diffs
    .filter((d) => d.type === 'breaking' && (d.path[0] !== 'components' || d.path[1] === 'securitySchemes') && !isNewProblemCode(d))
    .map((d) => ({ description: d.description || `${d.action} ${d.path.join('.')}`, path: '/' + d.path.map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/') }))
}

/** The released copies, newest first. */
export async function releases(dir: string): Promise<string[]> {
  const names = existsSync(dir) ? (await readdir(dir)).filter((f) => /^\d+\.\d+\.\d+.*\.json$/.test(f)).map((f) => f.slice(0, -'.json'.length)) : []
  return names.sort((a, b) => compareVersions(b, a))
}

export interface DiffResult { ok: boolean; message: string }

export async function diff(currentFile: string, releasedDir: string): Promise<DiffResult> {
  const current = JSON.parse(await readFile(currentFile, 'utf8')) as Doc
  const version = current.info?.version ?? ''
  parseVersion(version)
  const [latest] = await releases(releasedDir)
  if (!latest) return { ok: false, message: `no released contract in ${releasedDir}: run "npm run openapi:release" and commit it.` }
  if (compareVersions(version, latest) < 0) return { ok: false, message: `info.version ${version} is older than the released ${latest}.` }
  const released = JSON.parse(await readFile(path.join(releasedDir, `${latest}.json`), 'utf8')) as Doc
  const changes = breakingChanges(released, current)
  const list = changes.slice(0, 50).map((c) => `  - ${c.description}\n    at ${c.path}`).join('\n') + (changes.length > 50 ? `\n  ... and ${changes.length - 50} more` : '')
  if (changes.length === 0) return { ok: true, message: `no breaking change against the released ${latest} (current ${version}).` }
  if (allowsBreaking(latest, version)) return { ok: true, message: `${changes.length} breaking change(s) against ${latest}, allowed by the version bump to ${version}:\n${list}` }
  const [major, minor] = parseVersion(latest)
  const next = major === 0 ? `0.${minor + 1}.0` : `${major + 1}.0.0`
  return {
    ok: false,
    message:
      `${changes.length} breaking change(s) against the released contract ${latest} (current version ${version}):\n${list}\n\n` +
      `Make the change additive, or raise the API version to ${next} or later (npm version ${major === 0 ? 'minor' : 'major'} --no-git-tag-version, ` +
      `then npm run openapi) and say so in the release notes.`,
  }
}

export async function release(currentFile: string, releasedDir: string, force: boolean): Promise<DiffResult> {
  const text = await readFile(currentFile, 'utf8')
  const version = (JSON.parse(text) as Doc).info?.version ?? ''
  parseVersion(version)
  const file = path.join(releasedDir, `${version}.json`)
  const existing = existsSync(file) ? await readFile(file, 'utf8') : undefined
  if (existing === text) return { ok: true, message: `${path.relative(ROOT, file)} is already this contract.` }
  if (existing !== undefined && !force) {
    return { ok: false, message: `${version} was released with another contract (${path.relative(ROOT, file)}): raise the version (npm version minor|major --no-git-tag-version, npm run openapi) or pass --force to replace that release.` }
  }
  await mkdir(releasedDir, { recursive: true })
  await writeFile(file, text)
  return { ok: true, message: `wrote ${path.relative(ROOT, file)}` }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const { values } = parseArgs({
    options: {
      current: { type: 'string', default: path.join(ROOT, 'openapi/openapi.json') },
      released: { type: 'string', default: path.join(ROOT, 'openapi/released') },
      release: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
    },
  })
  try {
    const result = values.release ? await release(values.current!, values.released!, values.force!) : await diff(values.current!, values.released!)
    ;(result.ok ? process.stdout : process.stderr).write(result.message + '\n')
    process.exit(result.ok ? 0 : 1)
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`)
    process.exit(1)
  }
}
