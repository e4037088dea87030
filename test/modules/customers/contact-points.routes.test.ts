import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const admin = await ctx.auth()

async function newCustomer(name: string, contact_points: unknown[] = []) {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name, contact_points } })
  return res.json() as { id: string; contact_points?: Array<{ id: string; kind: string; is_primary: boolean; value: string }> }
}
const list = async (id: string) => (await ctx.app.inject({ url: `/v1/customers/${id}/contact-points`, headers: admin })).json().data as Array<{ id: string; kind: string; is_primary: boolean; value: string; version: number }>

t.test('adding a primary demotes the previous one; one primary per kind always', async (t) => {
  const c = await newCustomer('Multi Mail', [{ kind: 'email', value: 'one@example.com' }])
  const second = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${c.id}/contact-points`, headers: admin, payload: { kind: 'email', value: 'two@example.com' } })
  t.equal(second.statusCode, 201)
  t.equal(second.json().is_primary, false, 'a second email is not primary unless asked')
  t.match(second.headers.location, new RegExp(`/v1/customers/${c.id}/contact-points/`))
  const third = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${c.id}/contact-points`, headers: admin, payload: { kind: 'email', value: 'three@example.com', is_primary: true } })
  t.equal(third.json().is_primary, true)
  const emails = (await list(c.id)).filter((p) => p.kind === 'email')
  t.same(emails.filter((p) => p.is_primary).map((p) => p.value), ['three@example.com'])
  const customer = (await ctx.app.inject({ url: `/v1/customers/${c.id}`, headers: admin })).json()
  t.equal(customer.primary_email, 'three@example.com')
})

t.test('patch makes another primary; unsetting the only primary is refused; If-Match guards', async (t) => {
  const c = await newCustomer('Phone Person', [{ kind: 'phone', value: '+8613800000001' }, { kind: 'phone', value: '+8613800000002' }])
  const [p1, p2] = await list(c.id)
  t.ok(p1!.is_primary && !p2!.is_primary)
  const promote = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}/contact-points/${p2!.id}`, headers: { ...admin, 'if-match': `"${p2!.version}"` }, payload: { is_primary: true, label: 'work' } })
  t.equal(promote.statusCode, 200, promote.body)
  t.equal(promote.json().label, 'work')
  const after = await list(c.id)
  t.same(after.filter((p) => p.is_primary).map((p) => p.id), [p2!.id])
  const refuse = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}/contact-points/${p2!.id}`, headers: admin, payload: { is_primary: false } })
  t.equal(refuse.statusCode, 400)
  const stale = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}/contact-points/${p2!.id}`, headers: { ...admin, 'if-match': `"${p2!.version}"` }, payload: { label: 'home' } })
  t.equal(stale.statusCode, 412)
  const badValue = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}/contact-points/${p2!.id}`, headers: admin, payload: { value: 'not a phone' } })
  t.equal(badValue.statusCode, 400)
  t.same(badValue.json().errors.map((e: { pointer: string }) => e.pointer), ['/value'])
})

t.test('deleting the primary promotes the oldest remaining of its kind; audited', async (t) => {
  const c = await newCustomer('Deleter', [{ kind: 'email', value: 'd1@example.com' }, { kind: 'email', value: 'd2@example.com' }, { kind: 'email', value: 'd3@example.com' }])
  const before = await list(c.id)
  const primary = before.find((p) => p.is_primary)!
  const del = await ctx.app.inject({ method: 'DELETE', url: `/v1/customers/${c.id}/contact-points/${primary.id}`, headers: admin })
  t.equal(del.statusCode, 204)
  const after = await list(c.id)
  t.equal(after.length, 2)
  t.equal(after.filter((p) => p.is_primary).length, 1)
  t.equal(after.find((p) => p.is_primary)!.value, 'd2@example.com')
  const audit = await ctx.db.selectFrom('audit_events').select(['action', 'entity']).where('request_id', '=', del.headers['x-request-id'] as string).orderBy('id').execute()
  t.same(audit, [{ action: 'delete', entity: 'contact_points' }, { action: 'update', entity: 'contact_points' }])
})

t.test('contact points of another customer are 404, unknown customer 404', async (t) => {
  const a = await newCustomer('A', [{ kind: 'email', value: 'a-owner@example.com' }])
  const b = await newCustomer('B')
  const [cp] = await list(a.id)
  const cross = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${b.id}/contact-points/${cp!.id}`, headers: admin, payload: { label: 'home' } })
  t.equal(cross.statusCode, 404)
  const crossDel = await ctx.app.inject({ method: 'DELETE', url: `/v1/customers/${b.id}/contact-points/${cp!.id}`, headers: admin })
  t.equal(crossDel.statusCode, 404)
  const unknown = await ctx.app.inject({ method: 'POST', url: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11/contact-points', headers: admin, payload: { kind: 'email', value: 'x@example.com' } })
  t.equal(unknown.statusCode, 404)
  t.equal(await ctx.count('contact_points'), (await ctx.db.selectFrom('contact_points').select('id').execute()).length)
})

t.test('a primary email held by another customer is 409 on add and on promote', async (t) => {
  await newCustomer('Holder', [{ kind: 'email', value: 'shared@example.com' }])
  const other = await newCustomer('Other', [{ kind: 'email', value: 'mine@example.com' }])
  const add = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${other.id}/contact-points`, headers: admin, payload: { kind: 'email', value: 'Shared@example.com', is_primary: true } })
  t.equal(add.statusCode, 409)
  // As a secondary email it is allowed (only primaries are unique) ...
  const secondary = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${other.id}/contact-points`, headers: admin, payload: { kind: 'email', value: 'shared@example.com' } })
  t.equal(secondary.statusCode, 201)
  // ... but promoting it collides.
  const promote = await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${other.id}/contact-points/${secondary.json().id}`, headers: admin, payload: { is_primary: true } })
  t.equal(promote.statusCode, 409)
  t.same((await list(other.id)).filter((p) => p.is_primary).map((p) => p.value), ['mine@example.com'], 'nothing half-written')
})
