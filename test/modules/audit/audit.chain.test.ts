import t from 'tap'
import { sql } from 'kysely'
import { buildApp } from '../../../src/app.js'
import { sealAuditTrail, verifyAuditChain } from '../../../src/modules/audit/audit.repository.js'
import { TEST_AUTH, setup } from '../../helpers/app.js'

/** The audit hash chain (crm_audit_seal / crm_audit_verify) and the API role that cannot rewrite it. */
const ctx = await setup()
const admin = await ctx.auth()
const auditor = await ctx.auth('audit:read')

type Verification = {
  intact: boolean
  sealed_count: number
  unsealed_count: number
  head: { seq: number; hash: string } | null
  first_broken: { seq: number; audit_event_id: string | null; reason: string } | null
  verified_from: number
}

/** Full unless told otherwise: most tests below tamper with positions that were verified before. */
async function verify({ full = true } = {}): Promise<Verification> {
  const res = await ctx.app.inject({ url: `/v1/audit-events/verify${full ? '?full=true' : ''}`, headers: auditor })
  if (res.statusCode !== 200) throw new Error(`verify answered ${res.statusCode}: ${res.body}`)
  return res.json() as Verification
}

let made = 0
async function createCustomer(name = `Chain ${++made}`): Promise<string> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name } })
  if (res.statusCode !== 201) throw new Error(`create answered ${res.statusCode}: ${res.body}`)
  return (res.json() as { id: string }).id
}

async function auditCount(): Promise<number> {
  return ctx.count('audit_events')
}

async function chainEntryOf(entityId: string) {
  return ctx.ownerDb
    .selectFrom('audit_chain as c')
    .innerJoin('audit_events as a', 'a.id', 'c.audit_event_id')
    .select(['c.seq', 'c.audit_event_id', 'a.txid'])
    .where('a.entity_id', '=', entityId)
    .executeTakeFirst()
}

t.test('verify seals what was written and reports an intact chain', async (t) => {
  const empty = await verify({ full: false })
  t.match(empty, { intact: true, unsealed_count: 0, first_broken: null })
  const ids = [await createCustomer(), await createCustomer(), await createCustomer()]
  t.ok((await ctx.db.selectFrom('audit_chain').select('seq').execute()).length < (await auditCount()), 'the new events are not sealed yet')
  const after = await verify({ full: false })
  t.match(after, { intact: true, unsealed_count: 0, first_broken: null, verified_from: empty.head?.seq ?? 0 }, 'from the position verified before')
  t.equal(after.sealed_count, await auditCount(), 'every audit event is in the chain')
  t.equal(after.sealed_count, empty.sealed_count + 3)
  t.match(after.head, { seq: after.sealed_count, hash: /^[0-9a-f]{64}$/ })
  for (const id of ids) t.ok(await chainEntryOf(id), 'each write has its chain position')
  const again = await verify({ full: false })
  t.same({ ...again, verified_from: 0 }, { ...after, verified_from: 0 }, 'verifying twice changes nothing')
  t.equal(again.verified_from, after.head!.seq, 'the second run starts where the first ended')
})

t.test('only audit:read (or admin) may verify', async (t) => {
  const denied = await ctx.app.inject({ url: '/v1/audit-events/verify', headers: await ctx.auth('customers:read customers:write') })
  t.equal(denied.statusCode, 403)
  t.equal((await ctx.app.inject({ url: '/v1/audit-events/verify' })).statusCode, 401)
  t.equal((await ctx.app.inject({ url: '/v1/audit-events/verify', headers: await ctx.auth('audit:*') })).statusCode, 200)
})

t.test('a changed audit event breaks the chain at its position, and only there', async (t) => {
  await createCustomer()
  await createCustomer()
  const before = await verify()
  const target = await ctx.ownerDb.selectFrom('audit_chain').select(['seq', 'audit_event_id']).where('seq', '=', before.sealed_count - 1).executeTakeFirstOrThrow()
  const original = await ctx.ownerDb.selectFrom('audit_events').select(['actor', 'after']).where('id', '=', target.audit_event_id).executeTakeFirstOrThrow()

  await ctx.ownerDb.updateTable('audit_events').set({ actor: 'user:someone-else' }).where('id', '=', target.audit_event_id).execute()
  const actorChanged = await verify()
  t.equal(actorChanged.intact, false)
  t.same(actorChanged.first_broken, { seq: target.seq, audit_event_id: target.audit_event_id, reason: 'the audit event or its hash differs from what was sealed' })

  await ctx.ownerDb.updateTable('audit_events').set({ actor: original.actor, after: { ...original.after, name: 'Forged' } }).where('id', '=', target.audit_event_id).execute()
  t.match((await verify()).first_broken, { seq: target.seq }, 'a changed snapshot is caught too')

  await ctx.ownerDb.updateTable('audit_events').set({ after: original.after }).where('id', '=', target.audit_event_id).execute()
  t.match(await verify(), { intact: true, first_broken: null }, 'putting the content back makes it verify again')
})

