import { Type, type Static } from 'typebox'
import { ArchivedQuery, Nullable, StringEnum, Timestamp, Uuid, ref } from '../../lib/schema.js'
import { PageQuery, pageEnvelope } from '../../lib/pagination.js'

export const VISIBILITY_VALUES = ['own', 'team', 'team_and_subteams', 'all'] as const
export const FIELD_CLASSES = ['personal', 'financial'] as const
/** The resources a role grants actions on; an action on one is the scope `<resource>:<action>`. */
export const ROLE_RESOURCES = ['customers', 'orders', 'interactions', 'feedback', 'segments', 'analytics', 'audit', 'events', 'webhooks', 'principals'] as const
export const ROLE_ACTIONS = ['read', 'write'] as const

const TEAM_ID = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a01'
const USER_ID = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0b01'
const ROLE_ID = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0c01'
const AT = '2026-12-05T03:00:00.000Z'
const TEAM_EXAMPLE = { id: TEAM_ID, name: 'Sales East', parent_id: null, description: null, version: 1, created_at: AT, updated_at: AT, archived_at: null }
const ROLE_EXAMPLE = {
  id: ROLE_ID, key: 'sales_rep', name: 'Sales representative', description: 'The customers they own.', permissions: { customers: ['read', 'write'] },
  visibility: 'own', field_classes: ['personal'], builtin: true, version: 1, created_at: AT, updated_at: AT, archived_at: null,
}
const USER_EXAMPLE = {
  id: USER_ID, subject: 'auth0|5f7c8ec7c33c6c004bbafe82', display_name: 'Wang Fang', primary_team_id: TEAM_ID, team_ids: [TEAM_ID], roles: ['sales_rep'],
  version: 1, created_at: AT, updated_at: AT, archived_at: null,
}
const versioned = {
  version: Type.Integer({ description: 'Optimistic concurrency version; also the ETag' }),
  created_at: Timestamp(),
  updated_at: Timestamp(),
  archived_at: Nullable(Timestamp({ description: 'Set when archived; archived records are hidden from lists unless asked for' })),
}

const teamName = Type.String({ minLength: 1, maxLength: 200, example: 'Sales East' })
const teamParent = Nullable(Uuid({ description: 'The team this one is inside; null for a top-level team. A team cannot be inside itself or its own sub-teams' }))
const description = Nullable(Type.String({ maxLength: 2000, example: 'Shanghai and Hangzhou accounts' }))

export const Team = Type.Object(
  { id: Uuid(), name: Type.String(), parent_id: Nullable(Uuid()), description: Nullable(Type.String()), ...versioned },
  {
    $id: 'Team', description: 'A team (department); teams sit inside teams. A manager\'s visibility team_and_subteams covers the teams below theirs',
    example: TEAM_EXAMPLE,
  },
)
export const TeamCreate = Type.Object(
  { name: teamName, parent_id: Type.Optional(teamParent), description: Type.Optional(description) },
  { $id: 'TeamCreate', additionalProperties: false, description: 'A new team', example: { name: 'Sales East', description: 'Shanghai and Hangzhou accounts' } },
)
export const TeamPatch = Type.Object(
  { name: Type.Optional(teamName), parent_id: Type.Optional(teamParent), description: Type.Optional(description) },
  { $id: 'TeamPatch', additionalProperties: false, minProperties: 1, description: 'Changes to a team (JSON Merge Patch)', example: { parent_id: null } },
)
export const TeamList = Type.Object(pageEnvelope(ref(Team), '').properties, {
  $id: 'TeamList', description: 'A page of teams, oldest first',
  example: { data: [TEAM_EXAMPLE], next_cursor: null },
})
export const TeamListQuery = Type.Object(
  { ...PageQuery, parent_id: Type.Optional(Uuid({ description: 'Only the teams directly inside this one' })), archived: ArchivedQuery('teams') },
  { additionalProperties: false },
)

const actions = Type.Array(StringEnum(ROLE_ACTIONS), { uniqueItems: true, maxItems: 2 })
const permissions = Type.Object(Object.fromEntries(ROLE_RESOURCES.map((r) => [r, Type.Optional(actions)])) as Record<(typeof ROLE_RESOURCES)[number], ReturnType<typeof Type.Optional<typeof actions>>>, {
  additionalProperties: false,
  description: 'Actions per resource: each is the scope <resource>:<action> for the role\'s users (principals: /v1/users, /v1/teams, /v1/roles)',
  example: { customers: ['read', 'write'], orders: ['read'] },
})
const visibility = StringEnum(VISIBILITY_VALUES, {
  description: 'Which customers (and their interactions, orders, feedback) the role sees: own (owner is the user), team (owning team is one of the user\'s), team_and_subteams (and the teams below), all. A user with several roles sees the widest',
})
const fieldClasses = Type.Array(StringEnum(FIELD_CLASSES), {
  uniqueItems: true, maxItems: 2,
  description: 'Field classes granted: personal (phone, email, address, birthday unmasked; the scope pii:read), financial (spend, order counts, purchase filters; the scope financial:read)',
  example: ['personal'],
})
const roleKey = Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', maxLength: 63, description: 'Stable key (token claims name roles by it)', example: 'sales_rep' })
const roleName = Type.String({ minLength: 1, maxLength: 200, example: 'Sales representative' })

