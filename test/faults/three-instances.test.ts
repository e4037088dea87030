import t from 'tap'
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { buildTestApp, setup, token } from '../helpers/app.js'
import { verifyAuditChain } from '../../src/modules/audit/audit.repository.js'

/**
 * Three instances on one database and one Redis, under write load, with every background job of
 * the scheduler on short intervals: each job runs at most once per interval across the three
 * (crm_job_leases), the audit chain the three seal concurrently is intact with every event once,
 * every acknowledged write is there, and a rate limit holds across them. Needs the Redis that
 * .ci/run starts (REDIS_URL, default redis://127.0.0.1:6379), like test/plugins/limits.redis.test.ts.
 */
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const ctx = await setup()
const LIMIT = 40
const INTERVALS = { 'audit-seal': 100, 'lifecycle-sweep': 300, 'idempotency-purge': 200, 'import-recovery': 200, 'partition-upkeep': 200 } as const
const apps = await Promise.all([0, 1, 2].map(() => buildTestApp(ctx.db, {
  app: {
    rateLimit: { max: LIMIT, windowMs: 60_000, authFailureMax: 100, redisUrl: REDIS_URL },
    auditSealIntervalMs: INTERVALS['audit-seal'],
    lifecycleSweepMs: INTERVALS['lifecycle-sweep'],
    importRecoveryMs: INTERVALS['import-recovery'],
    partitionUpkeepMs: INTERVALS['partition-upkeep'],
    idempotency: { ttlSeconds: 1, purgeIntervalMs: INTERVALS['idempotency-purge'] },
  },
})))

t.test('jobs run once per interval across three instances under write load; writes and the chain stay whole; the limit holds', async (t) => {
  const began = Date.now()
  await Promise.all(apps.map((app) => app.ready()))
  // Writers: 6 subjects, each under the limit, spread over the three instances.
  const writers = await Promise.all(Array.from({ length: 6 }, async (_, w) => ({ authorization: `Bearer ${await token('customers:write customers:read', { sub: `user:writer-${w}-${randomUUID()}` })}` })))
  const acknowledged: string[] = []
  await Promise.all(writers.map(async (headers, w) => {
    for (let i = 0; i < LIMIT - 5; i++) {
      const res = await apps[(w + i) % 3]!.inject({ method: 'POST', url: '/v1/customers', headers: { ...headers, 'idempotency-key': randomUUID() }, payload: { name: `Writer ${w}-${i}` } })
      if (res.statusCode === 201) acknowledged.push(res.json().id as string)
      else t.fail(`write answered ${res.statusCode}: ${res.body}`)
    }
  }))
  // One subject over the limit, across the three.
  const greedy = { authorization: `Bearer ${await token('customers:read', { sub: `user:greedy-${randomUUID()}` })}` }
  const statuses = await Promise.all(Array.from({ length: LIMIT * 2 }, (_, i) => apps[i % 3]!.inject({ url: '/v1/customers?limit=1', headers: greedy }).then((r) => r.statusCode)))
  await new Promise((r) => setTimeout(r, 700))
  await Promise.all(apps.map((app) => app.close()))
  const elapsed = Date.now() - began

  t.equal(statuses.filter((s) => s === 200).length, LIMIT, `the limit held across the three: ${LIMIT} of ${statuses.length} passed`)
  t.equal(acknowledged.length, writers.length * (LIMIT - 5), 'every write was acknowledged')
  const stored = await sql<{ n: number }>`select count(*)::int as n from customers where id = any(${acknowledged}::uuid[])`.execute(ctx.db)
  t.equal(stored.rows[0]!.n, acknowledged.length, 'and is stored')

  const leases = await ctx.ownerDb.selectFrom('crm_job_leases').select(['name', 'runs', 'last_error']).execute()
  for (const [name, interval] of Object.entries(INTERVALS)) {
    const lease = leases.find((l) => l.name === name)
    t.ok(lease && Number(lease.runs) >= 1, `${name} ran (${lease?.runs ?? 0} runs in ${elapsed} ms)`)
    t.ok(lease && Number(lease.runs) <= Math.floor(elapsed / interval) + 1, `${name} ran at most once per ${interval} ms across the three instances`)
    t.equal(lease?.last_error ?? null, null, `${name} ended without error`)
  }

  const v = await verifyAuditChain(ctx.db, { full: true })
  t.match(v, { intact: true }, 'the chain sealed by three instances at once verifies')
  const events = await sql<{ n: number }>`select count(*)::int as n from audit_events`.execute(ctx.ownerDb)
  const chained = await sql<{ n: number; distinct_events: number }>`select count(*)::int as n, count(distinct audit_event_id)::int as distinct_events from audit_chain`.execute(ctx.ownerDb)
  t.equal(chained.rows[0]!.n, chained.rows[0]!.distinct_events, 'no audit event was sealed twice')
  t.ok(chained.rows[0]!.n + v.unsealed_count === events.rows[0]!.n, `every audit event is sealed or waiting for the next seal (${v.unsealed_count} waiting)`)
})
