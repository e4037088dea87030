import { type Selectable, sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { Roles, Teams, Users } from '../../db/schema.js'
import { versionedTable, whereArchived } from '../../db/versioned.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'
import type { ArchivedFilter } from '../../lib/schema.js'

/** Users, teams, roles and their links: the principals' SQL, and what resolving a token reads. */
export type TeamRow = Selectable<Teams>
export type RoleRow = Selectable<Roles>
export type UserRow = Selectable<Users>
export type UserWithLinks = UserRow & { team_ids: string[]; roles: string[] }

export const teams = versionedTable('teams', 'team')
export const roles = versionedTable('roles', 'role')
export const users = versionedTable('users', 'user')

// --- resolving a token (src/modules/principals/principals.access.ts)

export async function userBySubject(db: DbExecutor, subject: string) {
  return db.selectFrom('users').select(['id', 'primary_team_id', 'archived_at']).where('subject', '=', subject).executeTakeFirst()
}

export async function rolesOfUser(db: DbExecutor, userId: string) {
  return db.selectFrom('roles').innerJoin('user_roles', 'user_roles.role_id', 'roles.id')
    .select(['roles.permissions', 'roles.visibility', 'roles.field_classes'])
    .where('user_roles.user_id', '=', userId).where('roles.archived_at', 'is', null).execute()
}

export async function rolesByKey(db: DbExecutor, keys: string[]) {
  if (keys.length === 0) return []
  return db.selectFrom('roles').select(['permissions', 'visibility', 'field_classes'])
    .where('key', 'in', keys).where('archived_at', 'is', null).execute()
}

export async function teamsOfUser(db: DbExecutor, userId: string): Promise<string[]> {
  const rows = await db.selectFrom('team_memberships').innerJoin('teams', 'teams.id', 'team_memberships.team_id')
    .select('teams.id').where('team_memberships.user_id', '=', userId).where('teams.archived_at', 'is', null).execute()
  return rows.map((r) => r.id)
}

/** The teams and every team below them (archived teams and what hangs below them excluded). */
export async function teamsWithSubteams(db: DbExecutor, roots: readonly string[]): Promise<string[]> {
  if (roots.length === 0) return []
  const { rows } = await sql<{ id: string }>`
    with recursive down as (
      select id from teams where id = any(${sql.val(roots)}::uuid[]) and archived_at is null
      union
      select t.id from teams t join down on t.parent_id = down.id where t.archived_at is null
    ) select id from down`.execute(db)
  return rows.map((r) => r.id)
}

// --- teams

export async function insertTeam(db: DbExecutor, row: { name: string; parent_id: string | null; description: string | null }): Promise<TeamRow> {
  return db.insertInto('teams').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function updateTeam(db: DbExecutor, id: string, changes: Partial<Pick<TeamRow, 'name' | 'parent_id' | 'description'>>): Promise<TeamRow> {
  return db.updateTable('teams').set(changes).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
}

export async function listTeams(db: DbExecutor, f: { parent_id?: string | undefined; archived: ArchivedFilter }, page: PageRequest): Promise<TeamRow[]> {
  const query = db.selectFrom('teams').selectAll().$if(!!f.parent_id, (qb) => qb.where('parent_id', '=', f.parent_id!))
  return keysetPage(whereArchived(query, 'teams', f.archived), page, 'teams').execute()
}

// --- roles

export interface RoleWrite {
  key?: string
  name?: string
  description?: string | null
  permissions?: object
  visibility?: string
  field_classes?: string[]
}

const roleValues = (row: RoleWrite) => ({
  ...row,
  ...(row.permissions ? { permissions: JSON.stringify(row.permissions) } : {}),
})

export async function insertRole(db: DbExecutor, row: RoleWrite & { key: string; name: string; visibility: string }): Promise<RoleRow> {
  return db.insertInto('roles').values(roleValues(row) as never).returningAll().executeTakeFirstOrThrow()
}

export async function updateRole(db: DbExecutor, id: string, changes: RoleWrite): Promise<RoleRow> {
  return db.updateTable('roles').set(roleValues(changes) as never).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
}

export async function listRoles(db: DbExecutor, f: { archived: ArchivedFilter }, page: PageRequest): Promise<RoleRow[]> {
  return keysetPage(whereArchived(db.selectFrom('roles').selectAll(), 'roles', f.archived), page, 'roles').execute()
}

/** The ids of the live roles with these keys, by key. */
export async function roleIdsByKey(db: DbExecutor, keys: string[]): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map()
  const rows = await db.selectFrom('roles').select(['id', 'key']).where('key', 'in', keys).where('archived_at', 'is', null).execute()
  return new Map(rows.map((r) => [r.key, r.id]))
}

// --- users

const withLinks = (db: DbExecutor) =>
  db.selectFrom('users').selectAll('users').select([
    sql<string[]>`array(select m.team_id from team_memberships m where m.user_id = users.id order by m.team_id)`.as('team_ids'),
    sql<string[]>`array(select r.key from user_roles ur join roles r on r.id = ur.role_id where ur.user_id = users.id order by r.key)`.as('roles'),
  ])

export async function findUser(db: DbExecutor, id: string): Promise<UserWithLinks | undefined> {
  return withLinks(db).where('users.id', '=', id).executeTakeFirst()
}

export async function listUsers(db: DbExecutor, f: { team_id?: string | undefined; archived: ArchivedFilter }, page: PageRequest): Promise<UserWithLinks[]> {
  const query = withLinks(db).$if(!!f.team_id, (qb) => qb.where(sql<boolean>`exists (select 1 from team_memberships m where m.user_id = users.id and m.team_id = ${f.team_id!})`))
  return keysetPage(whereArchived(query, 'users', f.archived), page, 'users').execute()
}

export async function insertUser(db: DbExecutor, row: { subject: string; display_name: string; primary_team_id: string | null }): Promise<string> {
  return (await db.insertInto('users').values(row).returning('id').executeTakeFirstOrThrow()).id
}

export async function updateUser(db: DbExecutor, id: string, changes: Partial<Pick<UserRow, 'display_name' | 'primary_team_id'>>): Promise<void> {
  if (Object.keys(changes).length > 0) await db.updateTable('users').set(changes).where('id', '=', id).execute()
}

/** Makes the user's memberships exactly these teams (only the differences are written, so audited). */
export async function setMemberships(db: DbExecutor, userId: string, teamIds: string[]): Promise<void> {
  await db.deleteFrom('team_memberships').where('user_id', '=', userId)
    .$if(teamIds.length > 0, (qb) => qb.where('team_id', 'not in', teamIds)).execute()
  if (teamIds.length > 0) {
    await db.insertInto('team_memberships').values(teamIds.map((team_id) => ({ user_id: userId, team_id })))
      .onConflict((oc) => oc.columns(['user_id', 'team_id']).doNothing()).execute()
  }
}

/** Makes the user's roles exactly these (by id). */
export async function setUserRoles(db: DbExecutor, userId: string, roleIds: string[]): Promise<void> {
  await db.deleteFrom('user_roles').where('user_id', '=', userId)
    .$if(roleIds.length > 0, (qb) => qb.where('role_id', 'not in', roleIds)).execute()
  if (roleIds.length > 0) {
    await db.insertInto('user_roles').values(roleIds.map((role_id) => ({ user_id: userId, role_id })))
      .onConflict((oc) => oc.columns(['user_id', 'role_id']).doNothing()).execute()
  }
}

/** The ids among these that are live teams. */
export async function liveTeams(db: DbExecutor, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db.selectFrom('teams').select('id').where('id', 'in', ids).where('archived_at', 'is', null).execute()
  return new Set(rows.map((r) => r.id))
}

// --- ownership transfer

/** Whether the actor sees the customer (row-level security decides). */
export async function customerVisible(db: DbExecutor, id: string): Promise<boolean> {
  return (await db.selectFrom('customers').select('id').where('id', '=', id).executeTakeFirst()) !== undefined
}

/**
 * Gives customers a new owner and team: one customer, or every customer a user owns. Only the
 * rows the actor sees are moved (row-level security), and the policy's WITH CHECK refuses a new
 * owner and team the actor could not see. Their interactions, orders and feedback follow.
 */
export async function transferCustomers(db: DbExecutor, where: { id: string } | { owner_user_id: string }, to: { owner_user_id: string | null; owning_team_id: string | null }): Promise<string[]> {
  const rows = await db.updateTable('customers').set(to)
    .$if('id' in where, (qb) => qb.where('id', '=', (where as { id: string }).id))
    .$if('owner_user_id' in where, (qb) => qb.where('owner_user_id', '=', (where as { owner_user_id: string }).owner_user_id))
    .returning('id').execute()
  return rows.map((r) => r.id)
}
