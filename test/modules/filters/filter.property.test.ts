import t from 'tap'
import fc from 'fast-check'
import { setup } from '../../helpers/app.js'
import { FILTER_FIELDS, OPS_BY_TYPE, parseFilter } from '../../../src/modules/filters/filter.parse.js'
import type { CustomerFilterT } from '../../../src/modules/filters/filter.schemas.js'
import { POOLS, dbNow, evaluate, load, seed } from './filter.model.js'
import { seeded, testSeed } from '../../helpers/seed.js'

/**
 * Property: for random filter trees over a generated data set, POST /v1/customers/search answers
 * exactly the customers a brute-force evaluation of the same tree selects (filter.model.ts).
 */
t.setTimeout(600_000)
const ctx = await setup()
const reader = await ctx.auth('customers:read financial:read')
await seed(ctx.db, 20261123, 300)
const model = await load(ctx.db)
// Fixed unless CRM_TEST_SEED asks for another: the coverage counts below were tuned on these trees.
const SEED = testSeed(1)

type Node = CustomerFilterT
const DATES = ['2026-01-01', '2025-06-15', '2026-10-01T12:00:00Z']
const relDate = fc.oneof(fc.constantFrom(...DATES), fc.record({ last_n_days: fc.constantFrom(0, 7, 30, 90, 200, 365) }))
const sub = <T>(xs: readonly T[]) => fc.subarray([...xs], { minLength: 1 })

const TEXT_VALUES: Record<string, string[]> = {
  name: [...POOLS.names, 'zhang', 'li', 'an', '100%_', 'Zhang Li', 'wei zhang'],
  company: [...POOLS.companies, 'acme', 'trading'],
  job_title: [...POOLS.jobs, 'engineer', 'purchasing head'],
  external_ref: ['ext-1', 'ext'],
}
const INT_VALUES: Record<string, number[]> = {
  loyalty_points: [0, 100, 200, 300, 500], payment_terms_days: [0, 30, 60], order_count: [0, 1, 2, 3, 4],
  interaction_count: [0, 1, 2, 3], open_complaints: [0, 1, 2], latest_csat: [1, 3, 5], latest_nps: [0, 5, 9, 10], recency_days: [0, 10, 30, 90, 200],
}
const MONEY_VALUES = ['0.00', '0', '10.50', '500.00', '1000.50', '25', '120.00', '3000']

function valueFor(field: string, op: string): fc.Arbitrary<unknown> {
  const spec = FILTER_FIELDS[field]!
  if (op === 'exists') return fc.constantFrom(true, false, undefined)
  switch (spec.type) {
    case 'text': {
      const pool = TEXT_VALUES[field] ?? ['x']
      return op === 'in' || op === 'not_in' ? sub(pool) : fc.constantFrom(...pool)
    }
    case 'enum': return op === 'in' || op === 'not_in' ? sub(spec.values!) : fc.constantFrom(...spec.values!)
    case 'integer': {
      const pool = INT_VALUES[field]!
      return op === 'in' || op === 'not_in' ? sub(pool) : fc.constantFrom(...pool)
    }
    case 'money': return fc.constantFrom(...MONEY_VALUES)
    case 'timestamp': return relDate
    case 'list': return sub(field === 'tags' ? [...POOLS.tags, 'VIP '] : [...POOLS.interests, 'chess'])
    default: throw new Error(field)
  }
}

const FIELD_NAMES = Object.keys(FILTER_FIELDS).filter((f) => !['given_name', 'family_name', 'occupation', 'marital_status', 'preferred_channel'].includes(f))

const leafFor = (field: string, op: string): fc.Arbitrary<Node> =>
  fc.record({
    value: valueFor(field, op),
    currency: field === 'monetary' || field === 'lifetime_value' ? fc.constantFrom(undefined, 'CNY', 'USD') : fc.constant(undefined),
    days: field === 'monetary' ? fc.constantFrom(undefined, 30, 120, 365) : fc.constant(undefined),
  }).map(({ value, currency, days }) => clean({ field, op, value, currency, last_n_days: days }) as Node)

const fieldLeaf: fc.Arbitrary<Node> = fc.constantFrom(...FIELD_NAMES).chain((field) =>
  fc.constantFrom(...OPS_BY_TYPE[FILTER_FIELDS[field]!.type]).chain((op) => leafFor(field, op)),
)

