import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../../helpers/app.js'

/**
 * Who sees what (issue 14), through the API and in the database: a team tree, users of the
 * default roles, customers created by each (ownership from the creating user), and what each
 * principal gets from every customer route, lists, search and segment counts, compared with a
 * brute-force model of the visibility rules.
 */
const ctx = await setup()
const service = await ctx.auth('admin pii:read')

type Headers = Record<string, string>
async function call(method: string, url: string, headers: Headers, payload?: unknown) {
  return ctx.app.inject({ method: method as 'GET', url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })
}
async function ok(method: string, url: string, headers: Headers, payload?: unknown, status = 200) {
  const res = await call(method, url, headers, payload)
  if (res.statusCode !== status) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.body ? res.json() : null
}

// The team tree: sales > (east > east_key_accounts), (west).
const team = async (name: string, parent_id: string | null = null) => (await ok('POST', '/v1/teams', service, { name, parent_id }, 201)).id as string
const sales = await team('Sales')
const east = await team('East', sales)
const eastKey = await team('East key accounts', east)
const west = await team('West', sales)
const parents = new Map<string, string | null>([[sales, null], [east, sales], [eastKey, east], [west, sales]])

interface Person { id: string; headers: Headers; role: string; teams: string[] }
async function person(subject: string, role: string, teams: string[]): Promise<Person> {
  const u = await ok('POST', '/v1/users', service, { subject, display_name: subject, team_ids: teams, roles: [role] }, 201)
  return { id: u.id, headers: await ctx.auth('', { sub: subject }), role, teams }
}
const rep1 = await person('rep-east-1', 'sales_rep', [east])
const rep2 = await person('rep-east-2', 'sales_rep', [east])
const repWest = await person('rep-west', 'sales_rep', [west])
const repKey = await person('rep-east-key', 'sales_rep', [eastKey])
const support = await person('support-east', 'support_agent', [east])
const eastManager = await person('manager-east', 'sales_manager', [east])
const director = await person('director', 'sales_manager', [sales])
const analyst = await person('analyst', 'marketing_analyst', [])
const people = [rep1, rep2, repWest, repKey, support, eastManager, director, analyst]

interface Owned { id: string; owner: string | null; team: string | null }
const customers: Owned[] = []
async function customer(by: Person | null, name: string): Promise<Owned> {
  const c = await ok('POST', '/v1/customers', by ? by.headers : service, { name, tags: ['acl'] }, 201)
  const owned = { id: c.id as string, owner: c.owner_user_id as string | null, team: c.owning_team_id as string | null }
  customers.push(owned)
  return owned
}
const mine = await customer(rep1, 'Rep 1 customer')
const teammates = await customer(rep2, 'Rep 2 customer')
const westCustomer = await customer(repWest, 'West customer')
const subTeams = await customer(repKey, 'Key account customer')
const unowned = await customer(null, 'Service customer')
for (let i = 0; i < 6; i++) await customer(people[i % 4]!, `More ${i}`)

/** The model: which customers a person sees, from the rules alone. */
function below(root: string): string[] {
  return [root, ...[...parents].filter(([, p]) => p === root).flatMap(([id]) => below(id))]
}
function expectedFor(p: Person): string[] {
  const visibility = { sales_rep: 'own', support_agent: 'team', sales_manager: 'team_and_subteams', marketing_analyst: 'all' }[p.role]
  const teams = visibility === 'team' ? p.teams : visibility === 'team_and_subteams' ? p.teams.flatMap(below) : []
  return customers.filter((c) => visibility === 'all' || c.owner === p.id || (c.team !== null && teams.includes(c.team))).map((c) => c.id).sort()
}

