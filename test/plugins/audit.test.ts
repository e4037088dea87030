import t from 'tap'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { sql } from 'kysely'
import { setup } from '../helpers/app.js'

/** Test-only routes that write to `customers` through request.db, as every module must. */
async function routes(app: FastifyInstance) {
  const write = { scope: 'customers:write' as const }
  app.post('/test/customers', { config: write }, async (request) => {
    const body = request.body as { names: string[]; fail?: boolean }
    const rows = await request.db.insertInto('customers').values(body.names.map((name) => ({ name }))).returning('id').execute()
    if (body.fail) throw new Error('failed after writing')
    return { ids: rows.map((r) => r.id) }
  })
  app.post('/test/customers/bulk', { config: write }, async (request) => {
    const { count } = request.body as { count: number }
    await sql`insert into customers (name) select 'Bulk ' || g from generate_series(1, ${count}::int) g`.execute(request.db)
    return { count }
  })
  app.patch('/test/customers/:id', { config: write }, async (request) => {
    const { id } = request.params as { id: string }
    const result = await request.db.updateTable('customers').set(request.body as { name: string }).where('id', '=', id).executeTakeFirst()
    return { updated: Number(result.numUpdatedRows) }
  })
  app.delete('/test/customers/:id', { config: write }, async (request, reply) => {
    const { id } = request.params as { id: string }
    await request.db.deleteFrom('customers').where('id', '=', id).execute()
    return reply.code(204).send()
  })
  // Answers with reply.send() while the transaction is still open; its commit then fails.
  app.post('/test/deferred', { config: write }, async (request, reply) => {
    const { send } = request.body as { send: boolean }
    await request.db.insertInto('customers').values({ name: 'Deferred' }).execute()
    await sql`insert into test_deferred (customer_id) values (${'0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'})`.execute(request.db)
    if (send) return reply.code(201).send({ ok: true })
    return { ok: true }
  })
  const context = async ({ db }: FastifyRequest) => {
    const { rows } = await sql<{ actor: string | null; request_id: string | null; route: string | null; correlation_id: string | null }>`
      select crm_context('actor') as actor, crm_context('request_id') as request_id, crm_context('route') as route,
             crm_context('correlation_id') as correlation_id`.execute(db)
    return { isTransaction: db.isTransaction, isPool: db === app.db, ...rows[0] }
  }
  app.get('/test/context', { config: { scope: 'customers:read' } }, async (request) => context(request))
  app.post('/test/context', { config: write }, async (request) => context(request))
}

const ctx = await setup({ plugins: [routes] })
const writer = await ctx.auth('customers:write', { sub: 'user:auditor' })

async function send(method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  return ctx.app.inject({ method, url, headers: writer, ...(payload === undefined ? {} : { payload: payload as object }) })
}

async function auditOf(res: { headers: Record<string, unknown> }) {
  const requestId = res.headers['x-request-id'] as string
  return ctx.db.selectFrom('audit_events').selectAll().where('request_id', '=', requestId).orderBy('id').execute()
}

t.test('an insert of 3 rows leaves exactly 3 audit rows with the request id, actor and route', async (t) => {
  const before = await ctx.count('audit_events')
  const res = await send('POST', '/test/customers', { names: ['Ann', 'Ben', 'Cai'] })
  t.equal(res.statusCode, 200, res.body)
  const { ids } = res.json() as { ids: string[] }
  const audit = await auditOf(res)
  t.equal(audit.length, 3)
  t.equal(await ctx.count('audit_events'), before + 3, 'and nothing else')
  t.same(audit.map((a) => a.entity_id).sort(), [...ids].sort())
  for (const a of audit) {
    t.match(a, { actor: 'user:auditor', route: 'POST /test/customers', action: 'insert', entity: 'customers', before: null })
    t.match(a.after, { id: a.entity_id, name: /^(Ann|Ben|Cai)$/, version: 1 })
  }
  t.equal(new Set(audit.map((a) => a.txid)).size, 1, 'one transaction')
})

