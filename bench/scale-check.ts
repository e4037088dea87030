/**
 * `npx tsx bench/scale-check.ts --database-url postgres://…/crm_bench_1000000 [--repeat 5] [--only rfm,segment]`
 *
 * One client, one request at a time, against a seeded database (npm run seed): the time of the
 * heavy reads that bench/run.ts does not load-test — segment count and preview, filtered search
 * with a total, and every analytics answer — each repeated, reporting min/median/max. The API
 * runs in process with its production settings (pool, 10 s statement timeout), so an answer that
 * would time out in production shows here as a 503.
 */
import { parseArgs } from 'node:util'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { buildApp } from '../src/app.js'
import { createDb } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    repeat: { type: 'string', default: '5' },
    only: { type: 'string' },
  },
})
const url = values['database-url']
if (!url) throw new Error('--database-url is required (a database filled by npm run seed)')
const repeat = Number(values.repeat)

const owner = createDb({ connectionString: url, max: 1, statementTimeoutMs: 0, role: null })
await migrateToLatest(owner)
await owner.destroy()

const db = createDb({ connectionString: url, max: 10 })
const { publicKey, privateKey } = await generateKeyPair('ES256')
const jwk = { ...(await exportJWK(publicKey)), kid: 'scale', alg: 'ES256', use: 'sig' }
const app = await buildApp({ db, auth: { issuer: 'scale', audience: 'crm-api', algorithms: ['ES256'], clockToleranceSeconds: 5, jwks: { keys: [jwk] } } })
await app.ready()
const token = await new SignJWT({ scope: 'admin' }).setProtectedHeader({ alg: 'ES256', kid: 'scale' })
  .setSubject('bench:scale').setIssuer('scale').setAudience('crm-api').setIssuedAt().setExpirationTime('1h').sign(privateKey)
const headers = { authorization: `Bearer ${token}` }

const loyal90 = { and: [{ field: 'lifecycle_stage', op: 'in', value: ['repeat', 'loyal'] }, { orders: { min_count: 3, since: { last_n_days: 90 } } }] }
const openComplaint = { feedback: { open: true } }
const quiet = { interactions: { since: '2026-06-01', max_count: 0 } }

const cases: Array<{ name: string; method: 'GET' | 'POST'; url: string; payload?: unknown }> = [
  { name: 'segment preview: repeat/loyal with 3+ orders in 90 days', method: 'POST', url: '/v1/segments/preview', payload: { filter: loyal90 } },
  { name: 'segment preview: any open complaint', method: 'POST', url: '/v1/segments/preview', payload: { filter: openComplaint } },
  { name: 'search + total: no interaction since 2026-06-01', method: 'POST', url: '/v1/customers/search', payload: { filter: quiet, include_total: true } },
  { name: 'analytics rfm', method: 'GET', url: '/v1/analytics/rfm' },
  { name: 'analytics value-tiers', method: 'GET', url: '/v1/analytics/value-tiers' },
  { name: 'analytics lifecycle', method: 'GET', url: '/v1/analytics/lifecycle' },
  { name: 'analytics acquisition-sources', method: 'GET', url: '/v1/analytics/acquisition-sources' },
  { name: 'analytics churn-risk (first page)', method: 'GET', url: '/v1/analytics/churn-risk' },
  { name: 'analytics retention/cohorts', method: 'GET', url: '/v1/analytics/retention/cohorts' },
  { name: 'analytics satisfaction', method: 'GET', url: '/v1/analytics/satisfaction' },
]

const lines = ['| request | status | min ms | median ms | max ms |', '| --- | --- | --- | --- | --- |']
const only = values.only?.split(',')
for (const c of cases.filter((x) => !only || only.some((o) => x.name.includes(o)))) {
  const times: number[] = []
  const statuses = new Set<number>()
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now()
    const res = await app.inject({ method: c.method, url: c.url, headers, ...(c.payload ? { payload: c.payload as object } : {}) })
    times.push(performance.now() - t0)
    statuses.add(res.statusCode)
    if (res.statusCode >= 400) process.stderr.write(`${c.name}: ${res.statusCode} ${res.body.slice(0, 200)}\n`)
  }
  times.sort((a, b) => a - b)
  const row = `| ${c.name} | ${[...statuses].join(',')} | ${times[0]!.toFixed(0)} | ${times[Math.floor(times.length / 2)]!.toFixed(0)} | ${times[times.length - 1]!.toFixed(0)} |`
  lines.push(row)
  process.stderr.write(`${row}\n`)
}
process.stdout.write(`\n${lines.join('\n')}\n`)
await app.close()