t.test('a removed audit event, a removed or rewritten chain position are reported', async (t) => {
  await createCustomer()
  const v = await verify()
  const target = await ctx.ownerDb.selectFrom('audit_chain').selectAll().where('seq', '=', v.sealed_count).executeTakeFirstOrThrow()
  const row = await ctx.ownerDb.selectFrom('audit_events').selectAll().where('id', '=', target.audit_event_id).executeTakeFirstOrThrow()

  await ctx.ownerDb.deleteFrom('audit_events').where('id', '=', row.id).execute()
  t.same((await verify()).first_broken, { seq: target.seq, audit_event_id: row.id, reason: 'the sealed audit event no longer exists' })
  await sql`insert into audit_events (id, occurred_at, actor, request_id, route, action, entity, entity_id, before, after, txid)
            values (${row.id}, ${row.occurred_at}, ${row.actor}, ${row.request_id}, ${row.route}, ${row.action}, ${row.entity},
                    ${row.entity_id}, ${JSON.stringify(row.before)}::jsonb, ${JSON.stringify(row.after)}::jsonb, ${row.txid})`.execute(ctx.ownerDb)
  t.match(await verify(), { intact: true }, 'the identical row verifies again')

  // The chain itself is checked without sealing first: the route would seal an event whose
  // chain entry was removed again, at the end (the gap stays reported either way).
  const checkOnly = () => verifyAuditChain(ctx.db, { full: true })
  const middle = await ctx.ownerDb.selectFrom('audit_chain').selectAll().where('seq', '=', 2).executeTakeFirstOrThrow()
  await ctx.ownerDb.deleteFrom('audit_chain').where('seq', '=', 2).execute()
  t.match(await checkOnly(), { intact: false, broken_seq: 3, reason: 'chain position 2 is missing' })
  await sql`insert into audit_chain (seq, audit_event_id, hash, seal_id) values (${middle.seq}, ${middle.audit_event_id}, ${middle.hash}, ${middle.seal_id})`.execute(ctx.ownerDb)

  await sql`update audit_chain set hash = sha256('forged'::bytea) where seq = 2`.execute(ctx.ownerDb)
  const forged = await checkOnly()
  t.equal(forged.intact, false)
  t.ok(forged.broken_seq! <= 3, 'a rewritten hash breaks its own link or the next one')
  await sql`update audit_chain set hash = ${middle.hash} where seq = 2`.execute(ctx.ownerDb)

  const tail = await ctx.ownerDb.selectFrom('audit_chain').selectAll().where('seq', '=', v.sealed_count).executeTakeFirstOrThrow()
  await ctx.ownerDb.deleteFrom('audit_chain').where('seq', '=', tail.seq).execute()
  t.match(await checkOnly(), { intact: false, broken_seq: tail.seq, broken_audit_event_id: null, reason: /are missing/ }, 'a cut tail is caught by the seal records')
  await sql`insert into audit_chain (seq, audit_event_id, hash, seal_id) values (${tail.seq}, ${tail.audit_event_id}, ${tail.hash}, ${tail.seal_id})`.execute(ctx.ownerDb)
  t.match(await verify(), { intact: true })
})

t.test('a transaction that commits after a later one is sealed late, never skipped', async (t) => {
  await verify()
  const late = await ctx.db.startTransaction().execute()
  const lateRow = await late.insertInto('customers').values({ name: 'Committed late' }).returning('id').executeTakeFirstOrThrow()
  const early = await createCustomer('Committed early')
  t.equal(await sealAuditTrail(ctx.db), 1, 'the seal sees only the committed write')
  const earlyEntry = await chainEntryOf(early)
  t.ok(earlyEntry)
  const seal = await ctx.ownerDb.selectFrom('audit_seals').selectAll().orderBy('id', 'desc').executeTakeFirstOrThrow()
  const { txid } = await late.selectFrom('audit_events').select('txid').where('entity_id', '=', lateRow.id).executeTakeFirstOrThrow()
  t.ok(Number(txid) < Number(earlyEntry!.txid), 'the late transaction started first')
  t.ok(seal.horizon_txid <= Number(txid), 'the horizon stays below the running transaction')
  await late.commit().execute()
  const v = await verify()
  t.match(v, { intact: true, unsealed_count: 0 })
  const lateEntry = await chainEntryOf(lateRow.id)
  t.ok(lateEntry && lateEntry.seq > earlyEntry!.seq, 'sealed after the early one, in commit order')
})

