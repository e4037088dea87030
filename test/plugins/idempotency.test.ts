import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { resolveParameter } from '../helpers/openapi.js'
import { setup } from '../helpers/app.js'
import { purgeExpired } from '../../src/plugins/idempotency.repository.js'

/** A test-only POST that writes, then waits for the test to let it finish: a request "in flight". */
let entered: () => void = () => {}
const gates: Array<() => void> = []
async function routes(app: FastifyInstance) {
  app.post('/test/slow', { config: { scope: 'customers:write' } }, async (request, reply) => {
    const { name } = request.body as { name: string }
    const row = await request.db.insertInto('customers').values({ name }).returning('id').executeTakeFirstOrThrow()
    await new Promise<void>((resolve) => {
      gates.push(resolve)
      entered()
    })
    return reply.code(201).send({ id: row.id })
  })
  app.post('/test/fail-after-write', { config: { scope: 'customers:write' } }, async (request) => {
    await request.db.insertInto('customers').values({ name: 'Never kept' }).execute()
    throw new Error('failed after writing')
  })
}

const ctx = await setup({ plugins: [routes] })
const writer = await ctx.auth('customers:write customers:read orders:write orders:read pii:read', { sub: 'user:alice' })
const other = await ctx.auth('customers:write customers:read orders:write orders:read pii:read', { sub: 'user:bob' })
const writerNoPii = await ctx.auth('customers:write customers:read', { sub: 'user:alice' })

let n = 0
const newKey = () => `key-${process.pid}-${++n}`

async function post(url: string, body: unknown, key: string | undefined, auth: Record<string, string> = writer) {
  return ctx.app.inject({ method: 'POST', url, headers: { ...auth, ...(key === undefined ? {} : { 'idempotency-key': key }) }, payload: body as object })
}

async function customersNamed(name: string) {
  return ctx.db.selectFrom('customers').select('id').where('name', '=', name).execute()
}