async function listIds(url: string, headers: Headers): Promise<string[]> {
  const out: string[] = []
  for (let cursor: string | null = null; ;) {
    const page: { data: Array<{ id: string }>; next_cursor: string | null } = await ok('GET', `${url}${url.includes('?') ? '&' : '?'}limit=200${cursor ? `&cursor=${cursor}` : ''}`, headers)
    out.push(...page.data.map((c) => c.id))
    if (!page.next_cursor) return out.sort()
    cursor = page.next_cursor
  }
}

t.test('ownership: a user\'s customers belong to it and its primary team; a service\'s to nobody', async (t) => {
  t.same({ owner: mine.owner, team: mine.team }, { owner: rep1.id, team: east })
  t.same({ owner: subTeams.owner, team: subTeams.team }, { owner: repKey.id, team: eastKey })
  t.same({ owner: unowned.owner, team: unowned.team }, { owner: null, team: null })
})

t.test('each principal sees exactly its visible set: get, list, search, segment count', async (t) => {
  const segment = await ok('POST', '/v1/segments', service, { name: 'ACL', kind: 'dynamic', filter: { field: 'tags', op: 'has_any', value: ['acl'] } }, 201)
  for (const p of people) {
    const expected = expectedFor(p)
    t.same(await listIds('/v1/customers', p.headers), expected, `${p.role} ${p.teams.length} team(s): list`)
    const search = await ok('POST', '/v1/customers/search', p.headers, { filter: { field: 'tags', op: 'has_any', value: ['acl'] }, limit: 200 })
    t.same(search.data.map((c: { id: string }) => c.id).sort(), expected, `${p.role}: search`)
    if (p.role !== 'support_agent') t.same(await ok('GET', `/v1/segments/${segment.id}/count`, p.headers), { count: expected.length }, `${p.role}: segment count`)
    for (const c of customers) {
      const res = await call('GET', `/v1/customers/${c.id}`, p.headers)
      t.equal(res.statusCode, expected.includes(c.id) ? 200 : 404, `${p.role} GET a customer it ${expected.includes(c.id) ? 'sees' : 'does not see'}`)
    }
  }
  t.same(await listIds('/v1/customers', service), customers.map((c) => c.id).sort(), 'a service token sees everything, unowned customers too')
})

t.test('the relations of the matrix: own, a teammate\'s, a sub-team\'s, another team\'s', async (t) => {
  const sees = (p: Person, c: Owned) => expectedFor(p).includes(c.id)
  t.same([mine, teammates, subTeams, westCustomer].map((c) => sees(rep1, c)), [true, false, false, false], 'a sales rep: its own only')
  t.same([mine, teammates, subTeams, westCustomer].map((c) => sees(support, c)), [true, true, false, false], 'a support agent: its team')
  t.same([mine, teammates, subTeams, westCustomer].map((c) => sees(eastManager, c)), [true, true, true, false], 'a manager: team and sub-teams')
  t.same([mine, teammates, subTeams, westCustomer, unowned].map((c) => sees(director, c)), [true, true, true, true, false], 'the director: every team below sales')
})