t.test('an update records before and after; a delete records before', async (t) => {
  const { ids } = (await send('POST', '/test/customers', { names: ['Dan'] })).json() as { ids: string[] }
  const id = ids[0]!
  const patch = await send('PATCH', `/test/customers/${id}`, { name: 'Daniel' })
  t.equal(patch.statusCode, 200)
  const [update, ...more] = await auditOf(patch)
  t.equal(more.length, 0)
  t.match(update, { action: 'update', entity_id: id, actor: 'user:auditor', route: 'PATCH /test/customers/:id' })
  t.match(update!.before, { name: 'Dan', version: 1 })
  t.match(update!.after, { name: 'Daniel', version: 2 })

  const del = await send('DELETE', `/test/customers/${id}`)
  t.equal(del.statusCode, 204)
  const [removal, ...rest] = await auditOf(del)
  t.equal(rest.length, 0)
  t.match(removal, { action: 'delete', entity_id: id, after: null, route: 'DELETE /test/customers/:id' })
  t.match(removal!.before, { name: 'Daniel', version: 2 })
})

t.test('a handler that writes then throws leaves neither the rows nor audit rows', async (t) => {
  const customers = await ctx.count('customers')
  const audit = await ctx.count('audit_events')
  const res = await send('POST', '/test/customers', { names: ['Eve', 'Fay'], fail: true })
  t.equal(res.statusCode, 500)
  t.match(res.headers['content-type'], /application\/problem\+json/)
  t.equal(await ctx.count('customers'), customers)
  t.equal(await ctx.count('audit_events'), audit)
  t.same(await auditOf(res), [])
})

t.test('a statement-level bulk insert of 500 rows leaves 500 audit rows', async (t) => {
  const audit = await ctx.count('audit_events')
  const res = await send('POST', '/test/customers/bulk', { count: 500 })
  t.equal(res.statusCode, 200, res.body)
  const rows = await auditOf(res)
  t.equal(rows.length, 500)
  t.equal(new Set(rows.map((r) => r.entity_id)).size, 500, 'one per row')
  t.ok(rows.every((r) => r.actor === 'user:auditor' && r.action === 'insert' && r.route === 'POST /test/customers/bulk'))
  t.equal(await ctx.count('audit_events'), audit + 500)
})