t.test('concurrent writers and concurrent seals give one intact chain with every event once', async (t) => {
  const writers = Array.from({ length: 6 }, async (_, w) => {
    for (let i = 0; i < 8; i++) await createCustomer(`Writer ${w}-${i}`)
  })
  let sealing = true
  const sealers = Array.from({ length: 3 }, async () => {
    while (sealing) {
      await sealAuditTrail(ctx.db, { wait: false })
      await new Promise((r) => setTimeout(r, 5))
    }
  })
  await Promise.all(writers)
  sealing = false
  await Promise.all(sealers)
  const v = await verify()
  t.match(v, { intact: true, unsealed_count: 0 })
  t.equal(v.sealed_count, await auditCount())
  const dupes = await sql<{ n: number }>`select count(*)::int as n from (select audit_event_id from audit_chain group by 1 having count(*) > 1) d`.execute(ctx.db)
  t.equal(dupes.rows[0]!.n, 0, 'no event sealed twice')
  const seals = await ctx.db.selectFrom('audit_seals').select(['first_seq', 'last_seq']).orderBy('id').execute()
  for (let i = 1; i < seals.length; i++) t.equal(seals[i]!.first_seq, seals[i - 1]!.last_seq + 1, `seal ${i + 1} continues seal ${i}`)
})

