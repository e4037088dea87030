import type { DbExecutor } from '../../db/database.js'
import { constraintProblem } from '../../lib/constraints.js'
import { notFound, problem } from '../../lib/problem.js'
import * as repo from './principals.repository.js'
import type { OwnershipTransferBody, RoleDto, RoleCreateBody, RolePatchBody, TeamCreateBody, TeamPatchBody, UserCreateBody, UserPatchBody } from './principals.schemas.js'

/** A role as the API shows it (its permissions and field classes were checked when written). */
export const toRoleDto = (row: repo.RoleRow): RoleDto => row as unknown as RoleDto

/** The rules of users, teams and roles that the tables cannot say, and ownership transfers. */

const unknown = (pointer: string, message: string) =>
  problem('unknown-principal', 'A user, team or role named in the body does not exist or is archived.', [{ pointer, message }])

async function checkTeams(db: DbExecutor, ids: string[], at: string): Promise<void> {
  const live = await repo.liveTeams(db, ids)
  const i = ids.findIndex((id) => !live.has(id))
  if (i >= 0) throw unknown(`${at}/${i}`, 'is not a live team')
}

async function checkTeam(db: DbExecutor, id: string | null | undefined, at: string): Promise<void> {
  if (id && !(await repo.liveTeams(db, [id])).has(id)) throw unknown(at, 'is not a live team')
}

async function roleIds(db: DbExecutor, keys: string[]): Promise<string[]> {
  const byKey = await repo.roleIdsByKey(db, keys)
  const i = keys.findIndex((k) => !byKey.has(k))
  if (i >= 0) throw unknown(`/roles/${i}`, 'is not a live role')
  return keys.map((k) => byKey.get(k)!)
}

export async function createTeam(db: DbExecutor, body: TeamCreateBody): Promise<repo.TeamRow> {
  await checkTeam(db, body.parent_id, '/parent_id')
  return repo.insertTeam(db, { name: body.name, parent_id: body.parent_id ?? null, description: body.description ?? null })
}

export async function patchTeam(db: DbExecutor, id: string, body: TeamPatchBody, expectedVersion?: number): Promise<repo.TeamRow> {
  await repo.teams.lockForWrite(db, id, expectedVersion)
  await checkTeam(db, body.parent_id, '/parent_id')
  try {
    return await repo.updateTeam(db, id, body)
  } catch (err) {
    // Raised by the trigger crm_teams_no_cycle (teams_check covers a team made its own parent).
    if ((err as { constraint?: string }).constraint === 'teams_no_cycle') throw constraintProblem('teams_check')
    throw err
  }
}

export async function createRole(db: DbExecutor, body: RoleCreateBody): Promise<repo.RoleRow> {
  return repo.insertRole(db, { ...body, description: body.description ?? null, field_classes: body.field_classes ?? [] })
}

export async function patchRole(db: DbExecutor, id: string, body: RolePatchBody, expectedVersion?: number): Promise<repo.RoleRow> {
  await repo.roles.lockForWrite(db, id, expectedVersion)
  return repo.updateRole(db, id, body)
}

export async function archiveRole(db: DbExecutor, id: string, expectedVersion?: number): Promise<void> {
  const row = await repo.roles.lockForWrite(db, id, expectedVersion)
  if (row.builtin) throw problem('builtin-role', 'A default role cannot be archived.')
  await repo.roles.archive(db, id, expectedVersion)
}

export async function createUser(db: DbExecutor, body: UserCreateBody): Promise<repo.UserWithLinks> {
  const teamIds = body.team_ids ?? []
  await checkTeams(db, teamIds, '/team_ids')
  await checkTeam(db, body.primary_team_id, '/primary_team_id')
  const roles = await roleIds(db, body.roles ?? [])
  const id = await repo.insertUser(db, { subject: body.subject, display_name: body.display_name, primary_team_id: body.primary_team_id ?? teamIds[0] ?? null })
  await repo.setMemberships(db, id, teamIds)
  await repo.setUserRoles(db, id, roles)
  return (await repo.findUser(db, id))!
}

export async function patchUser(db: DbExecutor, id: string, body: UserPatchBody, expectedVersion?: number): Promise<repo.UserWithLinks> {
  await repo.users.lockForWrite(db, id, expectedVersion)
  if (body.team_ids) {
    await checkTeams(db, body.team_ids, '/team_ids')
    await repo.setMemberships(db, id, body.team_ids)
  }
  if (body.roles) await repo.setUserRoles(db, id, await roleIds(db, body.roles))
  await checkTeam(db, body.primary_team_id, '/primary_team_id')
  const changes: Parameters<typeof repo.updateUser>[2] = {}
  if (body.display_name !== undefined) changes.display_name = body.display_name
  if (body.primary_team_id !== undefined) changes.primary_team_id = body.primary_team_id
  await repo.updateUser(db, id, changes)
  return (await repo.findUser(db, id))!
}

/** Where transferred records go: the owner, and the team given or else the owner's primary team. */
async function destination(db: DbExecutor, body: OwnershipTransferBody) {
  let team = body.owning_team_id
  if (body.owner_user_id) {
    const owner = await repo.findUser(db, body.owner_user_id)
    if (!owner || owner.archived_at !== null) throw unknown('/owner_user_id', 'is not a live user')
    if (team === undefined) team = owner.primary_team_id
  }
  await checkTeam(db, team, '/owning_team_id')
  return { owner_user_id: body.owner_user_id, owning_team_id: team ?? null }
}

/** Transfers one customer (404 when the actor does not see it). */
export async function transferCustomer(db: DbExecutor, customerId: string, body: OwnershipTransferBody) {
  // The customer in the path answers first: an unseen one is a 404 whatever the body names.
  if (!(await repo.customerVisible(db, customerId))) throw notFound('customer')
  const to = await destination(db, body)
  const moved = await repo.transferCustomers(db, { id: customerId }, to)
  if (moved.length === 0) throw notFound('customer')
  return { transferred: moved.length, ...to }
}

/** Transfers every customer a user owns (those the actor sees), e.g. when the user leaves. */
export async function transferUserCustomers(db: DbExecutor, userId: string, body: OwnershipTransferBody) {
  if (!(await repo.findUser(db, userId))) throw notFound('user')
  const to = await destination(db, body)
  const moved = await repo.transferCustomers(db, { owner_user_id: userId }, to)
  return { transferred: moved.length, ...to }
}
