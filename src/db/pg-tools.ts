/**
 * PostgreSQL's client programs (pg_dump, pg_restore) of a given major version: the schema dump,
 * backups and restores must use the server's major (an older pg_dump refuses a newer server, a
 * newer one writes archives an older pg_restore cannot read, and other majors deparse differently).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export type PgTool = 'pg_dump' | 'pg_restore'

/**
 * Looks in order at: the environment variable named like the tool (PG_DUMP, PG_RESTORE), the
 * Debian/Ubuntu and RHEL cluster layouts, `pg_config --bindir`, then PATH; answers the first of
 * the right major.
 */
export async function findPgTool(tool: PgTool, major: number): Promise<string> {
  const bindir = await run('pg_config', ['--bindir']).then(({ stdout }) => stdout.trim(), () => undefined)
  const candidates = [
    process.env[tool.toUpperCase()],
    `/usr/lib/postgresql/${major}/bin/${tool}`,
    `/usr/pgsql-${major}/bin/${tool}`,
    bindir && path.join(bindir, tool),
    tool,
  ].filter((c): c is string => !!c)
  const seen: string[] = []
  for (const bin of candidates) {
    if (bin.includes('/') && !existsSync(bin)) continue
    try {
      const { stdout } = await run(bin, ['--version'])
      const found = Number(/(\d+)(?:\.\d+)?/.exec(stdout)?.[1])
      if (found === major) return bin
      seen.push(`${bin} is ${stdout.trim()}`)
    } catch {
      // not installed under this name
    }
  }
  throw new Error(`no ${tool} for PostgreSQL ${major} found (${seen.join('; ') || 'none on PATH'}): install its client tools or set ${tool.toUpperCase()}`)
}

/**
 * The arguments and environment that point a client program at a postgres:// URL without putting
 * the password on its command line, where any local user could read it (ps).
 */
export function pgToolConnection(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url)
  const password = decodeURIComponent(u.password)
  u.password = ''
  return { dbname: u.toString(), env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) } }
}
