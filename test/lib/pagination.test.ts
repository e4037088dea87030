import t from 'tap'
import { CURSOR_VALUE, decodeCursor, parseSort, type SortKey } from '../../src/lib/pagination.js'
import { setup } from '../helpers/app.js'

const cursorOf = (s: string, v: unknown[], x?: Record<string, unknown>) => Buffer.from(JSON.stringify({ s, v, ...(x ? { x } : {}) })).toString('base64url')
const ID = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'
const TS = '2026-03-01T09:00:00.000000Z'

/** PostgreSQL reads these as timestamps or dates, so a cursor carrying one silently paged from an odd place. */
const POSTGRES_SPECIALS = ['yesterday', 'today', 'tomorrow', 'now', 'infinity', '-infinity', 'epoch', 'allballs']

t.test('each sort type accepts what the API issues and refuses forged values', async (t) => {
  const accepts: Record<string, unknown[]> = {
    timestamp: [TS, '2026-03-01T09:00:00Z', '2026-03-01T17:00:00+08:00', '0001-01-01T00:00:00Z', '2024-02-29T23:59:59.999999Z'],
    date: ['2026-03-01', '2024-02-29'],
    uuid: [ID, ID.toUpperCase()],
    integer: [0, 15, -3],
    decimal: ['129.90', '-0.5', '12'],
    text: ['Zhang Wei', '', 'yesterday', '42'],
  }
  const refuses: Record<string, unknown[]> = {
    timestamp: [...POSTGRES_SPECIALS, '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '0000-01-01T00:00:00Z', '2026-03-01 09:00:00',
      '2026-03-01T24:00:00Z', '2026-03-01T09:00:00+16:00', '2026-03-01', 1772355600000, null, ['x'], { a: 1 }],
    date: [...POSTGRES_SPECIALS, '2026-02-30', '2026-3-1', TS, 20260301, null],
    uuid: ['not-a-uuid', `${ID}0`, 42, null],
    integer: ['5', 1.5, 2 ** 60, 'NaN', null],
    decimal: ['NaN', 'Infinity', '-infinity', '1e5', '1.2.3', 12, null],
    text: [5, null, 'a\u0000b', true],
  }
  for (const [type, values] of Object.entries(accepts)) {
    for (const v of values) t.ok(CURSOR_VALUE[type as keyof typeof CURSOR_VALUE](v), `${type} accepts ${JSON.stringify(v)}`)
  }
  for (const [type, values] of Object.entries(refuses)) {
    for (const v of values) t.notOk(CURSOR_VALUE[type as keyof typeof CURSOR_VALUE](v), `${type} refuses ${JSON.stringify(v)}`)
  }
})

t.test('decodeCursor checks every value, the id included, against its declared type', async (t) => {
  const keys = parseSort('-created_at,name', { created_at: 'timestamp', name: 'text' }, '-created_at')
  t.same(decodeCursor(cursorOf('-created_at,name', [TS, 'Li', ID]), keys), [TS, 'Li', ID])
  for (const v of [['infinity', 'Li', ID], [TS, 7, ID], [TS, 'Li', 'yesterday'], [TS, 'Li']]) {
    t.throws(() => decodeCursor(cursorOf('-created_at,name', v), keys), { status: 400, errors: [{ pointer: '/cursor' }] }, JSON.stringify(v))
  }
  const integerId: SortKey[] = [{ field: 'seq', desc: false, type: 'integer' }]
  t.same(decodeCursor(cursorOf('seq', [3, 4]), integerId, { id: 'integer' }), [3, 4])
  t.throws(() => decodeCursor(cursorOf('seq', [3, ID]), integerId, { id: 'integer' }), { status: 400, errors: [{ pointer: '/cursor' }] }, 'a uuid where the id is an integer')
})

// Every list of the API, with a forged cursor in each position of its key: each answers 400 on /cursor.

const ctx = await setup()
const headers = await ctx.auth('admin customers:read orders:read interactions:read feedback:read segments:read audit:read analytics:read')
const customer = (await ctx.db.insertInto('customers').values({ name: 'Cursor' } as never).returning('id').executeTakeFirstOrThrow()).id
const segment = (await ctx.db.insertInto('segments').values({ name: 'Cursor', kind: 'static' } as never).returning('id').executeTakeFirstOrThrow()).id

interface List {
  name: string
  /** Signature and one valid value per key, then the id. */
  sort: string
  valid: unknown[]
  forged: unknown[][]
  request(cursor: string): { method: 'GET' | 'POST'; url: string; payload?: Record<string, unknown> }
}