t.test('an update that changes nothing writes no audit row and keeps the version', async (t) => {
  const { ids } = (await send('POST', '/test/customers', { names: ['Gus'] })).json() as { ids: string[] }
  const res = await send('PATCH', `/test/customers/${ids[0]}`, { name: 'Gus' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { updated: 1 }, 'the row matched')
  t.same(await auditOf(res), [])
  const row = await ctx.db.selectFrom('customers').select(['version']).where('id', '=', ids[0]!).executeTakeFirstOrThrow()
  t.equal(row.version, 1)
})

t.test('mutating routes run in a transaction carrying the context; GET routes use the pool', async (t) => {
  const get = await ctx.app.inject({ url: '/test/context', headers: await ctx.auth('customers:read', { sub: 'user:reader' }) })
  t.equal(get.statusCode, 200)
  t.same(get.json(), { isTransaction: false, isPool: true, actor: null, request_id: null, route: null, correlation_id: null })

  const post = await ctx.app.inject({ method: 'POST', url: '/test/context', headers: { ...writer, 'x-request-id': 'ctx-1' }, payload: {} })
  t.equal(post.statusCode, 200)
  t.same(post.json(), { isTransaction: true, isPool: false, actor: 'user:auditor', request_id: post.headers['x-request-id'], route: 'POST /test/context', correlation_id: 'ctx-1' })

  const after = await ctx.app.inject({ url: '/test/context', headers: await ctx.auth('customers:read') })
  t.same(after.json(), { isTransaction: false, isPool: true, actor: null, request_id: null, route: null, correlation_id: null }, 'nothing leaks into pooled connections')
})

t.test('changes made outside the API are audited with the database role as actor', async (t) => {
  const { id } = await ctx.db.insertInto('customers').values({ name: 'Direct' }).returning('id').executeTakeFirstOrThrow()
  const row = await ctx.db.selectFrom('audit_events').selectAll().where('entity_id', '=', id).executeTakeFirstOrThrow()
  t.match(row, { action: 'insert', request_id: null, route: null, actor: /^db:/ })
})

t.test('a failure at COMMIT is answered as an error, also when the handler already called reply.send', async (t) => {
  await sql`create table test_deferred (
    id serial primary key,
    customer_id uuid references customers (id) deferrable initially deferred
  )`.execute(ctx.ownerDb)
  for (const sendEarly of [false, true]) {
    const customers = await ctx.count('customers')
    const res = await send('POST', '/test/deferred', { send: sendEarly })
    // A dangling reference the server wrote: its bug, not the client's.
    t.equal(res.statusCode, 500, `reply.send inside the handler: ${sendEarly}`)
    t.match(res.headers['content-type'], /application\/problem\+json/)
    t.equal(await ctx.count('customers'), customers, 'nothing was kept')
    t.same(await auditOf(res), [])
  }
})

t.test('a client\'s x-request-id never replaces the server\'s request id in the audit trail; it is kept as the correlation id', async (t) => {
  const forged = await ctx.app.inject({ method: 'POST', url: '/test/customers', headers: { ...writer, 'x-request-id': 'forged' }, payload: { names: ['Forged'] } })
  t.equal(forged.statusCode, 200, forged.body)
  const serverId = forged.headers['x-request-id'] as string
  t.match(serverId, /^[0-9a-f-]{36}$/, 'the response names the server\'s own id')
  t.equal(forged.headers['x-correlation-id'], 'forged', 'the client\'s id comes back as the correlation id')
  const rows = await ctx.db.selectFrom('audit_events').select(['request_id', 'correlation_id']).where('entity_id', '=', forged.json().ids[0]).execute()
  t.same(rows, [{ request_id: serverId, correlation_id: 'forged' }])
  t.equal(await ctx.db.selectFrom('audit_events').select('id').where('request_id', '=', 'forged').execute().then((r) => r.length), 0, 'no audit row is filed under the forged id')

  // Another request claiming an earlier request's id cannot file its changes under it.
  const first = await ctx.app.inject({ method: 'POST', url: '/test/customers', headers: writer, payload: { names: ['Victim'] } })
  const claimed = first.headers['x-request-id'] as string
  const impostor = await ctx.app.inject({ method: 'POST', url: '/test/customers', headers: { ...writer, 'x-request-id': claimed }, payload: { names: ['Impostor'] } })
  t.same((await auditOf(first)).map((a) => a.entity_id), first.json().ids, 'the first request\'s id names its changes only')
  t.same((await auditOf(impostor)).map((a) => [a.entity_id, a.correlation_id]), [[impostor.json().ids[0], claimed]])

  const plain = await send('POST', '/test/customers', { names: ['Plain'] })
  t.same((await auditOf(plain)).map((a) => a.correlation_id), [null], 'no correlation id when the client sends none')

  // The correlation id is covered by the hash chain like every other column.
  await sql`select crm_audit_seal()`.execute(ctx.ownerDb)
  t.match((await sql<{ intact: boolean }>`select * from crm_audit_verify()`.execute(ctx.ownerDb)).rows[0], { intact: true })
  await sql`update audit_events set correlation_id = 'rewritten' where correlation_id = 'forged'`.execute(ctx.ownerDb)
  t.match((await sql<{ intact: boolean }>`select * from crm_audit_verify()`.execute(ctx.ownerDb)).rows[0], { intact: false }, 'rewriting it breaks the chain')
  await sql`update audit_events set correlation_id = 'forged' where correlation_id = 'rewritten'`.execute(ctx.ownerDb)
  t.match((await sql<{ intact: boolean }>`select * from crm_audit_verify()`.execute(ctx.ownerDb)).rows[0], { intact: true })
})
