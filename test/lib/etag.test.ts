import t, { type Test } from 'tap'
import { setup } from '../helpers/app.js'

/**
 * Optimistic concurrency (lib/etag.ts) across the domains that use it: K writers holding the same
 * ETag race, exactly one wins, the others answer 412; If-None-Match answers 304.
 */
const ctx = await setup()
const admin = await ctx.auth()
const K = 8

async function createCustomer(name: string) {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name } })
  return res.json() as { id: string; version: number }
}

async function createOrder(customerId: string) {
  const res = await ctx.app.inject({
    method: 'POST', url: '/v1/orders', headers: admin,
    payload: { customer_id: customerId, currency: 'CNY', items: [{ sku: 'T', product_name: 'Tea', quantity: 1, unit_price: '10.00' }] },
  })
  return res.json() as { id: string }
}

type Write = { method: 'PATCH' | 'DELETE' | 'POST'; url: string; payload?: (i: number) => object }

/** Fires K writes with the same If-Match at once and checks one 2xx and K-1 412s, then the version moved by one. */
async function race(t: Test, write: Write, read: string, etag: string) {
  const results = await Promise.all(
    Array.from({ length: K }, (_, i) =>
      ctx.app.inject({
        method: write.method, url: write.url, headers: { ...admin, 'if-match': etag },
        ...(write.payload ? { payload: write.payload(i) } : {}),
      }),
    ),
  )
  const statuses = results.map((r) => r.statusCode).sort()
  const won = results.filter((r) => r.statusCode < 300)
  t.equal(won.length, 1, `one winner (${statuses.join(',')})`)
  t.equal(results.filter((r) => r.statusCode === 412).length, K - 1, 'the others 412')
  for (const r of results.filter((x) => x.statusCode === 412)) t.match(r.headers['content-type'], /^application\/problem\+json/)
  const after = await ctx.app.inject({ url: read, headers: admin })
  t.equal(after.headers.etag, `"${Number(etag.replace(/"/g, '')) + 1}"`, 'the version moved by exactly one')
  return { winner: won[0]!, after }
}

t.test('K parallel PATCHes of a customer with one If-Match: 1 × 200, K-1 × 412', async (t) => {
  const c = await createCustomer('Race Customer')
  const { winner, after } = await race(t, { method: 'PATCH', url: `/v1/customers/${c.id}`, payload: (i) => ({ job_title: `Title ${i}` }) }, `/v1/customers/${c.id}`, '"1"')
  t.equal(after.json().job_title, winner.json().job_title, 'the winner\'s change is the one kept')
  const same = await race(t, { method: 'PATCH', url: `/v1/customers/${c.id}`, payload: () => ({ occupation: 'Buyer' }) }, `/v1/customers/${c.id}`, '"2"')
  t.equal(same.after.json().occupation, 'Buyer', 'identical patches: still one winner')
})

t.test('K parallel PATCHes of an order with one If-Match: 1 × 200, K-1 × 412', async (t) => {
  const c = await createCustomer('Order Racer')
  const o = await createOrder(c.id)
  const { winner, after } = await race(t, { method: 'PATCH', url: `/v1/orders/${o.id}`, payload: (i) => ({ notes: `note ${i}` }) }, `/v1/orders/${o.id}`, '"1"')
  t.equal(after.json().notes, winner.json().notes)
  // Competing status transitions: only one of them applies.
  await race(t, { method: 'PATCH', url: `/v1/orders/${o.id}`, payload: (i) => ({ status: i % 2 ? 'paid' : 'cancelled' }) }, `/v1/orders/${o.id}`, '"2"')
})

t.test('K parallel archives and contact point updates with one If-Match: one winner', async (t) => {
  const c = await createCustomer('Archive Racer')
  await race(t, { method: 'DELETE', url: `/v1/customers/${c.id}` }, `/v1/customers/${c.id}`, '"1"')
  const o = await createOrder((await createCustomer('Order Archive Racer')).id)
  await race(t, { method: 'DELETE', url: `/v1/orders/${o.id}` }, `/v1/orders/${o.id}`, '"1"')

  const owner = await createCustomer('Contact Racer')
  const cp = await ctx.app.inject({ method: 'POST', url: `/v1/customers/${owner.id}/contact-points`, headers: admin, payload: { kind: 'phone', value: '+86 138 0000 0001' } })
  t.equal(cp.headers.etag, '"1"')
  const results = await Promise.all(
    Array.from({ length: K }, (_, i) =>
      ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${owner.id}/contact-points/${cp.json().id}`, headers: { ...admin, 'if-match': '"1"' }, payload: { label: i % 2 ? 'work' : 'home' } }),
    ),
  )
  t.equal(results.filter((r) => r.statusCode === 200).length, 1)
  t.equal(results.filter((r) => r.statusCode === 412).length, K - 1)
})

t.test('If-None-Match with the current ETag answers 304 with the ETag and no body', async (t) => {
  const c = await createCustomer('Cached Customer')
  const o = await createOrder(c.id)
  for (const url of [`/v1/customers/${c.id}`, `/v1/orders/${o.id}`]) {
    for (const tag of ['"1"', 'W/"1"', '"7", "1"', '*']) {
      const res = await ctx.app.inject({ url, headers: { ...admin, 'if-none-match': tag } })
      t.equal(res.statusCode, 304, `${url} ${tag}`)
      t.equal(res.headers.etag, '"1"')
      t.equal(res.body, '')
    }
    const stale = await ctx.app.inject({ url, headers: { ...admin, 'if-none-match': '"0"' } })
    t.equal(stale.statusCode, 200, 'another version: the full resource')
    t.equal(stale.headers.etag, '"1"')
  }
  await ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: admin, payload: { job_title: 'Changed' } })
  const changed = await ctx.app.inject({ url: `/v1/customers/${c.id}`, headers: { ...admin, 'if-none-match': '"1"' } })
  t.equal(changed.statusCode, 200, 'after a change the old ETag no longer matches')
  t.equal(changed.headers.etag, '"2"')
})

t.test('If-Match: a stale or weak tag is 412, a malformed one 400, "*" matches any version', async (t) => {
  const c = await createCustomer('Match Rules')
  const patch = (tag: string, job_title: string) =>
    ctx.app.inject({ method: 'PATCH', url: `/v1/customers/${c.id}`, headers: { ...admin, 'if-match': tag }, payload: { job_title } })
  t.equal((await patch('"5"', 'a')).statusCode, 412)
  t.equal((await patch('W/"1"', 'a')).statusCode, 412, 'If-Match uses the strong comparison (RFC 9110 13.1.1)')
  const bad = await patch('one', 'a')
  t.equal(bad.statusCode, 400)
  t.same(bad.json().errors.map((e: { pointer: string }) => e.pointer), ['/headers/if-match'])
  const ok = await patch('"1"', 'b')
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers.etag, '"2"')
  t.equal((await patch('*', 'c')).statusCode, 200)
})