const timestampForgeries = (rest: unknown[]) => [...POSTGRES_SPECIALS.map((v) => [v, ...rest]), [1772355600, ...rest], ['2026-02-30T00:00:00Z', ...rest]]
const idForgeries = (keys: unknown[]) => [[...keys, 'yesterday'], [...keys, 12345]]
const get = (path: string, sort?: string, extra = '') => (cursor: string) => ({
  method: 'GET' as const, url: `${path}?cursor=${cursor}${sort ? `&sort=${sort}` : ''}${extra}`,
})
/** A list sorted by a timestamp; `fixed` lists have one order and no sort parameter. */
const timeList = (name: string, path: string, sort: string, opts: { fixed?: boolean; extra?: string } = {}) => ({
  name, sort, valid: [TS, ID], forged: [...timestampForgeries([ID]), ...idForgeries([TS])], request: get(path, opts.fixed ? undefined : sort, opts.extra),
})

const lists: List[] = [
  timeList('listCustomers', '/v1/customers', '-created_at'),
  timeList('listCustomers q', '/v1/customers', '-created_at', { extra: '&q=zhang' }),
  { name: 'listCustomers by name', sort: 'name', valid: ['Li', ID], forged: [[5, ID], ['a\u0000', ID], ...idForgeries(['Li'])], request: get('/v1/customers', 'name') },
  timeList('searchCustomers', '', '-created_at'),
  timeList('listOrders', '/v1/orders', '-ordered_at'),
  { name: 'listOrders by total', sort: '-total', valid: ['10.00', ID], forged: [['NaN', ID], ['Infinity', ID], [10, ID], ...idForgeries(['10.00'])], request: get('/v1/orders', '-total') },
  timeList('listCustomerOrders', `/v1/customers/${customer}/orders`, '-ordered_at'),
  timeList('listInteractions', '/v1/interactions', '-occurred_at'),
  {
    name: 'listInteractions follow-up list', sort: 'follow_up_on', valid: ['2026-03-01', ID],
    forged: [...POSTGRES_SPECIALS.map((v) => [v, ID]), ['2026-02-30', ID], [TS, ID], ...idForgeries(['2026-03-01'])],
    request: get('/v1/interactions', 'follow_up_on', '&follow_up_due=true'),
  },
  timeList('listCustomerInteractions', `/v1/customers/${customer}/interactions`, '-occurred_at'),
  timeList('listFeedback', '/v1/feedback', '-submitted_at'),
  timeList('listCustomerFeedback', `/v1/customers/${customer}/feedback`, '-submitted_at'),
  timeList('listSegments', '/v1/segments', '-created_at'),
  { name: 'listSegments by name', sort: 'name', valid: ['A', ID], forged: [[1, ID], ...idForgeries(['A'])], request: get('/v1/segments', 'name') },
  timeList('listSegmentMembers', `/v1/segments/${segment}/members`, '-created_at'),
  timeList('listSegmentHistory', `/v1/segments/${segment}/history`, '-occurred_at', { fixed: true }),
  timeList('listAuditEvents', '/v1/audit-events', '-occurred_at'),
  timeList('listImports', '/v1/imports', '-created_at', { fixed: true }),
  timeList('getCustomerTimeline', `/v1/customers/${customer}/timeline`, '-occurred_at', { fixed: true }),
  {
    name: 'rfm customers', sort: '-rfm_score', valid: [15, ID], forged: [['15', ID], [1.5, ID], ['infinity', ID], ...idForgeries([15])],
    request: get('/v1/analytics/rfm/customers'),
  },
  {
    name: 'value-tier customers', sort: '-historical_clv', valid: ['10.00', ID], forged: [['NaN', ID], [10, ID], ...idForgeries(['10.00'])],
    request: get('/v1/analytics/value-tiers/customers'),
  },
  {
    name: 'churn risk', sort: '-risk_ratio', valid: ['1.5', ID], forged: [['Infinity', ID], [1.5, ID], ...idForgeries(['1.5'])],
    request: get('/v1/analytics/churn-risk'),
  },
]
const search = lists.find((l) => l.name === 'searchCustomers')!
search.request = (cursor) => ({ method: 'POST', url: '/v1/customers/search', payload: { sort: '-created_at', cursor } })

t.test('every list answers a forged cursor value with 400 on /cursor', async (t) => {
  for (const list of lists) {
    for (const values of list.forged) {
      const res = await ctx.app.inject({ ...list.request(cursorOf(list.sort, values)), headers })
      t.equal(res.statusCode, 400, `${list.name} ${JSON.stringify(values)}: ${res.body.slice(0, 200)}`)
      t.same(res.json().errors?.map((e: { pointer: string }) => e.pointer), ['/cursor'], list.name)
    }
  }
})

t.test('the same lists accept a well-formed cursor of theirs (the forgery is what fails)', async (t) => {
  // Analytics cursors also carry the context they were issued with (the analytics tests page through them).
  for (const list of lists) {
    if (['rfm customers', 'value-tier customers', 'churn risk'].includes(list.name)) continue
    const res = await ctx.app.inject({ ...list.request(cursorOf(list.sort, list.valid)), headers })
    t.equal(res.statusCode, 200, `${list.name}: ${res.body.slice(0, 200)}`)
  }
})
