import t from 'tap'
import { setup } from '../../helpers/app.js'

/** /v1/teams, /v1/roles, /v1/users: the CRUD conventions and the rules of the principals. */
const ctx = await setup()
const admin = await ctx.auth()

const call = (method: string, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  ctx.app.inject({ method: method as 'GET', url, headers: { ...admin, ...headers }, ...(payload === undefined ? {} : { payload: payload as object }) })

t.test('teams: create inside another, ETag and If-Match, no cycles, archive and restore', async (t) => {
  const root = await call('POST', '/v1/teams', { name: 'Sales' })
  t.equal(root.statusCode, 201)
  t.equal(root.headers.location, `/v1/teams/${root.json().id}`)
  t.equal(root.headers.etag, '"1"')
  const child = (await call('POST', '/v1/teams', { name: 'East', parent_id: root.json().id })).json()
  const grandchild = (await call('POST', '/v1/teams', { name: 'East key', parent_id: child.id })).json()
  const cycle = await call('PATCH', `/v1/teams/${root.json().id}`, { parent_id: grandchild.id })
  t.equal(cycle.statusCode, 422, cycle.body)
  t.equal(cycle.json().code, 'team-cycle')
  t.equal((await call('PATCH', `/v1/teams/${child.id}`, { parent_id: child.id })).json().code, 'team-cycle', 'nor inside itself')
  t.equal((await call('PATCH', `/v1/teams/${child.id}`, { name: 'East 2' }, { 'if-match': '"7"' })).statusCode, 412)
  const renamed = await call('PATCH', `/v1/teams/${child.id}`, { name: 'East 2' }, { 'if-match': '"1"' })
  t.equal(renamed.statusCode, 200)
  t.equal(renamed.json().version, 2)
  t.equal((await call('POST', '/v1/teams', { name: 'Orphan', parent_id: '01939999-0000-7000-8000-000000000000' })).json().code, 'unknown-principal')
  t.equal((await call('DELETE', `/v1/teams/${grandchild.id}`)).statusCode, 204)
  t.notOk((await call('GET', `/v1/teams?parent_id=${child.id}`)).json().data.length, 'archived teams leave the list')
  t.equal((await call('POST', `/v1/teams/${grandchild.id}/restore`)).json().archived_at, null)
  t.equal((await call('GET', `/v1/teams/${child.id}`)).json().name, 'East 2')
})

t.test('roles: the default roles exist; keys are unique; a default role cannot be archived', async (t) => {
  const list = (await call('GET', '/v1/roles')).json()
  t.same(list.data.map((r: { key: string }) => r.key).sort(), ['admin', 'auditor', 'integration', 'marketing_analyst', 'sales_manager', 'sales_rep', 'support_agent'])
  const admin = list.data.find((r: { key: string }) => r.key === 'admin')
  t.same(admin.field_classes, [], 'admin does not imply personal or financial data')
  t.equal((await call('DELETE', `/v1/roles/${admin.id}`)).json().code, 'builtin-role')
  const created = await call('POST', '/v1/roles', { key: 'viewer', name: 'Viewer', permissions: { customers: ['read'] }, visibility: 'team' }, { 'idempotency-key': 'role-viewer' })
  t.equal(created.statusCode, 201, created.body)
  const replay = await call('POST', '/v1/roles', { key: 'viewer', name: 'Viewer', permissions: { customers: ['read'] }, visibility: 'team' }, { 'idempotency-key': 'role-viewer' })
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.equal((await call('POST', '/v1/roles', { key: 'viewer', name: 'Again', permissions: {}, visibility: 'own' })).json().code, 'role-key-taken')
  t.equal((await call('POST', '/v1/roles', { key: 'bad', name: 'Bad', permissions: { customers: ['delete'] }, visibility: 'own' })).statusCode, 400)
  t.equal((await call('DELETE', `/v1/roles/${created.json().id}`)).statusCode, 204)
})

t.test('users: teams and roles by key, replaced whole; subjects are unique; changes are audited', async (t) => {
  const team = (await call('POST', '/v1/teams', { name: 'Support' })).json()
  const res = await call('POST', '/v1/users', { subject: 'idp|42', display_name: 'Zhao Lei', team_ids: [team.id], roles: ['support_agent'] })
  t.equal(res.statusCode, 201, res.body)
  const user = res.json()
  t.match(user, { subject: 'idp|42', primary_team_id: team.id, team_ids: [team.id], roles: ['support_agent'], version: 1 })
  t.equal((await call('POST', '/v1/users', { subject: 'idp|42', display_name: 'Twin' })).json().code, 'subject-taken')
  t.equal((await call('POST', '/v1/users', { subject: 'idp|43', display_name: 'X', roles: ['nope'] })).json().code, 'unknown-principal')
  const patched = (await call('PATCH', `/v1/users/${user.id}`, { roles: ['sales_rep', 'support_agent'], team_ids: [] })).json()
  t.same({ roles: patched.roles, team_ids: patched.team_ids }, { roles: ['sales_rep', 'support_agent'], team_ids: [] })
  t.same((await call('GET', `/v1/users?team_id=${team.id}`)).json().data, [], 'no longer a member')
  const audited = await ctx.ownerDb.selectFrom('audit_events').select('entity').where('entity', 'in', ['users', 'user_roles', 'team_memberships']).execute()
  t.ok(audited.length >= 5, 'the user and its links are audited')
  t.equal((await call('GET', '/v1/users', undefined, await ctx.auth('customers:read'))).statusCode, 403, 'principals:read is needed')
})
