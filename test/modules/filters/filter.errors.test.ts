import t from 'tap'
import { setup } from '../../helpers/app.js'

/** Malformed, too deep and too large filters answer 400 with pointers to the bad node, never 500. */
const ctx = await setup()
const reader = await ctx.auth('customers:read financial:read')
const segWriter = await ctx.auth('segments:write segments:read financial:read')

const leaf = { field: 'order_count', op: 'gte', value: 1 }
const nest = (depth: number): unknown => (depth <= 1 ? leaf : { not: nest(depth - 1) })

async function search(filter: unknown, extra: Record<string, unknown> = {}) {
  return ctx.app.inject({ method: 'POST', url: '/v1/customers/search', headers: reader, payload: { filter, ...extra } })
}
const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer)

t.test('a valid filter is accepted at the limits', async (t) => {
  t.equal((await search(nest(8))).statusCode, 200, '8 levels')
  t.equal((await search({ or: Array.from({ length: 99 }, () => leaf) })).statusCode, 200, '100 nodes')
  t.equal((await search({ field: 'tags', op: 'has_any', value: Array.from({ length: 500 }, (_, i) => `t${i}`) })).statusCode, 200, '500 values')
  t.equal((await search({ field: 'name', op: 'contains', value: 'x'.repeat(200) })).statusCode, 200, '200 characters')
})

const cases: Array<[string, unknown, string[]]> = [
  ['too deep', nest(9), ['/filter/not/not/not/not/not/not/not/not']],
  ['too many nodes', { or: Array.from({ length: 100 }, () => leaf) }, ['/filter/or/99']],
  ['unknown field', { and: [leaf, leaf, { field: 'password', op: 'eq', value: 'x' }] }, ['/filter/and/2/field']],
  ['operator the field does not take', { field: 'created_at', op: 'contains', value: 'x' }, ['/filter/op']],
  ['unknown operator', { field: 'name', op: 'like', value: 'x' }, ['/filter/op']],
  ['wrong value type', { and: [leaf, leaf, { field: 'order_count', op: 'gt', value: 'many' }] }, ['/filter/and/2/value']],
  ['enum value', { field: 'lifecycle_stage', op: 'in', value: ['loyal', 'royal'] }, ['/filter/value/1']],
  ['bad attribute key', { field: 'attributes.Bad-Key', op: 'exists' }, ['/filter/field']],
  ['bad relative date', { orders: { since: { last_n_days: -1 } } }, ['/filter/orders/since']],
  ['bad date', { field: 'created_at', op: 'gt', value: '2026-13-45' }, ['/filter/value']],
  ['bad status', { orders: { status: ['paid', 'stolen'] } }, ['/filter/orders/status/1']],
  ['max below min', { orders: { min_count: 3, max_count: 1 } }, ['/filter/orders/max_count']],
  ['empty and', { and: [] }, ['/filter/and']],
  ['not an object', { not: 42 }, ['/filter/not']],
  ['two kinds in one node', { and: [leaf], or: [leaf] }, ['/filter/or']],
  ['unknown property on a condition', { field: 'name', op: 'eq', value: 'x', extra: 1 }, ['/filter/extra']],
  ['string too long', { field: 'name', op: 'eq', value: 'x'.repeat(201) }, ['/filter/value']],
  ['too many values', { field: 'tags', op: 'has_any', value: Array.from({ length: 501 }, (_, i) => `t${i}`) }, ['/filter/value']],
  ['currency on a non-money field', { field: 'order_count', op: 'gt', value: 1, currency: 'CNY' }, ['/filter/currency']],
  ['money as a float string', { field: 'lifetime_value', op: 'gt', value: '1e9' }, ['/filter/value']],
]

for (const [name, filter, expected] of cases) {
  t.test(`400 for ${name}`, async (t) => {
    const res = await search(filter)
    t.equal(res.statusCode, 400, res.body)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.same(pointers(res), expected)
  })
}

t.test('errors outside the filter are reported with the filter\'s own', async (t) => {
  const res = await search({ field: 'nope', op: 'eq', value: 1 }, { limit: 0 })
  t.equal(res.statusCode, 400)
  t.same(pointers(res).sort(), ['/filter/field', '/limit'])
  const sort = await search(leaf, { sort: 'password' })
  t.equal(sort.statusCode, 400)
  t.same(pointers(sort), ['/sort'])
})

