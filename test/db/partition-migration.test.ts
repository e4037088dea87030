import t from 'tap'
import { createEmptyDatabase } from '../helpers/db.js'
import { convertSeeded } from '../../bench/partition-conversion.js'

// Migration 20261205T020000_partition_audit_and_events converts a database with history: every
// audit row and event is kept (events at their positions), each lands in its month's partition,
// and the audit chain sealed before the conversion verifies after it, with the rows sealed after.
// bench/partition-conversion.ts measures the same at 100k audit rows.
const database = await createEmptyDatabase()
t.teardown(() => database.drop())

t.test('the conversion keeps every row, every position and the chain', async (t) => {
  const f = await convertSeeded(database.url, 2000)
  t.equal(f.after.audit, f.before.audit, `all ${f.before.audit} audit rows`)
  t.equal(f.after.events, f.before.events, `all ${f.before.events} events`)
  t.equal(f.after.positions, f.before.positions, 'every event at its position')
  t.equal(f.after.ids, f.before.ids, 'the same audit rows')
  t.ok(f.intactBefore, 'the chain verified before')
  t.ok(f.intactAfter, 'and verifies in full after, with the tail sealed after the conversion')
  const audit = f.partitions.filter((p) => p.table === 'audit_events' && p.rows > 0)
  t.ok(audit.length >= 3, `the history is spread over its months (${audit.map((p) => p.partition).join(', ')})`)
  t.notOk(f.partitions.some((p) => p.partition.endsWith('_default') && p.rows > 0), 'nothing in the default partitions')
  t.comment(`converted ${f.auditRows} audit rows and ${f.eventRows} events in ${(f.convertMs / 1000).toFixed(2)} s`)
})
