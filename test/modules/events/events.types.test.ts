import t from 'tap'
import { sql } from 'kysely'
import { createTestDatabase } from '../../helpers/db.js'

/**
 * crm_event_types(table, action, before, after): the whole naming table of the domain events
 * (migration 20261204T211000_events), including the transitions the route tests do not reach.
 */
const database = await createTestDatabase()
t.teardown(() => database.drop())

type Snapshot = Record<string, unknown> | null
const CASES: Array<[string, 'insert' | 'update' | 'delete', Snapshot, Snapshot, string[]]> = [
  ['customers', 'insert', null, { archived_at: null }, ['customer.created']],
  ['customers', 'update', { name: 'a', archived_at: null }, { name: 'b', archived_at: null }, ['customer.updated']],
  ['customers', 'update', { archived_at: null }, { archived_at: '2026-12-04T10:00:00.000Z' }, ['customer.archived']],
  ['customers', 'update', { archived_at: null, merged_into_id: null }, { archived_at: '2026-12-04T10:00:00.000Z', merged_into_id: 'x' }, ['customer.merged']],
  ['customers', 'update', { archived_at: '2026-12-04T10:00:00.000Z' }, { archived_at: null }, ['customer.restored']],
  ['customers', 'delete', { archived_at: null }, null, ['customer.deleted']],
  ['contact_points', 'insert', null, { kind: 'email' }, ['contact_point.created']],
  ['contact_points', 'update', { verified: false }, { verified: true }, ['contact_point.updated']],
  ['contact_points', 'delete', { kind: 'email' }, null, ['contact_point.deleted']],
  ['orders', 'insert', null, { status: 'pending', amount_refunded: '0.00' }, ['order.created']],
  ['orders', 'insert', null, { status: 'paid', amount_refunded: '0.00' }, ['order.created', 'order.paid']],
  ['orders', 'update', { status: 'pending', amount_refunded: '0.00' }, { status: 'paid', amount_refunded: '0.00' }, ['order.paid']],
  ['orders', 'update', { status: 'paid', amount_refunded: '0.00' }, { status: 'fulfilled', amount_refunded: '0.00' }, ['order.fulfilled']],
  ['orders', 'update', { status: 'paid', amount_refunded: '0.00' }, { status: 'partially_refunded', amount_refunded: '1.00' }, ['order.refunded']],
  ['orders', 'update', { status: 'partially_refunded', amount_refunded: '1.00' }, { status: 'partially_refunded', amount_refunded: '2.00' }, ['order.refunded']],
  ['orders', 'update', { status: 'pending', amount_refunded: '0' }, { status: 'cancelled', amount_refunded: '0' }, ['order.cancelled']],
  ['orders', 'update', { status: 'paid', notes: null, amount_refunded: '0' }, { status: 'paid', notes: 'x', amount_refunded: '0' }, ['order.updated']],
  ['orders', 'update', { status: 'paid', archived_at: null }, { status: 'paid', archived_at: '2026-12-04T10:00:00.000Z' }, ['order.archived']],
  ['order_items', 'insert', null, { quantity: 1 }, []],
  ['order_payments', 'insert', null, { amount: '1.00' }, []],
  ['interactions', 'update', { archived_at: '2026-12-04T10:00:00.000Z' }, { archived_at: null }, ['interaction.restored']],
  ['feedback', 'insert', null, { kind: 'survey', status: null }, ['feedback.created']],
  ['feedback', 'insert', null, { kind: 'complaint', status: 'open' }, ['feedback.created', 'feedback.complaint_opened']],
  ['feedback', 'update', { status: 'open' }, { status: 'in_progress' }, ['feedback.updated']],
  ['feedback', 'update', { status: 'in_progress' }, { status: 'resolved' }, ['feedback.complaint_resolved']],
  ['feedback', 'update', { status: 'resolved' }, { status: 'closed' }, ['feedback.updated']],
  ['feedback', 'update', { status: 'open' }, { status: 'closed' }, ['feedback.complaint_closed']],
  ['feedback', 'update', { status: 'resolved' }, { status: 'open' }, ['feedback.complaint_reopened']],
  ['feedback', 'update', { status: 'open', archived_at: null }, { status: 'open', archived_at: '2026-12-04T10:00:00.000Z' }, ['feedback.archived']],
  ['segments', 'update', { name: 'a', archived_at: null }, { name: 'b', archived_at: null }, ['segment.updated']],
  ['segment_members', 'insert', null, { customer_id: 'x' }, []],
  ['segment_snapshots', 'insert', null, { customer_id: 'x' }, []],
  ['segment_membership_events', 'insert', null, { event: 'entered' }, ['segment.member_entered']],
  ['segment_membership_events', 'insert', null, { event: 'left' }, ['segment.member_left']],
  ['imports', 'update', { status: 'merging' }, { status: 'succeeded' }, ['import.succeeded']],
  ['imports', 'update', { status: 'receiving' }, { status: 'failed' }, ['import.failed']],
  ['imports', 'update', { rows_received: 1 }, { rows_received: 2 }, ['import.updated']],
  ['loyalty_cards', 'insert', null, { points: 1 }, ['loyalty_card.created']],
]

t.test('each change is named as the table of event types says', async (t) => {
  for (const [table, action, before, after, expected] of CASES) {
    const { rows } = await sql<{ types: string[] }>`
      select crm_event_types(${table}, ${action}, ${before === null ? null : JSON.stringify(before)}::jsonb,
                             ${after === null ? null : JSON.stringify(after)}::jsonb) as types`.execute(database.db)
    t.same(rows[0]!.types, expected, `${table} ${action} ${JSON.stringify(before)} → ${JSON.stringify(after)}`)
  }
})

t.test('the changes an event carries: an insert\'s row, an update\'s changed fields, never the version', async (t) => {
  const changes = async (table: string, action: string, before: Snapshot, after: Snapshot) =>
    (await sql<{ c: Record<string, unknown> }>`select crm_event_changes(${table}, ${action}, ${before === null ? null : JSON.stringify(before)}::jsonb,
      ${after === null ? null : JSON.stringify(after)}::jsonb) as c`.execute(database.db)).rows[0]!.c
  t.same(await changes('customers', 'insert', null, { name: 'a', version: 1, tags: [] }), { name: 'a', tags: [] })
  t.same(await changes('customers', 'update', { name: 'a', job_title: null, version: 1 }, { name: 'a', job_title: 'b', version: 2 }), { job_title: 'b' })
  t.same(await changes('customers', 'update', { attributes: { a: 1 } }, { attributes: { a: 2 } }), { attributes: { a: 2 } })
  t.same(await changes('customers', 'delete', { name: 'a' }, null), {})
  t.same(await changes('segment_membership_events', 'insert', null, { id: 'e', segment_id: 's', customer_id: 'c', event: 'entered', occurred_at: 'T', version: 1 }),
    { customer_id: 'c', occurred_at: 'T' })
})
