import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

/**
 * The API's times have millisecond precision: a time read from the API, kept in a JavaScript
 * Date (a millisecond clock) and sent back as a filter bound finds the record it came from.
 */
const ctx = await setup()
const admin = await ctx.auth('admin pii:read orders:write orders:read interactions:write interactions:read audit:read')

const roundTrip = (time: string) => new Date(time).toISOString()
const plusMs = (time: string, ms: number) => new Date(new Date(time).getTime() + ms).toISOString()
const ids = (res: { json(): { data: Array<{ id: string }> } }) => res.json().data.map((r) => r.id)
const get = (url: string) => ctx.app.inject({ url, headers: admin })

async function created(url: string, payload: Record<string, unknown>) {
  const res = await ctx.app.inject({ method: 'POST', url, headers: admin, payload })
  t.equal(res.statusCode, 201, res.body)
  return res.json()
}

t.test('a customer\'s created_at survives a JS Date round trip and bounds the list around it', async (t) => {
  for (let i = 0; i < 5; i++) {
    const c = await created('/v1/customers', { name: `Round Trip ${i}` })
    const at = roundTrip(c.created_at)
    t.equal(at, c.created_at, 'the API answers what a millisecond clock keeps')
    t.ok(ids(await get(`/v1/customers?created_after=${at}&limit=200`)).includes(c.id), 'created_after its own time includes it')
    t.ok(ids(await get(`/v1/customers?created_after=${at}&created_before=${plusMs(at, 1)}`)).includes(c.id), 'the one-millisecond range around it holds it')
    t.notOk(ids(await get(`/v1/customers?created_before=${at}&limit=200`)).includes(c.id), 'created_before is exclusive')
    t.notOk(ids(await get(`/v1/customers?created_after=${plusMs(at, 1)}&limit=200`)).includes(c.id))

    const search = async (op: string) => ids(await ctx.app.inject({
      method: 'POST', url: '/v1/customers/search', headers: admin,
      payload: { filter: { and: [{ field: 'created_at', op, value: at }, { field: 'name', op: 'eq', value: `Round Trip ${i}` }] } },
    }))
    t.same(await search('lte'), [c.id], 'created_at lte its own time finds it')
    t.same(await search('gte'), [c.id], 'created_at gte its own time finds it')
    t.same(await search('gt'), [], 'and it is not after itself')
    t.same(await search('lt'), [], 'nor before itself')
  }
})

t.test('orders, interactions and audit events: the same round trip on their time filters', async (t) => {
  const c = await created('/v1/customers', { name: 'Times' })
  const o = await created('/v1/orders', { customer_id: c.id, currency: 'CNY', ordered_at: '2026-03-01T10:00:00.123456Z', items: [{ product_name: 'Tea', quantity: 1, unit_price: '1' }] })
  t.equal(o.ordered_at, '2026-03-01T10:00:00.123Z', 'a time sent with microseconds is stored at the millisecond')
  const i = await created('/v1/interactions', { customer_id: c.id, channel: 'phone', subject: 'Call' })
  const cases: Array<[string, string, string]> = [
    ['/v1/orders', 'ordered', roundTrip(o.ordered_at)],
    ['/v1/interactions', 'occurred', roundTrip(i.occurred_at)],
  ]
  for (const [url, name, at] of cases) {
    const within = await get(`${url}?customer_id=${c.id}&${name}_after=${at}&${name}_before=${plusMs(at, 1)}`)
    t.equal(within.statusCode, 200, within.body)
    t.equal(ids(within).length, 1, `${url}: the record in its millisecond`)
    t.same(ids(await get(`${url}?customer_id=${c.id}&${name}_before=${at}`)), [], `${url}: ${name}_before is exclusive`)
  }
  const events = (await get(`/v1/audit-events?entity=orders&entity_id=${o.id}`)).json().data as Array<{ id: string; occurred_at: string }>
  const at = roundTrip(events[0]!.occurred_at)
  t.equal(at, events[0]!.occurred_at)
  const audit = await get(`/v1/audit-events?entity=orders&entity_id=${o.id}&occurred_after=${at}&occurred_before=${plusMs(at, 1)}`)
  t.same(ids(audit), [events[0]!.id], 'the audit event in its millisecond')
})

t.test('the created_at bounds still use their index', async (t) => {
  await ctx.ownerDb.transaction().execute(async (trx) => {
    await sql`set local enable_seqscan = off`.execute(trx)
    const plan = await sql<{ 'QUERY PLAN': string }>`
      explain select id from customers where archived_at is null
        and created_at >= ${'2026-01-01T00:00:00.123Z'}::timestamptz and created_at < ${'2026-01-01T00:00:00.124Z'}::timestamptz
      order by created_at, id limit 51`.execute(trx)
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n')
    t.match(text, /customers_created_idx/, text)
    t.match(text, /Index Cond: \(\(created_at >= /, text)
  })
})
