import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'
import { pageRequest, parseSort, toPage } from '../../../src/lib/pagination.js'
import { CUSTOMER_SORTS } from '../../../src/modules/customers/customers.schemas.js'
import type { CustomerFilters } from '../../../src/modules/customers/customers.repository.js'
import { listCustomersByTerm } from '../../../src/modules/customers/customers.search.repository.js'

// A q search first walks a bounded number of customers in the list's order, then, if that did not
// fill the page, gathers every match (customers.search.repository listCustomersByTerm). Both paths must give the
// same pages: these customers make the walk succeed for some pages and give up for others.
const ctx = await setup()
const admin = await ctx.auth()

const given = ['Anna', 'Boris', 'Chen', 'Olga', 'Smithy', '王']
const family = ['Smith', 'Garcia', 'Иванов', 'Lee', '秀英', 'Müller', 'smith-Jones']
const stages = ['lead', 'first_purchase', 'repeat', 'loyal']
const rows = Array.from({ length: 240 }, (_, i) => ({
  name: `${given[i % given.length]} ${family[(i * 5) % family.length]}`,
  tags: i % 4 === 0 ? ['vip'] : [],
  lifecycle_stage: stages[i % stages.length]!,
  // Runs of four customers share a creation time, so the id decides their order.
  created_at: new Date(Date.UTC(2026, 0, 1) + Math.floor(i / 4) * 60_000).toISOString(),
  updated_at: new Date(Date.UTC(2026, 2, 1) + ((i * 37) % 240) * 60_000).toISOString(),
  archived_at: i % 9 === 0 ? new Date(Date.UTC(2026, 3, 1)).toISOString() : null,
}))
const inserted = await ctx.db.insertInto('customers').values(rows).returning(['id', 'name']).execute()
// Emails that match terms their names do not (olga., smith), and phones.
await ctx.db
  .insertInto('contact_points')
  .values(inserted.flatMap((c, i) => [
    { customer_id: c.id, kind: 'email', value: `${i % 5 === 0 ? 'olga.k' : 'x'}.${i}@example.com`, value_normalized: `${i % 5 === 0 ? 'olga.k' : 'x'}.${i}@example.com`, is_primary: true },
    ...(i % 3 === 0 ? [{ customer_id: c.id, kind: 'phone', value: `+86 139 ${String(i).padStart(4, '0')}`, value_normalized: `+86139${String(i).padStart(4, '0')}`, is_primary: true }] : []),
    ...(i % 7 === 0 ? [{ customer_id: c.id, kind: 'social', value: 'smith.social', value_normalized: 'smith.social', network: 'instagram', is_primary: false }] : []),
  ]))
  .execute()
await sql`analyze customers, contact_points`.execute(ctx.ownerDb)

async function pages(f: CustomerFilters & { q: string }, sort: string, walkRows: number, limit = 9) {
  const keys = parseSort(sort, CUSTOMER_SORTS, '-created_at')
  const ids: string[] = []
  let cursor: string | null = null
  do {
    const wanted = pageRequest({ cursor: cursor ?? undefined, limit }, keys)
    const found = await listCustomersByTerm(ctx.db, f, wanted, walkRows)
    const page = toPage(found, wanted, (r) => r)
    ids.push(...page.data.map((r) => r.id))
    cursor = page.next_cursor
  } while (cursor && ids.length <= rows.length)
  return ids
}

t.test('the walk and the gathered matches give the same pages, for every sort, filter and term', async (t) => {
  const terms = ['smith', 'SMITH', 'olga.', 'Иванов', '秀英', '王 ', 'ül', '+86 139', 'no such name']
  const sorts = ['-created_at', 'created_at', 'name', '-name', '-updated_at', 'name,-created_at']
  const filters: Array<Omit<CustomerFilters, 'q' | 'qContacts'>> = [
    { archived: 'false' }, { archived: 'true' }, { archived: 'all' }, { archived: 'false', tags: ['vip'] }, { archived: 'false', lifecycle_stage: 'repeat', created_after: '2026-01-01T00:20:00Z' },
  ]
  let compared = 0
  for (const q of terms) {
    for (const qContacts of [true, false]) {
      for (const filter of filters) {
        for (const sort of sorts) {
          const f = { ...filter, q, qContacts }
          const gathered = await pages(f, sort, 0)
          // 1 and 12: the walk gives up at once, or after some pages; 1,000: it covers everything.
          for (const walkRows of [1, 12, 1000]) {
            const walked = await pages(f, sort, walkRows)
            if (JSON.stringify(walked) !== JSON.stringify(gathered)) t.fail(`${q} ${sort} ${JSON.stringify(filter)} contacts=${qContacts} walk=${walkRows}`)
            compared++
          }
        }
      }
    }
  }
  t.equal(compared, 9 * 2 * 5 * 6 * 3)
})

t.test('what q matches: name without case, email and phone with pii:read, nothing archived unless asked', async (t) => {
  const expected = (q: string, contacts: boolean, archived: boolean) =>
    inserted
      .filter((c, i) => (rows[i]!.archived_at !== null) === archived && (c.name.toLowerCase().includes(q.toLowerCase()) || (contacts && (
        (i % 5 === 0 && q.replace('.', '') === 'olga') || (i % 3 === 0 && `+86139${String(i).padStart(4, '0')}`.includes(q.replace(/\s/g, '')))))))
      .map((c) => c.id)
      .sort()
  for (const [q, contacts, archived] of [['smith', true, false], ['smith', false, true], ['olga.', true, false], ['olga.', false, false], ['+86 139', true, false]] as const) {
    for (const walkRows of [0, 1000]) {
      const got = await pages({ q, qContacts: contacts, archived: archived ? 'true' : 'false' }, '-created_at', walkRows, 200)
      t.same([...got].sort(), expected(q, contacts, archived), `${q} contacts=${contacts} archived=${archived} walk=${walkRows}`)
    }
  }
  t.ok(expected('smith', true, false).length > 50, 'a common term')
})

t.test('the list route pages a q search to the end, newest first', async (t) => {
  const seen: Array<{ id: string; created_at: string }> = []
  let cursor: string | null = null
  do {
    const res: { statusCode: number; json(): { data: typeof seen; next_cursor: string | null } } = await ctx.app.inject({ url: `/v1/customers?q=smith&limit=7${cursor ? `&cursor=${cursor}` : ''}`, headers: admin })
    t.equal(res.statusCode, 200)
    seen.push(...res.json().data)
    cursor = res.json().next_cursor
  } while (cursor && seen.length < 500)
  t.same(seen.map((c) => c.id), await pages({ q: 'smith', qContacts: true, archived: 'false' }, '-created_at', 0))
  for (let i = 1; i < seen.length; i++) t.ok(seen[i - 1]!.created_at >= seen[i]!.created_at)
})
