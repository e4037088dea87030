import t from 'tap'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { buildTestApp, setup, token } from '../helpers/app.js'

/**
 * Rate limits shared across instances through Redis (RATE_LIMIT_REDIS_URL): two apps on one
 * Redis enforce one budget between them. Needs the Redis at REDIS_URL (default
 * redis://127.0.0.1:6379, which .ci/run starts): without it this file fails, it never skips.
 */
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

const probe = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null })
probe.on('error', () => {})
try {
  await probe.connect()
  await probe.ping()
} catch (err) {
  t.fail(`Redis is not reachable at ${REDIS_URL} (${(err as Error).message}): start it (redis-server) or set REDIS_URL`)
  process.exit(1)
} finally {
  probe.disconnect()
}

const ctx = await setup()
const MAX = 5
const rateLimit = { max: MAX, windowMs: 60_000, authFailureMax: 3, redisUrl: REDIS_URL }
const instances = await Promise.all([0, 1].map(() => buildTestApp(ctx.db, { app: { rateLimit } })))
await Promise.all(instances.map((app) => app.ready()))
t.teardown(() => Promise.all(instances.map((app) => app.close())))

t.test('two instances on one Redis enforce one budget per subject', async (t) => {
  const headers = { authorization: `Bearer ${await token('customers:read', { sub: `user:shared-${randomUUID()}` })}` }
  const statuses: number[] = []
  for (let i = 0; i < 4 * MAX; i++) {
    const res = await instances[i % 2]!.inject({ url: '/v1/customers?limit=1', headers })
    statuses.push(res.statusCode)
  }
  t.equal(statuses.filter((s) => s === 200).length, MAX, `the sum across instances is ${MAX}: ${statuses.join(' ')}`)
  t.equal(statuses.filter((s) => s === 429).length, 3 * MAX, 'the rest are refused, on both instances')
  t.same(statuses.slice(0, MAX), Array(MAX).fill(200), 'the first max requests pass')

  const concurrent = { authorization: `Bearer ${await token('customers:read', { sub: `user:burst-${randomUUID()}` })}` }
  const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => instances[i % 2]!.inject({ url: '/v1/customers?limit=1', headers: concurrent })))
  t.equal(burst.filter((r) => r.statusCode === 200).length, MAX, 'concurrent requests on both instances: still max in all')
})

t.test('failed authentications are counted across instances too', async (t) => {
  const address = `198.18.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) {
    const res = await instances[i % 2]!.inject({ url: '/v1/customers', remoteAddress: address, headers: { authorization: `Bearer bad.${randomUUID()}.x` } })
    statuses.push(res.statusCode)
  }
  t.same(statuses, [401, 401, 401, 429, 429, 429], 'three failures in all, then 429 on either instance')
  const valid = await instances[1]!.inject({ url: '/v1/customers?limit=1', remoteAddress: address, headers: { authorization: `Bearer ${await token('customers:read', { sub: `user:${randomUUID()}` })}` } })
  t.equal(valid.statusCode, 200, 'a valid token from that address is still served')
})

t.test('an unreachable Redis never blocks or fails a request', async (t) => {
  // Nothing listens on port 1: commands fail at once (no offline queue), the request goes through.
  const app = await buildTestApp(ctx.db, { app: { rateLimit: { ...rateLimit, redisUrl: 'redis://127.0.0.1:1' } } })
  await app.ready()
  t.teardown(() => app.close())
  const headers = { authorization: `Bearer ${await token('customers:read', { sub: `user:${randomUUID()}` })}` }
  const started = Date.now()
  for (let i = 0; i < MAX + 2; i++) t.equal((await app.inject({ url: '/v1/customers?limit=1', headers })).statusCode, 200)
  t.ok(Date.now() - started < 5000, `answered in ${Date.now() - started} ms`)
})