const ATTR = ['shoe_size', 'tier', 'vip', 'score', 'missing_key']
const attrScalar = fc.oneof(fc.integer({ min: 34, max: 46 }), fc.constantFrom(...POOLS.tiers, 'gold', true, false, '5', 5))
const attributeLeaf: fc.Arbitrary<Node> = fc.record({
  key: fc.constantFrom(...ATTR),
  op: fc.constantFrom(...OPS_BY_TYPE.json),
}).chain(({ key, op }) => {
  const value: fc.Arbitrary<unknown> =
    op === 'exists' ? fc.constantFrom(true, false)
      : op === 'in' || op === 'not_in' ? fc.array(attrScalar, { minLength: 1, maxLength: 4 })
        : op === 'contains' ? fc.constantFrom('gol', 'SIL', 'd', '5')
          : op === 'gt' || op === 'gte' || op === 'lt' || op === 'lte' ? fc.integer({ min: 1, max: 46 })
            : attrScalar
  return value.map((v) => ({ field: `attributes.${key}`, op, value: v }) as Node)
})

const bounds = fc.record({
  min_count: fc.constantFrom(undefined, 0, 1, 2, 3),
  max_count: fc.constantFrom(undefined, undefined, 0, 1, 2),
  since: fc.option(relDate, { nil: undefined }),
  before: fc.option(relDate, { nil: undefined }),
}).map((b) => (b.min_count !== undefined && b.max_count !== undefined && b.max_count < b.min_count ? { ...b, max_count: b.min_count } : b))

const ordersLeaf: fc.Arbitrary<Node> = fc.record({
  b: bounds,
  status: fc.option(sub(POOLS.orderStatuses), { nil: undefined }),
  currency: fc.constantFrom(undefined, 'CNY', 'USD'),
  category: fc.constantFrom(undefined, undefined, ...POOLS.categories),
  sku: fc.constantFrom(undefined, undefined, ...POOLS.skus),
}).map(({ b, ...rest }) => ({ orders: clean({ ...b, ...rest }) }) as Node)

const interactionsLeaf: fc.Arbitrary<Node> = fc.record({
  b: bounds,
  channel: fc.option(sub(POOLS.channels), { nil: undefined }),
  direction: fc.option(sub(POOLS.directions), { nil: undefined }),
}).map(({ b, ...rest }) => ({ interactions: clean({ ...b, ...rest }) }) as Node)

const feedbackLeaf: fc.Arbitrary<Node> = fc.record({
  b: bounds,
  kind: fc.option(sub(POOLS.feedbackKinds), { nil: undefined }),
  open: fc.constantFrom(undefined, true, false),
}).map(({ b, ...rest }) => ({ feedback: clean({ ...b, ...rest }) }) as Node)

const leaf = fc.oneof(fieldLeaf, fieldLeaf, attributeLeaf, ordersLeaf, interactionsLeaf, feedbackLeaf)

const tree: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('node'), { minLength: 1, maxLength: 3 }).map((and) => ({ and })),
    fc.array(tie('node'), { minLength: 1, maxLength: 3 }).map((or) => ({ or })),
    tie('node').map((n) => ({ not: n })),
  ),
})).node.filter((n) => countNodes(n) <= 100 && depth(n) <= 8)

function clean<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}
function countNodes(n: Node): number {
  if ('and' in n) return 1 + n.and.reduce((s, c) => s + countNodes(c), 0)
  if ('or' in n) return 1 + n.or.reduce((s, c) => s + countNodes(c), 0)
  if ('not' in n) return 1 + countNodes(n.not)
  return 1
}
function depth(n: Node): number {
  if ('and' in n) return 1 + Math.max(...n.and.map(depth))
  if ('or' in n) return 1 + Math.max(...n.or.map(depth))
  if ('not' in n) return 1 + depth(n.not)
  return 1
}

/** Every page of a search, followed to the end. */
async function search(filter: Node): Promise<{ ids: string[]; total: number }> {
  const ids: string[] = []
  let cursor: string | undefined
  let total = -1
  for (let i = 0; i < 20; i++) {
    const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers/search', headers: reader, payload: { filter, limit: 200, include_total: true, ...(cursor ? { cursor } : {}) } })
    if (res.statusCode !== 200) throw new Error(`search answered ${res.statusCode}: ${res.body} for ${JSON.stringify(filter)}`)
    const body = res.json() as { data: Array<{ id: string }>; next_cursor: string | null; total: number }
    ids.push(...body.data.map((d) => d.id))
    total = body.total
    if (!body.next_cursor) break
    cursor = body.next_cursor
  }
  return { ids, total }
}

