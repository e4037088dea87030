import t, { type Test } from 'tap'
import { setup } from '../../helpers/app.js'

/**
 * customer_metrics (open_complaints, latest_csat, latest_nps) must equal, after every kind of
 * feedback mutation, a recomputation from the raw feedback rows done here in the test.
 */
const ctx = await setup()
const writer = await ctx.auth('feedback:write feedback:read customers:read financial:read')

const customers: string[] = []
for (let i = 0; i < 3; i++) {
  customers.push((await ctx.db.insertInto('customers').values({ name: `Metrics ${i}` } as never).returning('id').executeTakeFirstOrThrow()).id)
}
const [a, b, c] = customers as [string, string, string]

interface Metrics { open_complaints: number; latest_csat: number | null; latest_nps: number | null }

/** The metrics as the definition states them, from the raw rows. */
async function recomputed(customerId: string): Promise<Metrics> {
  const rows = await ctx.db.selectFrom('feedback').selectAll().where('customer_id', '=', customerId).where('archived_at', 'is', null).execute()
  const latest = (type: string) => {
    const surveys = rows.filter((r) => r.survey_type === type)
      .sort((x, y) => y.submitted_at.localeCompare(x.submitted_at) || y.id.localeCompare(x.id))
    return surveys[0]?.score ?? null
  }
  return {
    open_complaints: rows.filter((r) => r.kind === 'complaint' && (r.status === 'open' || r.status === 'in_progress')).length,
    latest_csat: latest('csat'),
    latest_nps: latest('nps'),
  }
}

async function stored(customerId: string): Promise<Metrics> {
  const row = await ctx.db.selectFrom('customer_metrics').select(['open_complaints', 'latest_csat', 'latest_nps']).where('customer_id', '=', customerId).executeTakeFirst()
  return row ?? { open_complaints: 0, latest_csat: null, latest_nps: null }
}

/** Checks every customer after a step, and that the step's expectation for one of them holds. */
async function check(t: Test, step: string, customerId: string, want: Metrics) {
  for (const id of customers) t.same(await stored(id), await recomputed(id), `${step}: metrics of ${id === customerId ? 'the customer' : 'another customer'} match the raw rows`)
  t.same(await stored(customerId), want, `${step}: ${JSON.stringify(want)}`)
}

