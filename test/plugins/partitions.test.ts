import t from 'tap'
import { sql } from 'kysely'
import { setup, buildTestApp } from '../helpers/app.js'
import { listPartitions, maintainPartitions } from '../../src/plugins/partitions.repository.js'
import { sealAuditTrail, verifyAuditChain } from '../../src/modules/audit/audit.repository.js'
import { encodePosition } from '../../src/modules/events/events.position.js'

/**
 * audit_events and events are partitioned by month of occurred_at (migration
 * 20261205T020000_partition_audit_and_events): rows land in their month's partition (a month
 * without one: the default partition), the partition-upkeep job creates partitions ahead once
 * across instances, the events purge drops an expired partition, and the audit chain verifies
 * across partitions and still catches tampering in an older one.
 */
const ctx = await setup()
const admin = await ctx.auth('admin pii:read')

const monthOf = (d: Date, plus = 0) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + plus, 1))
const partitionOf = (table: string, month: Date) => `${table}_y${month.getUTCFullYear()}m${String(month.getUTCMonth() + 1).padStart(2, '0')}`
const now = new Date()

/** Where each row of `table` whose `column` is `value` is stored. */
async function homes(table: 'audit_events' | 'events', column: string, value: string): Promise<string[]> {
  const { rows } = await sql<{ home: string }>`select tableoid::regclass::text as home from ${sql.table(table)} where ${sql.ref(column)} = ${value}`.execute(ctx.ownerDb)
  return rows.map((r) => r.home)
}

