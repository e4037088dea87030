import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { AUDIENCE, ISSUER, TEST_PUBLIC_JWK } from './app.js'
import { conformingFetch } from './conformance.js'

export interface ServerProcess {
  /** http://127.0.0.1:<port> */
  base: string
  /** fetch of a path on the server, each answer checked against the contract (helpers/conformance.ts). */
  fetch(path: string, init?: RequestInit): Promise<Response>
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>
  kill(signal: NodeJS.Signals): void
  /** What the process printed so far. */
  output(): string
}

/**
 * The real server (src/server.ts) in a process of its own, on the given database, trusting the
 * test key, on a free port, with the background jobs off unless `env` turns them on. Resolves
 * once it listens; killed (SIGKILL) at teardown if still running.
 */
export async function startServerProcess(t: { teardown(fn: () => unknown): void }, databaseUrl: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'crm-server-'))
  const jwks = path.join(dir, 'jwks.json')
  writeFileSync(jwks, JSON.stringify({ keys: [TEST_PUBLIC_JWK] }))
  // Started as `npm start` and the image start it: with the tracing preload (a no-op without an OTLP endpoint).
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', './src/instrumentation.ts', 'src/server.ts'], {
    env: {
      ...process.env,
      NODE_ENV: 'production', DATABASE_URL: databaseUrl, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', DATA_DIR: dir,
      AUTH_JWKS_FILE: jwks, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, AUTH_ALGORITHMS: 'ES256',
      AUDIT_SEAL_INTERVAL_MS: '0', AUDIT_FULL_VERIFY_INTERVAL_MS: '0', LIFECYCLE_SWEEP_MS: '0', IDEMPOTENCY_PURGE_INTERVAL_MS: '0',
      IMPORT_RECOVERY_MS: '0', BACKFILL_INTERVAL_MS: '0', PARTITION_UPKEEP_INTERVAL_MS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const output: string[] = []
  child.stderr.on('data', (d: Buffer) => output.push(d.toString()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
    rmSync(dir, { recursive: true, force: true })
  })
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start:\n${output.join('')}`)), 60_000)
    createInterface({ input: child.stdout }).on('line', (line) => {
      output.push(line + '\n')
      const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
      if (listening) {
        clearTimeout(timer)
        resolve(listening[1]!)
      }
    })
    void exited.then((code) => reject(new Error(`the server exited (${code}):\n${output.join('')}`)))
  })
  return { base, fetch: (url, init) => conformingFetch(base + url, init), exited, kill: (signal) => child.kill(signal), output: () => output.join('') }
}