async function auditInserts(name: string) {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from audit_events where entity = 'customers' and action = 'insert' and after ->> 'name' = ${name}`.execute(ctx.db)
  return rows[0]!.n
}

async function keysOf(key: string) {
  return ctx.db.selectFrom('idempotency_keys').selectAll().where('key', '=', key).execute()
}

t.test('the same key and body replays status, body and headers byte for byte, and changes nothing', async (t) => {
  const key = newKey()
  const body = { name: 'Replay Customer', tags: ['vip'], contact_points: [{ kind: 'email', value: 'replay@example.com' }] }
  const first = await post('/v1/customers', body, key)
  t.equal(first.statusCode, 201, first.body)
  t.notOk(first.headers['idempotent-replayed'], 'the first answer is not a replay')
  const again = await post('/v1/customers', body, key)
  t.equal(again.statusCode, 201)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.body, first.body, 'identical body bytes')
  for (const h of ['location', 'etag', 'content-type']) t.equal(again.headers[h], first.headers[h], h)
  t.not(again.headers['x-request-id'], first.headers['x-request-id'], 'the replay is its own request')
  t.equal((await customersNamed('Replay Customer')).length, 1, 'one customer')
  t.equal(await auditInserts('Replay Customer'), 1, 'one audit insert')

  const reordered = await post('/v1/customers', { contact_points: [{ value: 'replay@example.com', kind: 'email' }], tags: ['vip'], name: 'Replay Customer' }, key)
  t.equal(reordered.statusCode, 201, 'object key order does not change the fingerprint')
  t.equal(reordered.headers['idempotent-replayed'], 'true')
  t.equal(reordered.body, first.body)

  const stored = await keysOf(key)
  t.equal(stored.length, 1)
  t.match(stored[0], { actor: 'user:alice', route: 'POST /v1/customers', status: 201, body: first.body })
  t.same(Object.keys(stored[0]!.headers).sort(), ['content-type', 'etag', 'location'])
})

t.test('without a key nothing is stored and every POST takes effect', async (t) => {
  const before = await ctx.count('idempotency_keys')
  const a = await post('/v1/customers', { name: 'Keyless' }, undefined)
  const b = await post('/v1/customers', { name: 'Keyless' }, undefined)
  t.equal(a.statusCode, 201)
  t.equal(b.statusCode, 201)
  t.not(a.json().id, b.json().id)
  t.equal(await ctx.count('idempotency_keys'), before)
})

t.test('the same key with another body answers 422 and changes nothing', async (t) => {
  const key = newKey()
  t.equal((await post('/v1/customers', { name: 'Body One' }, key)).statusCode, 201)
  const res = await post('/v1/customers', { name: 'Body Two' }, key)
  t.equal(res.statusCode, 422)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.same(res.json().errors.map((e: { pointer: string }) => e.pointer), ['/headers/idempotency-key'])
  t.equal((await customersNamed('Body Two')).length, 0)

  // Path parameters are part of the request: the same key on another customer's sub-resource is another request.
  const c1 = (await post('/v1/customers', { name: 'Owner One' }, undefined)).json().id
  const c2 = (await post('/v1/customers', { name: 'Owner Two' }, undefined)).json().id
  const cpKey = newKey()
  const cp = { kind: 'phone', value: '+86 138 0013 8000' }
  t.equal((await post(`/v1/customers/${c1}/contact-points`, cp, cpKey)).statusCode, 201)
  const elsewhere = await post(`/v1/customers/${c2}/contact-points`, cp, cpKey)
  t.equal(elsewhere.statusCode, 422, 'same body, other path parameters')
  t.equal(await ctx.db.selectFrom('contact_points').select('id').where('customer_id', '=', c2).execute().then((r) => r.length), 0)

  // A token of the same subject that may not read PII must not see the unmasked first response.
  const piiKey = newKey()
  t.equal((await post('/v1/customers', { name: 'Pii Person', birthday: '1990-01-01' }, piiKey)).statusCode, 201)
  const masked = await post('/v1/customers', { name: 'Pii Person', birthday: '1990-01-01' }, piiKey, writerNoPii)
  t.equal(masked.statusCode, 422)
  t.notMatch(masked.body, /1990-01-01/)
})

t.test('keys are scoped to the subject and to the operation', async (t) => {
  const key = newKey()
  const mine = await post('/v1/customers', { name: 'Scoped Person' }, key)
  const theirs = await post('/v1/customers', { name: 'Scoped Person' }, key, other)
  t.equal(mine.statusCode, 201)
  t.equal(theirs.statusCode, 201)
  t.notOk(theirs.headers['idempotent-replayed'], 'another subject\'s key is independent')
  t.not(theirs.json().id, mine.json().id)
  t.equal((await customersNamed('Scoped Person')).length, 2)

  const order = await post('/v1/orders', { customer_id: mine.json().id, currency: 'CNY', items: [{ sku: 'A', product_name: 'A', quantity: 1, unit_price: '1.00' }] }, key)
  t.equal(order.statusCode, 201, 'the same key on another route is another key')
  t.notOk(order.headers['idempotent-replayed'])
  t.same((await keysOf(key)).map((k) => `${k.actor} ${k.route}`).sort(), ['user:alice POST /v1/customers', 'user:alice POST /v1/orders', 'user:bob POST /v1/customers'])
})

t.test('batch routes replay too', async (t) => {
  const c = (await post('/v1/customers', { name: 'Batch Buyer' }, undefined)).json().id
  const item = { sku: 'B', product_name: 'B', quantity: 2, unit_price: '3.50' }
  const body = { items: [{ customer_id: c, currency: 'CNY', items: [item] }, { customer_id: c, currency: 'CNY', items: [item] }] }
  const key = newKey()
  const first = await post('/v1/orders/batch', body, key)
  t.equal(first.statusCode, 200, first.body)
  const again = await post('/v1/orders/batch', body, key)
  t.equal(again.statusCode, 200)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.body, first.body)
  t.equal((await ctx.db.selectFrom('orders').select('id').where('customer_id', '=', c).execute()).length, 2)
})

t.test('a bad key is a 400 pointing at the header, before anything runs', async (t) => {
  for (const bad of ['', 'x'.repeat(256), 'tab\there', 'caf\u00e9']) {
    const res = await post('/v1/customers', { name: 'Bad Key' }, bad)
    t.equal(res.statusCode, 400, JSON.stringify(bad))
    t.same(res.json().errors?.map((e: { pointer: string }) => e.pointer), ['/headers/idempotency-key'])
  }
  t.equal((await post('/v1/customers', { name: 'Long Key' }, 'k'.repeat(255))).statusCode, 201, '255 characters are fine')
  t.equal((await customersNamed('Bad Key')).length, 0)
})

t.test('a failed request leaves no key: the retry runs again', async (t) => {
  const key = newKey()
  const before = await ctx.count('idempotency_keys')
  const unknownCustomer = { customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99', currency: 'CNY', items: [{ sku: 'A', product_name: 'A', quantity: 1, unit_price: '1.00' }] }
  const failed = await post('/v1/orders', unknownCustomer, key)
  t.ok(failed.statusCode >= 400 && failed.statusCode < 500, `4xx (${failed.statusCode})`)
  t.equal(await ctx.count('idempotency_keys'), before, 'a 4xx is not stored')
  const again = await post('/v1/orders', unknownCustomer, key)
  t.equal(again.statusCode, failed.statusCode, 'the retry runs again (no replay, no 422)')
  t.notOk(again.headers['idempotent-replayed'])

  const boomKey = newKey()
  const boom = await post('/test/fail-after-write', {}, boomKey)
  t.equal(boom.statusCode, 500)
  t.equal((await keysOf(boomKey)).length, 0, 'a rolled-back request leaves no key')
  t.equal((await customersNamed('Never kept')).length, 0, 'and no change')

  const c = (await post('/v1/customers', { name: 'Fixed Later' }, undefined)).json().id
  const fixed = await post('/v1/orders', { ...unknownCustomer, customer_id: c }, key)
  t.equal(fixed.statusCode, 201, 'the key is free for a corrected request')
})

t.test('a duplicate while the first request is in flight gets 409 with Retry-After; never two effects', async (t) => {
  const key = newKey()
  const inside = new Promise<void>((resolve) => {
    entered = resolve
  })
  const first = post('/test/slow', { name: 'Slow One' }, key)
  await inside
  const ranTwice = new Promise<'ran twice'>((resolve) => {
    entered = () => resolve('ran twice')
  })
  const duplicate = await Promise.race([post('/test/slow', { name: 'Slow One' }, key), ranTwice])
  if (duplicate === 'ran twice') t.fail('the duplicate ran the handler while the first was in flight')
  else {
    t.equal(duplicate.statusCode, 409)
    t.equal(duplicate.headers['retry-after'], '1')
    t.match(duplicate.headers['content-type'], /^application\/problem\+json/)
  }
  for (const open of gates.splice(0)) open()
  const done = await first
  t.equal(done.statusCode, 201)
  const replay = await post('/test/slow', { name: 'Slow One' }, key)
  t.equal(replay.statusCode, 201)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.equal(replay.body, done.body)
  t.equal((await customersNamed('Slow One')).length, 1)
})

t.test('N identical requests at once with one key: exactly one effect and one audit insert', async (t) => {
  for (const [url, name] of [['/v1/customers', 'Racer Customer'], ['/v1/customers', 'Racer Two']] as const) {
    const key = newKey()
    const N = 12
    const results = await Promise.all(Array.from({ length: N }, () => post(url, { name }, key)))
    const statuses = results.map((r) => r.statusCode)
    const fresh = results.filter((r) => r.statusCode === 201 && !r.headers['idempotent-replayed'])
    t.equal(fresh.length, 1, `one request ran (${statuses.join(',')})`)
    for (const r of results) {
      if (r === fresh[0]) continue
      if (r.statusCode === 409) t.equal(r.headers['retry-after'], '1')
      else {
        t.equal(r.statusCode, 201)
        t.equal(r.headers['idempotent-replayed'], 'true')
        t.equal(r.body, fresh[0]!.body)
      }
    }
    t.equal((await customersNamed(name)).length, 1, 'exactly one customer')
    t.equal(await auditInserts(name), 1, 'exactly one audit insert')
    t.equal((await keysOf(key)).length, 1, 'one stored key')
  }
})

t.test('expired keys are ignored, taken over, and purged', async (t) => {
  const key = newKey()
  const first = await post('/v1/customers', { name: 'Expiring' }, key)
  t.equal(first.statusCode, 201)
  const stored = (await keysOf(key))[0]!
  const { rows } = await sql<{ hours: number }>`select extract(epoch from expires_at - created_at)::int / 3600 as hours from idempotency_keys where key = ${key}`.execute(ctx.db)
  t.equal(rows[0]!.hours, 24, 'kept 24 hours')
  await sql`update idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(ctx.db)
  const after = await post('/v1/customers', { name: 'Expiring' }, key)
  t.equal(after.statusCode, 201)
  t.notOk(after.headers['idempotent-replayed'], 'an expired key does not replay')
  t.not(after.json().id, first.json().id)
  t.equal((await customersNamed('Expiring')).length, 2)
  const renewed = await keysOf(key)
  t.equal(renewed.length, 1)
  t.equal(renewed[0]!.body, after.body, 'the key now answers for the new request')
  t.not(renewed[0]!.expires_at, stored.expires_at)

  await sql`update idempotency_keys set expires_at = now() - interval '1 second' where key = ${key}`.execute(ctx.db)
  const live = await ctx.db.selectFrom('idempotency_keys').select('key').where('expires_at', '>', sql<string>`now()`).execute()
  t.ok((await purgeExpired(ctx.db)) >= 1)
  t.equal((await keysOf(key)).length, 0, 'purged')
  t.equal((await ctx.db.selectFrom('idempotency_keys').select('key').execute()).length, live.length, 'live keys stay')
})

t.test('the contract documents Idempotency-Key on every POST (but the streamed import) and only there', async (t) => {
  const doc = ctx.app.swagger() as {
    paths: Record<string, Record<string, { parameters?: Array<{ in: string; name: string; schema: { $ref?: string } } | { $ref: string }> }>>
    components: { schemas: Record<string, { maxLength?: number; minLength?: number; description?: string }> }
  }
  t.match(doc.components.schemas.IdempotencyKey, { minLength: 1, maxLength: 255, description: /replays the first response/ }, 'one shared component')
  let posts = 0
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const header = op.parameters?.map((p) => resolveParameter(doc as never, p as never)).find((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key')
      if (method === 'post' && path !== '/v1/imports') {
        posts++
        t.ok(header, `POST ${path}`)
        t.equal(header?.schema.$ref, '#/components/schemas/IdempotencyKey')
      } else t.notOk(header, `${method.toUpperCase()} ${path}`)
    }
  }
  t.ok(posts >= 6)
})