/** An audit row written by the owner at a chosen time (what a clock in another month writes); its events derive as usual. */
async function auditAt(occurredAt: Date, name: string): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    insert into audit_events (occurred_at, actor, action, entity, entity_id, after)
    values (${occurredAt.toISOString()}::timestamptz, 'user:test', 'insert', 'customers', crm_uuid_v7(), jsonb_build_object('name', ${name}::text, 'version', 1))
    returning id`.execute(ctx.ownerDb)
  return rows[0]!.id
}

t.test('a write lands in its month\'s partition; a month without one lands in the default partition, which upkeep empties', async (t) => {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Partitioned' } })
  t.equal(res.statusCode, 201)
  const id = res.json().id as string
  t.same(await homes('audit_events', 'entity_id', id), [partitionOf('audit_events', monthOf(now))], 'the audit row is in this month\'s partition')
  t.same(await homes('events', 'entity_id', id), [partitionOf('events', monthOf(now))], 'its event too')

  const far = new Date(Date.UTC(now.getUTCFullYear() + 2, 6, 15))
  const auditId = await auditAt(far, 'From the future')
  t.same(await homes('audit_events', 'id', auditId), ['audit_events_default'], 'no partition for that month yet: the default partition takes the row')
  t.same(await homes('events', 'audit_event_id', auditId), ['events_default'])
  t.equal(await maintainPartitions(ctx.db, 3), 2, 'upkeep gives that month a partition in each table')
  t.same(await homes('audit_events', 'id', auditId), [partitionOf('audit_events', monthOf(far))], 'and moves the row into it')
  t.same(await homes('events', 'audit_event_id', auditId), [partitionOf('events', monthOf(far))])
  const defaults = (await listPartitions(ctx.ownerDb)).filter((p) => p.partition.endsWith('_default'))
  t.same(defaults.map((p) => p.rows), [0, 0], 'the default partitions are empty again')
})

t.test('crm_app has no privilege on a partition: every write goes through the parent and its trigger', async (t) => {
  const part = partitionOf('audit_events', monthOf(now))
  for (const table of [part, partitionOf('events', monthOf(now)), 'audit_events_default', partitionOf('audit_events', monthOf(now, 3))]) {
    const { rows } = await sql<{ any: boolean }>`
      select has_table_privilege('crm_app', ${table}, 'SELECT') or has_table_privilege('crm_app', ${table}, 'INSERT')
          or has_table_privilege('crm_app', ${table}, 'UPDATE') or has_table_privilege('crm_app', ${table}, 'DELETE') as any`.execute(ctx.ownerDb)
    t.equal(rows[0]!.any, false, `${table}: none`)
  }
  await t.rejects(sql`insert into ${sql.table(part)} (actor, action, entity, entity_id) values ('x', 'insert', 'customers', crm_uuid_v7())`.execute(ctx.db), { code: '42501' })
  await t.rejects(sql`update audit_events set actor = 'x'`.execute(ctx.db), { code: '42501' })
  await t.rejects(sql`delete from audit_events`.execute(ctx.db), { code: '42501' })
  await t.rejects(sql`delete from events`.execute(ctx.db), { code: '42501' })
})

t.test('the upkeep job creates partitions ahead idempotently, once across three instances', async (t) => {
  const ahead = monthOf(now, 3)
  await sql`drop table ${sql.table(partitionOf('audit_events', ahead))}, ${sql.table(partitionOf('events', ahead))}`.execute(ctx.ownerDb)
  const INTERVAL = 150
  const apps = await Promise.all([0, 1, 2].map(() => buildTestApp(ctx.db, { app: { partitionUpkeepMs: INTERVAL } })))
  const began = Date.now()
  await Promise.all(apps.map((app) => app.ready()))
  await new Promise((r) => setTimeout(r, 1000))
  await Promise.all(apps.map((app) => app.close()))
  const elapsed = Date.now() - began
  const names = (await listPartitions(ctx.ownerDb)).map((p) => p.partition)
  t.ok(names.includes(partitionOf('audit_events', ahead)) && names.includes(partitionOf('events', ahead)), 'the partitions three months ahead exist again')
  const lease = await ctx.ownerDb.selectFrom('crm_job_leases').select(['runs', 'last_error']).where('name', '=', 'partition-upkeep').executeTakeFirstOrThrow()
  t.ok(Number(lease.runs) >= 1 && Number(lease.runs) <= Math.floor(elapsed / INTERVAL) + 1, `ran at most once per interval across the three (${lease.runs} runs in ${elapsed} ms)`)
  t.equal(lease.last_error, null, 'no run failed')
  t.equal(await maintainPartitions(ctx.db, 3), 0, 'another run creates nothing')
})

t.test('the audit chain verifies, incrementally and fully, across a partition boundary; tampering in an older partition fails the full verify', async (t) => {
  const last = monthOf(now, -1)
  await sql`select crm_partition_create('audit_events', ${last.toISOString().slice(0, 19)}::timestamp), crm_partition_create('events', ${last.toISOString().slice(0, 19)}::timestamp)`.execute(ctx.ownerDb)
  const older = await auditAt(new Date(last.getTime() + 86_400_000), 'Last month')
  await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'This month' } })
  t.same(await homes('audit_events', 'id', older), [partitionOf('audit_events', last)])
  await sealAuditTrail(ctx.db)
  t.match(await verifyAuditChain(ctx.db, { full: true }), { intact: true, verified_from: 0 }, 'full')
  await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Then more' } })
  await auditAt(new Date(last.getTime() + 2 * 86_400_000), 'Late for last month')
  await sealAuditTrail(ctx.db)
  const incremental = await verifyAuditChain(ctx.db)
  t.match(incremental, { intact: true }, 'incremental, over links in both partitions')
  t.ok(incremental.verified_from > 0, 'from the last verified position')

  await sql`update audit_events set actor = 'user:forger' where id = ${older}`.execute(ctx.ownerDb)
  t.match(await verifyAuditChain(ctx.db), { intact: true }, 'an incremental verify does not re-read what it verified before')
  const full = await verifyAuditChain(ctx.db, { full: true })
  t.match(full, { intact: false, broken_audit_event_id: older, reason: 'the audit event or its hash differs from what was sealed' }, 'the full verify finds the forged row in last month\'s partition')
  await sql`update audit_events set actor = 'user:test' where id = ${older}`.execute(ctx.ownerDb)
  t.match(await verifyAuditChain(ctx.db, { full: true }), { intact: true })
})

t.test('the events purge drops a partition that ended before the cutoff; the feed answers 410 for a position inside it', async (t) => {
  const old = monthOf(now, -2)
  await sql`select crm_partition_create('events', ${old.toISOString().slice(0, 19)}::timestamp), crm_partition_create('audit_events', ${old.toISOString().slice(0, 19)}::timestamp)`.execute(ctx.ownerDb)
  const oldAudit = await auditAt(new Date(old.getTime() + 86_400_000), 'Two months ago')
  const { rows: [inside] } = await sql<{ txid: string; seq: number }>`select txid::text as txid, seq from events where audit_event_id = ${oldAudit}`.execute(ctx.ownerDb)
  t.ok(inside, 'the old event is in the feed')
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: 'Kept' } })
  const kept = res.json().id as string
  const oldPartition = partitionOf('events', old)
  const oldRows = (await listPartitions(ctx.ownerDb)).find((p) => p.partition === oldPartition)!.rows
  t.ok(oldRows > 0)

  // The cutoff: the start of last month, so the partition two months back ended before it.
  const purged = await sql<{ n: number }>`select crm_events_purge(${monthOf(now, -1).toISOString()}::timestamptz, 50000) as n`.execute(ctx.db)
  t.ok(purged.rows[0]!.n >= oldRows, `the purge removed the partition's ${oldRows} events (and the feed's prefix before them: ${purged.rows[0]!.n} in all)`)
  t.notOk((await listPartitions(ctx.ownerDb)).some((p) => p.partition === oldPartition), 'the partition is gone')
  t.ok((await listPartitions(ctx.ownerDb)).some((p) => p.partition === partitionOf('audit_events', old)), 'the audit partition of that month stays')
  t.same(await homes('audit_events', 'id', oldAudit), [partitionOf('audit_events', old)], 'with its row')

  const gone = await ctx.app.inject({ url: `/v1/events?after=${encodePosition({ txid: inside!.txid, seq: Number(inside!.seq) - 1 })}`, headers: admin })
  t.equal(gone.statusCode, 410, 'a position inside the dropped partition has lost events')
  t.match(gone.json(), { code: 'position-expired' })
  const horizon = await ctx.ownerDb.selectFrom('events_horizon').select([sql<string>`txid::text`.as('txid'), 'seq']).executeTakeFirstOrThrow()
  const after = await ctx.app.inject({ url: `/v1/events?after=${encodePosition({ txid: horizon.txid, seq: Number(horizon.seq) })}&limit=200`, headers: admin })
  t.equal(after.statusCode, 200)
  t.ok((after.json().data as Array<{ entity_id: string }>).some((e) => e.entity_id === kept), 'the events after the horizon are served')
})