t.test("the API's role cannot rewrite the audit trail, while API writes still work", async (t) => {
  const { rows } = await sql<{ current_user: string; session_user: string }>`select current_user, session_user`.execute(ctx.db)
  t.equal(rows[0]!.current_user, 'crm_app', 'the app pool runs as crm_app')
  const id = await createCustomer('Still writable')
  const event = await ctx.db.selectFrom('audit_events').select(['id']).where('entity_id', '=', id).executeTakeFirstOrThrow()
  const denied = async (what: string, run: () => Promise<unknown>) => {
    await t.rejects(run(), { code: '42501' }, `${what} is refused`)
  }
  await denied('UPDATE audit_events', () => sql`update audit_events set actor = 'user:forger' where id = ${event.id}`.execute(ctx.db))
  await denied('DELETE audit_events', () => sql`delete from audit_events where id = ${event.id}`.execute(ctx.db))
  await denied('TRUNCATE audit_events', () => sql`truncate audit_events`.execute(ctx.db))
  await denied('a forged txid', () => sql`insert into audit_events (actor, action, entity, entity_id, txid) values ('x', 'insert', 'customers', ${id}, 1)`.execute(ctx.db))
  await denied('a forged time', () => sql`insert into audit_events (actor, action, entity, entity_id, occurred_at) values ('x', 'insert', 'customers', ${id}, now() - interval '1 year')`.execute(ctx.db))
  await denied('UPDATE audit_chain', () => sql`update audit_chain set hash = sha256('x'::bytea)`.execute(ctx.db))
  await denied('DELETE audit_chain', () => sql`delete from audit_chain`.execute(ctx.db))
  await denied('INSERT audit_chain', () => sql`insert into audit_chain (seq, audit_event_id, hash, seal_id) values (999999, ${id}, sha256('x'::bytea), 1)`.execute(ctx.db))
  await denied('DELETE audit_seals', () => sql`delete from audit_seals`.execute(ctx.db))
  await denied('disabling the audit trigger', () => sql`alter table customers disable trigger audit_update`.execute(ctx.db))
  await denied('a migration-table write', () => sql`delete from kysely_migration`.execute(ctx.db))

  const patch = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${id}`, headers: admin, payload: { job_title: 'Buyer' } })
  t.equal(patch.statusCode, 200, 'an API update still works')
  const del = await ctx.app.inject({ method: 'DELETE', url: `/v1/customers/${id}`, headers: admin })
  t.equal(del.statusCode, 204, 'an API archive still works')
  t.equal((await ctx.db.selectFrom('audit_events').select('id').where('entity_id', '=', id).execute()).length, 3, 'each change audited once')
  t.match(await verify(), { intact: true, unsealed_count: 0 })
})

t.test('a table a later migration creates gets the grants and the audit trail by default', async (t) => {
  await sql`create table test_future (id uuid primary key default crm_uuid_v7(), label text not null, position serial)`.execute(ctx.ownerDb)
  await sql`select crm_audit_attach('test_future'::regclass)`.execute(ctx.ownerDb)
  const { rows } = await sql<{ id: string }>`insert into test_future (label) values ('x') returning id`.execute(ctx.db)
  await sql`update test_future set label = 'y'`.execute(ctx.db)
  await sql`delete from test_future`.execute(ctx.db)
  const events = await ctx.db.selectFrom('audit_events').select('action').where('entity', '=', 'test_future').where('entity_id', '=', rows[0]!.id).orderBy('occurred_at').orderBy('id').execute()
  t.same(events.map((e) => e.action), ['insert', 'update', 'delete'])
  t.match(await verify(), { intact: true, unsealed_count: 0 })
})

t.test('the server seals on a schedule, with no verify call', async (t) => {
  const app = await buildApp({ db: ctx.db, ownsDb: false, auth: TEST_AUTH, auditSealIntervalMs: 20 })
  await app.ready()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Scheduled' } })
  t.equal(res.statusCode, 201)
  const id = (res.json() as { id: string }).id
  let entry
  for (let i = 0; i < 250 && !entry; i++) {
    await new Promise((r) => setTimeout(r, 20))
    entry = await chainEntryOf(id)
  }
  t.ok(entry, 'the write was sealed by the background timer')
})

t.test('the contract names the verify operation and its result schema', async (t) => {
  const doc = (await ctx.app.inject({ url: '/openapi.json' })).json()
  t.match(doc.paths['/v1/audit-events/verify'].get, { operationId: 'verifyAuditChain', tags: ['audit'] })
  t.match(doc.components.schemas.AuditChainVerification, {
    description: String, example: { intact: true },
    properties: { intact: { type: 'boolean' }, first_broken: { nullable: true }, head: { nullable: true } },
  })
})

t.test('incremental verification recomputes only what follows the last verified position; full recomputes the rest', async (t) => {
  await createCustomer()
  const first = await verify({ full: false })
  t.match(first, { intact: true })
  const verifiedHead = first.head!.seq
  await createCustomer()
  await createCustomer()
  const since = await verify({ full: false })
  t.match(since, { intact: true, verified_from: verifiedHead, head: { seq: verifiedHead + 2 } })

  // A change after the last verified position is found by the next incremental run.
  await createCustomer()
  await sealAuditTrail(ctx.db)
  const fresh = await ctx.ownerDb.selectFrom('audit_chain').select(['seq', 'audit_event_id']).orderBy('seq', 'desc').executeTakeFirstOrThrow()
  const freshRow = await ctx.ownerDb.selectFrom('audit_events').select('actor').where('id', '=', fresh.audit_event_id).executeTakeFirstOrThrow()
  await ctx.ownerDb.updateTable('audit_events').set({ actor: 'user:forger' }).where('id', '=', fresh.audit_event_id).execute()
  t.match(await verify({ full: false }), { intact: false, verified_from: since.head!.seq, first_broken: { seq: fresh.seq } })
  await ctx.ownerDb.updateTable('audit_events').set({ actor: freshRow.actor }).where('id', '=', fresh.audit_event_id).execute()
  const repaired = await verify({ full: false })
  t.match(repaired, { intact: true, verified_from: since.head!.seq }, 'a broken run records nothing: the next starts from the same position')

  // A change before it is not re-read incrementally; the full run finds it.
  const old = await ctx.ownerDb.selectFrom('audit_chain').select(['seq', 'audit_event_id']).where('seq', '=', verifiedHead).executeTakeFirstOrThrow()
  const oldRow = await ctx.ownerDb.selectFrom('audit_events').select('actor').where('id', '=', old.audit_event_id).executeTakeFirstOrThrow()
  await ctx.ownerDb.updateTable('audit_events').set({ actor: 'user:forger' }).where('id', '=', old.audit_event_id).execute()
  t.match(await verify({ full: false }), { intact: true, verified_from: repaired.head!.seq }, 'incremental: only the positions after the last verified one')
  t.match(await verify({ full: true }), { intact: false, verified_from: 0, first_broken: { seq: old.seq } }, 'full: every position')
  await ctx.ownerDb.updateTable('audit_events').set({ actor: oldRow.actor }).where('id', '=', old.audit_event_id).execute()

  // Rewriting the chain's hash at the verified position is caught without re-reading the chain.
  const anchor = await ctx.ownerDb.selectFrom('audit_verifications').select(['seq', 'hash']).orderBy('seq', 'desc').executeTakeFirstOrThrow()
  await sql`update audit_chain set hash = sha256('forged'::bytea) where seq = ${anchor.seq}`.execute(ctx.ownerDb)
  t.match(await verify({ full: false }), { intact: false, first_broken: { seq: anchor.seq, reason: 'the chain no longer holds the hash verified at this position' } })
  await sql`update audit_chain set hash = ${anchor.hash} where seq = ${anchor.seq}`.execute(ctx.ownerDb)
  t.match(await verify({ full: false }), { intact: true })
  await t.rejects(sql`insert into audit_verifications (seq, hash, full_scan) values (999999, sha256('x'::bytea), true)`.execute(ctx.db), { code: '42501' }, "the API's role cannot record a verified position itself")
})
