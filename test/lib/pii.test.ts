import t from 'tap'
import { MASK, maskAuditSnapshot } from '../../src/lib/pii.js'

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