const seen = new Set<string>()
function record(n: Node) {
  if ('and' in n) { seen.add('and'); n.and.forEach(record); return }
  if ('or' in n) { seen.add('or'); n.or.forEach(record); return }
  if ('not' in n) { seen.add('not'); record(n.not); return }
  if ('field' in n) {
    const type = n.field.startsWith('attributes.') ? 'json' : FILTER_FIELDS[n.field]!.type
    seen.add(`${type}:${n.op}`)
    seen.add(`field:${n.field}`)
    return
  }
  for (const kind of ['orders', 'interactions', 'feedback'] as const) {
    if (kind in n) {
      const b = (n as unknown as Record<string, Record<string, unknown>>)[kind]!
      seen.add(kind)
      for (const k of Object.keys(b)) seen.add(`${kind}.${k}`)
      if (b.max_count === 0) seen.add(`${kind}.none`)
      if (typeof b.min_count === 'number' && b.min_count > 1) seen.add(`${kind}.at_least_n`)
    }
  }
}

let nonTrivial = 0
async function check(filter: Node) {
  record(filter)
  const ast = parseFilter(filter, '/filter')
  const now = await dbNow(ctx.db)
  const expected = [...evaluate(model, ast, now)].sort()
  const { ids, total } = await search(filter)
  if (expected.length > 0 && expected.length < model.customers.length * 0.9) nonTrivial++
  const got = [...ids].sort()
  if (JSON.stringify(got) !== JSON.stringify(expected) || total !== expected.length) {
    throw new Error(`mismatch for ${JSON.stringify(filter)}: search ${got.length} (total ${total}), model ${expected.length}`)
  }
}

t.test(seeded('each field with each of its operators agrees with the model', SEED), async (t) => {
  // Every field with every operator it takes, then random leaves.
  for (const field of FIELD_NAMES) {
    for (const op of OPS_BY_TYPE[FILTER_FIELDS[field]!.type]) await fc.assert(fc.asyncProperty(leafFor(field, op), check), { numRuns: 2, seed: SEED })
  }
  await fc.assert(fc.asyncProperty(fieldLeaf, check), { numRuns: 40, seed: SEED })
  await fc.assert(fc.asyncProperty(attributeLeaf, check), { numRuns: 60, seed: SEED + 1 })
  for (const field of FIELD_NAMES) {
    for (const op of OPS_BY_TYPE[FILTER_FIELDS[field]!.type]) {
      t.ok(seen.has(`${FILTER_FIELDS[field]!.type}:${op}`), `${FILTER_FIELDS[field]!.type}:${op} was tested`)
    }
    t.ok(seen.has(`field:${field}`), `${field} was tested`)
  }
  for (const op of OPS_BY_TYPE.json) t.ok(seen.has(`json:${op}`), `attributes with ${op} were tested`)
})

t.test(seeded('related-record aggregates agree with the model', SEED), async (t) => {
  await fc.assert(fc.asyncProperty(fc.oneof(ordersLeaf, interactionsLeaf, feedbackLeaf), check), { numRuns: 120, seed: SEED + 2 })
  for (const k of ['orders', 'interactions', 'feedback']) {
    for (const part of ['min_count', 'max_count', 'since', 'before', 'none', 'at_least_n']) t.ok(seen.has(`${k}.${part}`), `${k} ${part} was tested`)
  }
  for (const part of ['status', 'currency', 'category', 'sku']) t.ok(seen.has(`orders.${part}`), `orders ${part} was tested`)
  for (const part of ['channel', 'direction']) t.ok(seen.has(`interactions.${part}`), `interactions ${part} was tested`)
  for (const part of ['kind', 'open']) t.ok(seen.has(`feedback.${part}`), `feedback ${part} was tested`)
})

t.test(seeded('random and/or/not trees agree with the model', SEED), async (t) => {
  await fc.assert(fc.asyncProperty(tree, check), { numRuns: 120, seed: SEED + 3 })
  for (const k of ['and', 'or', 'not']) t.ok(seen.has(k), `${k} was tested`)
  t.ok(nonTrivial > 150, `most filters select some but not all customers (${nonTrivial})`)
})

t.test('named examples from the issue', async (t) => {
  const examples: Node[] = [
    { orders: { min_count: 3, status: ['paid'], since: { last_n_days: 90 } } },
    { feedback: { kind: ['complaint'], open: true } },
    { interactions: { since: '2026-01-01', max_count: 0 } },
    { orders: { category: 'tea' } },
    { orders: { sku: 'CUP-1' } },
  ]
  for (const f of examples) {
    await check(f)
    t.pass(JSON.stringify(f))
  }
})