async function send(method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: Record<string, unknown>) {
  const res = await ctx.app.inject({ method, url, headers: writer, ...(payload ? { payload } : {}) })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.body}`)
  return method === 'DELETE' ? undefined : (res.json() as { id: string })
}
const create = (body: Record<string, unknown>) => send('POST', '/v1/feedback', body) as Promise<{ id: string }>
const patch = (id: string, body: Record<string, unknown>) => send('PATCH', `/v1/feedback/${id}`, body)
const archive = (id: string) => send('DELETE', `/v1/feedback/${id}`)

t.test('metrics follow creates, transitions, score and date changes, upserts and archives', async (t) => {
  await check(t, 'no feedback', a, { open_complaints: 0, latest_csat: null, latest_nps: null })

  const csat1 = await create({ customer_id: a, kind: 'survey', survey_type: 'csat', score: 3, submitted_at: '2026-05-01T10:00:00Z' })
  await check(t, 'first CSAT', a, { open_complaints: 0, latest_csat: 3, latest_nps: null })
  await create({ customer_id: a, kind: 'survey', survey_type: 'csat', score: 1, submitted_at: '2026-04-01T10:00:00Z' })
  await check(t, 'an older CSAT recorded later is not the latest', a, { open_complaints: 0, latest_csat: 3, latest_nps: null })
  const csat2 = await create({ customer_id: a, kind: 'survey', survey_type: 'csat', score: 5, submitted_at: '2026-05-02T10:00:00Z' })
  await check(t, 'a newer CSAT', a, { open_complaints: 0, latest_csat: 5, latest_nps: null })
  const nps = await create({ customer_id: a, kind: 'survey', survey_type: 'nps', score: 0, submitted_at: '2026-05-03T10:00:00Z' })
  await check(t, 'NPS 0 is a score, not null', a, { open_complaints: 0, latest_csat: 5, latest_nps: 0 })
  const tie = await create({ customer_id: a, kind: 'survey', survey_type: 'nps', score: 10, submitted_at: '2026-05-03T10:00:00Z' })
  await check(t, 'a tie on submitted_at goes to the later id', a, { open_complaints: 0, latest_csat: 5, latest_nps: 10 })
  await create({ customer_id: b, kind: 'survey', survey_type: 'nps', score: 6 })
  await check(t, 'another customer\'s survey', a, { open_complaints: 0, latest_csat: 5, latest_nps: 10 })
  await create({ customer_id: a, kind: 'review', score: 1 })
  await check(t, 'a review score is neither CSAT nor NPS', a, { open_complaints: 0, latest_csat: 5, latest_nps: 10 })

  const open = await create({ customer_id: a, kind: 'complaint' })
  await check(t, 'an open complaint', a, { open_complaints: 1, latest_csat: 5, latest_nps: 10 })
  const working = await create({ customer_id: a, kind: 'complaint', status: 'in_progress' })
  await check(t, 'in_progress counts as open', a, { open_complaints: 2, latest_csat: 5, latest_nps: 10 })
  await create({ customer_id: a, kind: 'complaint', status: 'closed', resolution_note: 'old' })
  await check(t, 'a closed complaint does not count', a, { open_complaints: 2, latest_csat: 5, latest_nps: 10 })
  await patch(open.id, { status: 'in_progress' })
  await check(t, 'open → in_progress', a, { open_complaints: 2, latest_csat: 5, latest_nps: 10 })
  await patch(open.id, { status: 'resolved', resolution_note: 'refunded' })
  await check(t, 'resolved', a, { open_complaints: 1, latest_csat: 5, latest_nps: 10 })
  await patch(open.id, { status: 'closed' })
  await check(t, 'closed', a, { open_complaints: 1, latest_csat: 5, latest_nps: 10 })
  await patch(open.id, { status: 'open' })
  await check(t, 'reopened', a, { open_complaints: 2, latest_csat: 5, latest_nps: 10 })
  await patch(working.id, { status: 'open' })
  await check(t, 'in_progress → open', a, { open_complaints: 2, latest_csat: 5, latest_nps: 10 })
  const refused = await ctx.app.inject({ method: 'PATCH', url: `/v1/feedback/${working.id}`, headers: writer, payload: { status: 'closed' } })
  t.equal(refused.statusCode, 422)
  await check(t, 'an illegal transition', a, { open_complaints: 2, latest_csat: 5, latest_nps: 10 })

  await patch(csat2.id, { score: 2 })
  await check(t, 'the latest CSAT rescored', a, { open_complaints: 2, latest_csat: 2, latest_nps: 10 })
  await patch(csat1.id, { submitted_at: '2026-06-01T10:00:00Z' })
  await check(t, 'an older CSAT moved later becomes the latest', a, { open_complaints: 2, latest_csat: 3, latest_nps: 10 })
  await archive(csat1.id)
  await check(t, 'archiving the latest CSAT falls back to the previous one', a, { open_complaints: 2, latest_csat: 2, latest_nps: 10 })
  await archive(tie.id)
  await archive(nps.id)
  await check(t, 'no NPS left', a, { open_complaints: 2, latest_csat: 2, latest_nps: null })
  await archive(open.id)
  await check(t, 'an archived open complaint does not count', a, { open_complaints: 1, latest_csat: 2, latest_nps: null })

  const synced = await create({ external_ref: 'crm-sync-1', customer_id: a, kind: 'survey', survey_type: 'csat', score: 4, submitted_at: '2026-07-01T00:00:00Z' })
  await check(t, 'a synced CSAT', a, { open_complaints: 1, latest_csat: 4, latest_nps: null })
  const again = await create({ external_ref: 'crm-sync-1', customer_id: a, kind: 'survey', survey_type: 'csat', score: 1 })
  t.equal(again.id, synced.id)
  await check(t, 'the same external_ref re-synced with a new score', a, { open_complaints: 1, latest_csat: 1, latest_nps: null })

  await create({ customer_id: c, kind: 'complaint', priority: 'urgent' })
  await create({ customer_id: c, kind: 'complaint', status: 'resolved', resolution_note: 'x' })
  await check(t, 'a third customer', c, { open_complaints: 1, latest_csat: null, latest_nps: null })
})

t.test('the metrics show on the customer (include=metrics)', async (t) => {
  const res = await ctx.app.inject({ url: `/v1/customers/${a}?include=metrics`, headers: writer })
  t.equal(res.statusCode, 200, res.body)
  t.match(res.json().metrics, await recomputed(a))
})