t.test('a customer outside your visibility answers 404 on every customer route', async (t) => {
  const other = teammates.id
  const cp = await ok('POST', `/v1/customers/${other}/contact-points`, service, { kind: 'phone', value: '+8613800000001' }, 201)
  const order = await ok('POST', '/v1/orders', service, { customer_id: other, currency: 'CNY', items: [{ product_name: 'Rice', quantity: 1, unit_price: '10.00' }] }, 201)
  // A hidden record named in the body (a merge's duplicate) is refused as a missing one is.
  const routes: Array<[string, string, unknown?, number?]> = [
    ['GET', `/v1/customers/${other}`],
    ['PATCH', `/v1/customers/${other}`, { name: 'x' }],
    ['DELETE', `/v1/customers/${other}`],
    ['POST', `/v1/customers/${other}/restore`],
    ['POST', `/v1/customers/${other}/merge`, { duplicate_id: mine.id }],
    ['POST', `/v1/customers/${mine.id}/merge`, { duplicate_id: other }, 422],
    ['GET', `/v1/customers/${other}/contact-points`],
    ['POST', `/v1/customers/${other}/contact-points`, { kind: 'phone', value: '+8613800000002' }],
    ['PATCH', `/v1/customers/${other}/contact-points/${cp.id}`, { label: 'work' }],
    ['DELETE', `/v1/customers/${other}/contact-points/${cp.id}`],
    ['GET', `/v1/customers/${other}/timeline`],
    ['POST', `/v1/customers/${other}/transfer`, { owner_user_id: rep1.id }],
    ['GET', `/v1/orders/${order.id}`],
  ]
  const MISSING = '01939999-0000-7000-8000-000000000000'
  for (const [method, url, body, status = 404] of routes) {
    const res = await call(method, url, rep1.headers, body)
    const route = `${method} ${url.replace(/[0-9a-f-]{36}/g, ':id')}`
    t.equal(res.statusCode, status, `${route}: ${res.body}`)
    // The answer is the one for an id that does not exist at all: nothing tells them apart.
    const absent = await call(method, url.replaceAll(other, MISSING).replaceAll(order.id, MISSING), rep1.headers, JSON.parse(JSON.stringify(body ?? null).replaceAll(other, MISSING)) ?? undefined)
    t.same({ code: res.json().code, detail: res.json().detail }, { code: absent.json().code, detail: absent.json().detail }, `${route}: as if it did not exist`)
  }
  const still = await ok('GET', `/v1/customers/${other}`, service)
  t.equal(still.archived_at, null, 'and nothing was changed')
  t.equal(still.name, 'Rep 2 customer')
  t.notOk((await listIds('/v1/orders', rep1.headers)).includes(order.id), 'its orders are not listed either')
})

t.test('WITH CHECK: nobody writes a record into an owner or team it cannot see', async (t) => {
  const res = await call('POST', `/v1/customers/${subTeams.id}/transfer`, eastManager.headers, { owner_user_id: null, owning_team_id: west })
  t.equal(res.statusCode, 422, res.body)
  t.equal(res.json().code, 'outside-visibility')
  const giveAway = await call('POST', `/v1/customers/${mine.id}/transfer`, rep1.headers, { owner_user_id: rep2.id })
  t.equal(giveAway.statusCode, 422, 'a rep cannot hand its customer to a teammate (it would no longer see it)')
  // The database refuses it by itself, whatever the route: an insert as rep 1 into the west team.
  const refused = await ctx.db.transaction().execute(async (trx) => {
    await sql`select set_config('crm.acl_user', ${rep1.id}, true), set_config('crm.acl_teams', '', true), set_config('crm.acl_all', '', true)`.execute(trx)
    return sql`insert into customers (name, owner_user_id, owning_team_id) values ('Smuggled', ${repWest.id}, ${west})`.execute(trx).then(() => 'inserted', (err: { code?: string }) => err.code)
  })
  t.equal(refused, '42501', 'insufficient privilege: the new row violates the policy')
  const none = await ctx.db.connection().execute(async (c) => {
    await sql`select set_config('crm.acl_all', '', false), set_config('crm.acl_user', '', false), set_config('crm.acl_teams', '', false)`.execute(c)
    return (await sql<{ n: number }>`select count(*)::int as n from customers`.execute(c)).rows[0]!.n
  })
  t.equal(none, 0, 'a connection with no actor context sees no customer')
})

