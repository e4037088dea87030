import t from 'tap'
import { applyPlan, MASK, maskAuditSnapshot, PII_FIELDS, PII_KEYS, PII_LOG_PATHS, planHas, planOf } from '../../src/lib/pii.js'

t.test('maskAuditSnapshot masks personal keys by name and keeps the rest', async (t) => {
  t.equal(maskAuditSnapshot(null), null)
  const customer = { id: 'c1', name: 'Li Na', birthday: '1990-05-17', gender: null, tags: ['vip'], version: 3 }
  t.same(maskAuditSnapshot(customer), { ...customer, birthday: MASK })
  t.same(customer.birthday, '1990-05-17', 'the input is not modified')
})

t.test('contact point values are masked by their kind', async (t) => {
  t.match(maskAuditSnapshot({ kind: 'email', value: 'Li.Na@example.com', value_normalized: 'li.na@example.com' }), { value: 'L***@***', value_normalized: 'l***@***' })
  t.match(maskAuditSnapshot({ kind: 'phone', value: '+86 138-0000-1234', value_normalized: '+8613800001234' }), { value: '***34', value_normalized: '***34' })
  t.match(maskAuditSnapshot({ kind: 'social', network: 'wechat', value: 'lina_wx' }), { network: 'wechat', value: MASK })
  t.same(
    maskAuditSnapshot({ kind: 'address', value: '88 Century Avenue', address: { line1: '88 Century Avenue', city: 'Shanghai', country: 'CN' } }),
    { kind: 'address', value: MASK, address: { line1: MASK, city: MASK, country: 'CN' } },
  )
})

t.test('nested objects and arrays are masked too; null and non-string values never leak', async (t) => {
  const masked = maskAuditSnapshot({
    attributes: { email: 'x@y.z', shoe_size: 38, contacts: [{ phone: '555 123 4567' }, 'plain'] },
    phone: 13800001234,
    address: null,
    email: ['a@b.c'],
  })
  t.same(masked, {
    attributes: { email: 'x***@***', shoe_size: 38, contacts: [{ phone: '***67' }, 'plain'] },
    phone: MASK,
    address: null,
    email: MASK,
  })
})

t.test('the registry: one class per field name; log paths and snapshot keys derive from it', async (t) => {
  for (const [table, fields] of Object.entries(PII_FIELDS)) {
    for (const [name, cls] of Object.entries(fields)) t.equal(PII_KEYS[name], cls, `${table}.${name}`)
  }
  for (const name of ['email', 'phone', 'birthday', 'address', 'value', 'value_normalized', 'primary_email', 'primary_phone', 'notes']) {
    t.ok(PII_LOG_PATHS.includes(name) && PII_LOG_PATHS.includes(`*.${name}`), `${name} is redacted in logs`)
  }
  t.notOk(PII_LOG_PATHS.includes('*.name'), 'names are not: errors and plugins log theirs')
  t.same(maskAuditSnapshot({ primary_email: 'a@b.c', notes: 'call after 6', given_name: 'Na' }), { primary_email: 'a***@***', notes: 'call after 6', given_name: 'Na' },
    'masked classes are masked by name, unmasked personal classes are kept')
  const segment = { name: 'Recent', filter: { orders: { min_count: 1, before: '2026-01-01' } } }
  t.same(maskAuditSnapshot(segment), segment, 'a segment filter\'s date bound is not an audit snapshot')
})

// Schemas shaped like the API's: a page of customers, each with contact points, a union by kind.
const SCHEMAS: Record<string, unknown> = {
  ContactPoint: { oneOf: [{ $ref: 'ContactPointEmail#' }, { $ref: 'ContactPointAddress#' }] },
  ContactPointEmail: { type: 'object', properties: { kind: { type: 'string', enum: ['email'] }, value: { type: 'string' }, address: { type: 'null' } } },
  ContactPointAddress: { type: 'object', properties: { kind: { type: 'string', enum: ['address'] }, value: { type: 'string' }, address: { type: 'object' } } },
  Customer: {
    type: 'object',
    properties: {
      name: { type: 'string' }, birthday: { type: 'string', format: 'date', nullable: true }, primary_email: { type: 'string', nullable: true },
      primary_phone: { type: 'string', nullable: true }, contact_points: { type: 'array', items: { $ref: 'ContactPoint#' } },
      attributes: { type: 'object', additionalProperties: { $ref: 'JsonValue#' } },
    },
  },
  JsonValue: { anyOf: [{ type: 'string' }, { type: 'array', items: { $ref: 'JsonValue#' } }] },
  Page: { type: 'object', properties: { data: { type: 'array', items: { $ref: 'Customer#' } }, next_cursor: { type: 'string', nullable: true } } },
}
const resolve = (id: string) => SCHEMAS[id]

t.test('a response plan follows $refs, arrays and nesting; masking copies and keeps each field\'s type', async (t) => {
  const plan = planOf({ $ref: 'Page#' }, resolve)!
  t.ok(plan, 'a page of customers carries personal data')
  t.ok(planHas(plan, (c) => c === 'contact_value'), 'down to the contact points')
  t.equal(planOf({ type: 'object', properties: { count: { type: 'integer' } } }, resolve), undefined, 'a count carries none')
  const page = {
    data: [{
      name: 'Li Na', birthday: '1990-05-17', primary_email: 'li.na@example.com', primary_phone: '+8613800001234', attributes: { email: 'kept@example.com' },
      contact_points: [
        { kind: 'email', value: 'li.na@example.com', address: null },
        { kind: 'address', value: '88 Century Avenue', address: { line1: '88 Century Avenue', country: 'CN' } },
      ],
    }],
    next_cursor: null,
  }
  const copy = structuredClone(page)
  t.same(applyPlan(plan, page), {
    data: [{
      name: 'Li Na', birthday: null, primary_email: 'l***@***', primary_phone: '***34', attributes: { email: 'kept@example.com' },
      contact_points: [
        { kind: 'email', value: 'l***@***', address: null },
        { kind: 'address', value: MASK, address: { line1: MASK, country: 'CN' } },
      ],
    }],
    next_cursor: null,
  })
  t.same(page, copy, 'the input is not modified')
})

t.test('a response field named like a masked one outside the registry stops the app from starting', async (t) => {
  const stray = { type: 'object', properties: { customer_id: { type: 'string' }, email: { type: 'string' } }, $id: 'Stray' }
  t.throws(() => planOf({ $ref: 'Stray#' }, (id) => (id === 'Stray' ? stray : undefined)), /Stray has a field "email"/)
  t.throws(() => planOf({ type: 'object', properties: { birthday: { type: 'string' } } }, resolve), /\(inline\) has a field "birthday"/)
  t.throws(() => planOf({ $ref: 'Missing#' }, resolve), /unknown schema/)
})
