/**
 * `npm run openapi:lint`: the committed contract must pass @apidevtools/swagger-parser's validation
 * (the OpenAPI 3.1 schema, $refs resolvable) and Spectral's spectral:oas ruleset (.spectral.yaml)
 * with 0 errors. Warnings are printed and do not fail. Then prints how many operations declare each header.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import SwaggerParser from '@apidevtools/swagger-parser'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const file = path.join(root, 'openapi/openapi.json')

let failed = false
try {
  await SwaggerParser.validate(file)
  process.stdout.write('swagger-parser: openapi/openapi.json is valid\n')
} catch (err) {
  failed = true
  process.stderr.write(`swagger-parser: openapi/openapi.json is not valid:\n${(err as Error).message}\n`)
}

const spectral = path.join(root, 'node_modules/.bin/spectral')
const run = spawnSync(spectral, ['lint', file, '--ruleset', path.join(root, '.spectral.yaml'), '--fail-severity', 'error', '--format', 'text'], { stdio: 'inherit', cwd: root })
if (run.status !== 0) {
  failed = true
  process.stderr.write(`spectral: errors in openapi/openapi.json (exit ${run.status ?? run.signal})\n`)
} else {
  process.stdout.write('\nspectral: 0 errors\n')
}
process.stdout.write(headerCounts(JSON.parse(readFileSync(file, 'utf8')) as Doc))
process.exit(failed ? 1 : 0)

interface Doc {
  paths: Record<string, Record<string, { parameters?: Array<{ $ref?: string; in?: string; name?: string }>; responses: Record<string, { headers?: Record<string, unknown> }> }>>
}

/** How many operations declare each header: read (parameters in header) and sent (in any response). */
function headerCounts(doc: Doc): string {
  const read = new Map<string, number>()
  const sent = new Map<string, number>()
  let operations = 0
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1)
  for (const item of Object.values(doc.paths)) {
    for (const op of Object.values(item)) {
      operations++
      for (const p of op.parameters ?? []) {
        const name = p.$ref ? p.$ref.split('/').pop()! : p.in === 'header' ? p.name! : undefined
        if (name) bump(read, name)
      }
      for (const name of new Set(Object.values(op.responses).flatMap((r) => Object.keys(r.headers ?? {})))) bump(sent, name)
    }
  }
  const table = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, n]) => `  ${k}: ${n}`).join('\n')
  return `${operations} operations. Request headers declared (operations):\n${table(read)}\nResponse headers declared (operations):\n${table(sent)}\n`
}