export const Role = Type.Object(
  {
    id: Uuid(), key: Type.String(), name: Type.String(), description: Nullable(Type.String()),
    permissions: Type.Record(Type.String(), Type.Array(Type.String())), visibility: StringEnum(VISIBILITY_VALUES),
    field_classes: Type.Array(StringEnum(FIELD_CLASSES)),
    builtin: Type.Boolean({ description: 'One of the default roles; it can be changed but not archived' }),
    ...versioned,
  },
  {
    $id: 'Role', description: 'What a role\'s users may do (actions per resource), which customers they see and which field classes',
    example: ROLE_EXAMPLE,
  },
)
export const RoleCreate = Type.Object(
  { key: roleKey, name: roleName, description: Type.Optional(description), permissions, visibility, field_classes: Type.Optional(fieldClasses) },
  {
    $id: 'RoleCreate', additionalProperties: false, description: 'A new role',
    example: { key: 'key_account_manager', name: 'Key account manager', permissions: { customers: ['read', 'write'] }, visibility: 'team', field_classes: ['personal', 'financial'] },
  },
)
export const RolePatch = Type.Object(
  { name: Type.Optional(roleName), description: Type.Optional(description), permissions: Type.Optional(permissions), visibility: Type.Optional(visibility), field_classes: Type.Optional(fieldClasses) },
  { $id: 'RolePatch', additionalProperties: false, minProperties: 1, description: 'Changes to a role (JSON Merge Patch; permissions is replaced whole)', example: { visibility: 'team_and_subteams' } },
)
export const RoleList = Type.Object(pageEnvelope(ref(Role), '').properties, {
  $id: 'RoleList', description: 'A page of roles, oldest first (the default roles first)', example: { data: [ROLE_EXAMPLE], next_cursor: null },
})
export const RoleListQuery = Type.Object({ ...PageQuery, archived: ArchivedQuery('roles') }, { additionalProperties: false })

const subject = Type.String({ minLength: 1, maxLength: 200, description: 'The `sub` claim of the user\'s tokens', example: 'auth0|5f7c8ec7c33c6c004bbafe82' })
const displayName = Type.String({ minLength: 1, maxLength: 200, example: 'Wang Fang' })
const teamIds = Type.Array(Uuid(), { uniqueItems: true, maxItems: 100, description: 'The teams the user is a member of' })
const roleKeys = Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', maxLength: 63 }), { uniqueItems: true, maxItems: 50, description: 'The keys of the user\'s roles', example: ['sales_rep'] })
const primaryTeam = Nullable(Uuid({ description: 'The team the customers the user creates belong to; default: the first of team_ids' }))

export const User = Type.Object(
  {
    id: Uuid(), subject: Type.String(), display_name: Type.String(), primary_team_id: Nullable(Uuid()),
    team_ids: Type.Array(Uuid()), roles: Type.Array(Type.String()), ...versioned,
  },
  {
    $id: 'User', description: 'A person who signs in: tokens whose sub is the subject act as this user, with its roles and teams. Archiving a user (a departure) makes its tokens grant nothing',
    example: USER_EXAMPLE,
  },
)
export const UserCreate = Type.Object(
  { subject, display_name: displayName, primary_team_id: Type.Optional(primaryTeam), team_ids: Type.Optional(teamIds), roles: Type.Optional(roleKeys) },
  { $id: 'UserCreate', additionalProperties: false, description: 'A new user', example: { subject: 'auth0|5f7c8ec7c33c6c004bbafe82', display_name: 'Wang Fang', roles: ['sales_rep'] } },
)
export const UserPatch = Type.Object(
  { display_name: Type.Optional(displayName), primary_team_id: Type.Optional(primaryTeam), team_ids: Type.Optional(teamIds), roles: Type.Optional(roleKeys) },
  { $id: 'UserPatch', additionalProperties: false, minProperties: 1, description: 'Changes to a user (JSON Merge Patch; team_ids and roles are replaced whole)', example: { roles: ['sales_rep', 'support_agent'] } },
)
export const UserList = Type.Object(pageEnvelope(ref(User), '').properties, {
  $id: 'UserList', description: 'A page of users, oldest first', example: { data: [USER_EXAMPLE], next_cursor: null },
})
export const UserListQuery = Type.Object(
  { ...PageQuery, team_id: Type.Optional(Uuid({ description: 'Only the members of this team' })), archived: ArchivedQuery('users') },
  { additionalProperties: false },
)

const owner = Nullable(Uuid({ description: 'The new owner (a user); null: none' }))
const owningTeam = Nullable(Uuid({ description: 'The new owning team; absent: the new owner\'s primary team' }))
export const OwnershipTransfer = Type.Object(
  { owner_user_id: owner, owning_team_id: Type.Optional(owningTeam) },
  {
    $id: 'OwnershipTransfer', additionalProperties: false,
    description: 'Who the records go to. Their interactions, orders and feedback follow them. An owner or team outside your visibility is refused (422 outside-visibility)',
    example: { owner_user_id: USER_ID, owning_team_id: TEAM_ID },
  },
)
export const OwnershipTransferred = Type.Object(
  { transferred: Type.Integer({ description: 'How many customers changed hands', example: 12 }), owner_user_id: Nullable(Uuid()), owning_team_id: Nullable(Uuid()) },
  { $id: 'OwnershipTransferred', description: 'The result of a transfer', example: { transferred: 12, owner_user_id: USER_ID, owning_team_id: TEAM_ID } },
)

export type RoleDto = Static<typeof Role>
export type TeamCreateBody = Static<typeof TeamCreate>
export type TeamPatchBody = Static<typeof TeamPatch>
export type RoleCreateBody = Static<typeof RoleCreate>
export type RolePatchBody = Static<typeof RolePatch>
export type UserCreateBody = Static<typeof UserCreate>
export type UserPatchBody = Static<typeof UserPatch>
export type OwnershipTransferBody = Static<typeof OwnershipTransfer>

export const principalSchemas = [Team, TeamCreate, TeamPatch, TeamList, Role, RoleCreate, RolePatch, RoleList, User, UserCreate, UserPatch, UserList, OwnershipTransfer, OwnershipTransferred]
