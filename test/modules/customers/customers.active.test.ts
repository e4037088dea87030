import t from 'tap'
import pg from 'pg'
import { setup } from '../../helpers/app.js'

/**
 * A create that names a customer takes that customer FOR SHARE (activeCustomers), so it cannot
 * attach a row to a duplicate that a concurrent merge is archiving: the create waits for the
 * merge and then finds the customer archived (422), or the merge waits for the create and moves
 * its row. Here a transaction holds the duplicate archived and merged, uncommitted, exactly as a
 * merge does before it commits; the create must wait for it and then refuse.
 */
const ctx = await setup()
const admin = await ctx.auth()

async function customer(name: string): Promise<string> {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json().id
}

const creates: Record<string, { url: string; table: 'orders' | 'interactions' | 'feedback'; body: (c: string) => Record<string, unknown> }> = {
  'an order': {
    url: '/v1/orders', table: 'orders',
    body: (c) => ({ customer_id: c, currency: 'CNY', items: [{ sku: 'TEA-1', product_name: 'Oolong', quantity: 1, unit_price: '10.00' }] }),
  },
  'an interaction': { url: '/v1/interactions', table: 'interactions', body: (c) => ({ customer_id: c, channel: 'phone' }) },
  'feedback': { url: '/v1/feedback', table: 'feedback', body: (c) => ({ customer_id: c, kind: 'praise' }) },
  'an order in a batch': {
    url: '/v1/orders/batch', table: 'orders',
    body: (c) => ({ items: [{ customer_id: c, currency: 'CNY', items: [{ sku: 'TEA-1', product_name: 'Oolong', quantity: 1, unit_price: '10.00' }] }] }),
  },
  'an interaction in a batch': { url: '/v1/interactions/batch', table: 'interactions', body: (c) => ({ items: [{ customer_id: c, channel: 'phone' }] }) },
}

for (const [what, create] of Object.entries(creates)) {
  t.test(`${what} racing a merge is not attached to the archived duplicate`, async (t) => {
    const target = await customer('Target')
    const duplicate = await customer('Duplicate')
    const merger = new pg.Client({ connectionString: ctx.url })
    await merger.connect()
    t.teardown(() => merger.end())
    await merger.query('begin')
    await merger.query('select id from customers where id = any($1::uuid[]) order by id for update', [[target, duplicate]])
    await merger.query('update customers set merged_into_id = $1, archived_at = now() where id = $2', [target, duplicate])

    let settled = false
    const pending = ctx.app.inject({ method: 'POST', url: create.url, headers: admin, payload: create.body(duplicate) }).finally(() => {
      settled = true
    })
    await new Promise((r) => setTimeout(r, 300))
    t.equal(settled, false, 'the create waits for the merge to commit')
    await merger.query('commit')

    const res = await pending
    if (res.statusCode === 200) {
      // A batch answers 200 with per-item results.
      t.equal(res.json().results?.[0]?.status, 422, 'the item is refused')
    } else {
      t.equal(res.statusCode, 422, 'the create is refused: the customer is archived now')
    }
    const attached = await ctx.ownerDb.selectFrom(create.table).select('id').where('customer_id', '=', duplicate).execute()
    t.same(attached, [], 'nothing is attached to the archived duplicate')
  })
}
