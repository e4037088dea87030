/**
 * `npm run openapi:lint`: the committed contract must pass @apidevtools/swagger-parser's validation
 * (the OpenAPI 3.1 schema, $refs resolvable) and Spectral's spectral:oas ruleset (.spectral.yaml)
 * with 0 errors. Warnings are printed and do not fail.
 */
import { spawnSync } from 'node:child_process'
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
  process.stdout.write('spectral: 0 errors\n')
}
process.exit(failed ? 1 : 0)