t.test('transfer: one customer, then everything a departing user owns', async (t) => {
  const moved = await ok('POST', `/v1/customers/${mine.id}/transfer`, eastManager.headers, { owner_user_id: rep2.id })
  t.same(moved, { transferred: 1, owner_user_id: rep2.id, owning_team_id: east })
  t.equal((await call('GET', `/v1/customers/${mine.id}`, rep1.headers)).statusCode, 404, 'the previous owner no longer sees it')
  t.equal((await call('GET', `/v1/customers/${mine.id}`, rep2.headers)).statusCode, 200, 'the new one does')
  mine.owner = rep2.id

  const owned = customers.filter((c) => c.owner === rep2.id).length
  const all = await ok('POST', `/v1/users/${rep2.id}/transfer`, director.headers, { owner_user_id: repWest.id })
  t.same(all, { transferred: owned, owner_user_id: repWest.id, owning_team_id: west })
  for (const c of customers) if (c.owner === rep2.id) Object.assign(c, { owner: repWest.id, team: west })
  t.same(await listIds('/v1/customers', repWest.headers), expectedFor(repWest))
  const audited = await sql<{ n: number }>`select count(*)::int as n from audit_events where entity = 'customers' and route like '%/transfer'`.execute(ctx.ownerDb)
  t.equal(audited.rows[0]!.n, owned + 1, 'every moved customer is audited')

  await ok('DELETE', `/v1/users/${rep2.id}`, service, undefined, 204)
  t.equal((await call('GET', '/v1/customers', rep2.headers)).statusCode, 403, 'an archived user\'s token grants nothing')
})

t.test('service tokens are unchanged; admin no longer implies personal data', async (t) => {
  const admin = await ctx.auth('admin')
  const c = await ok('GET', `/v1/customers/${unowned.id}`, admin)
  t.equal(c.id, unowned.id, 'a service token sees unowned customers')
  const masked = await call('GET', `/v1/customers/${westCustomer.id}?include=contact_points`, admin)
  t.equal(masked.headers['x-pii-masked'], 'true', 'admin alone gets personal data masked')
  const full = await call('GET', `/v1/customers/${westCustomer.id}`, service)
  t.not(full.headers['x-pii-masked'], 'true', 'pii:read is the grant')
})

t.test('purchase figures need the financial grant (or orders:read)', async (t) => {
  const ordersFilter = { filter: { orders: { min_count: 1 } } }
  const metricFilter = { filter: { field: 'order_count', op: 'gte', value: 1 } }
  const reader = await ctx.auth('customers:read segments:read')
  await ok('POST', '/v1/roles', service, { key: 'viewer', name: 'Viewer', permissions: { customers: ['read'] }, visibility: 'all', field_classes: ['personal'] }, 201)
  const viewer = await person('viewer', 'viewer', [])
  for (const [what, res] of [
    ['include=metrics', await call('GET', `/v1/customers/${unowned.id}?include=metrics`, reader)],
    ['an orders condition', await call('POST', '/v1/customers/search', reader, ordersFilter)],
    ['a purchase metric', await call('POST', '/v1/customers/search', reader, metricFilter)],
    ['a segment preview', await call('POST', '/v1/segments/preview', reader, ordersFilter)],
    ['a user whose role has no financial class nor orders:read', await call('POST', '/v1/customers/search', viewer.headers, ordersFilter)],
  ] as const) {
    t.equal(res.statusCode, 403, `${what}: ${res.body}`)
    t.equal(res.json().code, 'insufficient-scope')
  }
  const segment = await ok('POST', '/v1/segments', service, { name: 'Buyers', kind: 'dynamic', filter: ordersFilter.filter }, 201)
  t.equal((await call('GET', `/v1/segments/${segment.id}/count`, reader)).statusCode, 403, 'counting a segment defined by purchases')
  for (const headers of [await ctx.auth('customers:read financial:read'), await ctx.auth('customers:read orders:read'), director.headers]) {
    t.equal((await call('POST', '/v1/customers/search', headers, ordersFilter)).statusCode, 200)
    t.equal((await call('GET', `/v1/customers/${mine.id}?include=metrics`, headers)).statusCode, 200)
  }
  t.equal((await call('POST', '/v1/customers/search', reader, { filter: { field: 'name', op: 'eq', value: 'x' } })).statusCode, 200, 'other filters stay open')
})