t.test('the same checks guard segments', async (t) => {
  const bad = await ctx.app.inject({ method: 'POST', url: '/v1/segments', headers: segWriter, payload: { name: 'x', kind: 'dynamic', filter: { and: [leaf, { field: 'x', op: 'eq' }] } } })
  t.equal(bad.statusCode, 400)
  t.same(pointers(bad), ['/filter/and/1/field'])
  const preview = await ctx.app.inject({ method: 'POST', url: '/v1/segments/preview', headers: segWriter, payload: { filter: nest(12) } })
  t.equal(preview.statusCode, 400)
  t.ok(pointers(preview)[0]!.startsWith('/filter/not'))
  const missing = await ctx.app.inject({ method: 'POST', url: '/v1/segments/preview', headers: segWriter, payload: {} })
  t.equal(missing.statusCode, 400)
  t.same(pointers(missing), ['/filter'])
})

t.test('random junk never yields a 500', async (t) => {
  const junk: unknown[] = [null, 1, 'x', [], [leaf], { field: null }, { and: null }, { and: [null] }, { not: [] }, { orders: null }, { orders: [] },
    { interactions: { channel: 'phone' } }, { feedback: { open: 'yes' } }, { field: 'attributes.a', op: 'gt', value: 'x' }, { field: '__proto__', op: 'eq', value: 1 },
    { field: 'constructor', op: 'eq', value: 1 }, { field: 'name', op: 'in', value: [] }, { field: 'tags', op: 'has_all', value: [''] },
    { field: 'created_at', op: 'gte', value: { last_n_days: 1, extra: 2 } }, { field: 'monetary', op: 'gt', value: 1, last_n_days: 0 }]
  for (const filter of junk) {
    const res = await search(filter)
    t.equal(res.statusCode, 400, JSON.stringify(filter))
  }
})

t.test('the contract carries the filter language, recursive through CustomerFilter', async (t) => {
  const doc = (await ctx.app.inject({ url: '/openapi.json' })).json()
  const s = doc.components.schemas
  t.same(s.CustomerFilter.anyOf.map((x: { $ref: string }) => x.$ref.split('/').pop()),
    ['FilterAnd', 'FilterOr', 'FilterNot', 'FilterCondition', 'FilterOrders', 'FilterInteractions', 'FilterFeedback'])
  t.equal(s.FilterAnd.properties.and.items.$ref, '#/components/schemas/CustomerFilter')
  t.equal(s.FilterNot.properties.not.$ref, '#/components/schemas/CustomerFilter')
  for (const name of ['CustomerFilter', 'FilterCondition', 'FilterOrders', 'CustomerSearch', 'Segment', 'SegmentPreview']) {
    t.ok(s[name].description && s[name].example, `${name} has a description and an example`)
  }
  t.match(doc.paths['/v1/customers/search'].post, { operationId: 'searchCustomers', tags: ['customers'] })
  t.equal(doc.paths['/v1/customers/search'].post.requestBody.content['application/json'].schema.$ref, '#/components/schemas/CustomerSearch')
  t.equal(s.CustomerSearch.properties.filter.$ref, '#/components/schemas/CustomerFilter')
  for (const [path, method, id] of [
    ['/v1/segments', 'post', 'createSegment'], ['/v1/segments', 'get', 'listSegments'], ['/v1/segments/{id}', 'patch', 'updateSegment'],
    ['/v1/segments/{id}/members', 'get', 'listSegmentMembers'], ['/v1/segments/{id}/members', 'post', 'addSegmentMembers'],
    ['/v1/segments/{id}/members', 'delete', 'removeSegmentMembers'], ['/v1/segments/{id}/count', 'get', 'countSegmentMembers'],
    ['/v1/segments/preview', 'post', 'previewSegment'], ['/v1/segments/{id}/export', 'get', 'exportSegmentMembers'],
    ['/v1/segments/{id}/refresh', 'post', 'refreshSegment'], ['/v1/segments/{id}/history', 'get', 'listSegmentHistory'],
  ] as const) {
    t.equal(doc.paths[path]?.[method]?.operationId, id, `${method.toUpperCase()} ${path}`)
  }
})
