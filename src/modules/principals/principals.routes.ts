import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { ifMatchVersion, replyNotModified, setEtag } from '../../lib/etag.js'
import { pageRequest, toPage, type SortKey } from '../../lib/pagination.js'
import { notFound } from '../../lib/problem.js'
import { IdParams, ref, READ_ERRORS, WRITE_ERRORS } from '../../lib/schema.js'
import * as repo from './principals.repository.js'
import * as service from './principals.service.js'
import {
  OwnershipTransfer, OwnershipTransferred, Role, RoleCreate, RoleList, RoleListQuery, RolePatch, Team, TeamCreate, TeamList, TeamListQuery, TeamPatch,
  User, UserCreate, UserList, UserListQuery, UserPatch, principalSchemas,
} from './principals.schemas.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The token-to-principal resolver (src/modules/principals/principals.access.ts); clear() after a principal changes. */
    principals: { clear(): void }
  }
}

const tags = ['access']
const OLDEST_FIRST: SortKey[] = [{ field: 'created_at', desc: false, type: 'timestamp' }]
const archivedOf = (q: { archived?: 'false' | 'true' | 'all' | undefined }) => q.archived ?? 'false'

/** A principal's answer with its ETag. */
function versioned<T extends { version: number }>(reply: FastifyReply, row: T): T {
  setEtag(reply, row.version)
  return row
}

/**
 * The three principal resources follow the same CRUD shape (API.md § Writing); what differs is
 * their body and the rules in principals.service.ts.
 */
const principalRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of principalSchemas) app.addSchema(schema)
  // A principal's change takes effect for this process's next request, not after the cache's ttl.
  app.addHook('onResponse', async (request) => {
    if (request.method !== 'GET') app.principals.clear()
  })

  // --- teams
  app.post('/teams', {
    config: { scope: 'principals:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createTeam', tags, summary: 'Create a team',
      description: 'A team, optionally inside another (parent_id). Members see its customers when their role\'s visibility is team; managers of a team above it with team_and_subteams.',
      body: ref(TeamCreate), response: { 201: ref(Team), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const row = await service.createTeam(request.db, request.body)
    reply.code(201).header('location', `/v1/teams/${row.id}`)
    return versioned(reply, row)
  })

  app.get('/teams', {
    config: { scope: 'principals:read' },
    schema: {
      operationId: 'listTeams', tags, summary: 'List teams', description: 'Cursor-paginated, oldest first; parent_id lists the teams directly inside one.',
      querystring: TeamListQuery, response: { 200: ref(TeamList), ...READ_ERRORS },
    },
  }, async (request) => {
    const page = pageRequest(request.query, OLDEST_FIRST)
    return toPage(await repo.listTeams(request.db, { parent_id: request.query.parent_id, archived: archivedOf(request.query) }, page), page, (r) => r)
  })

  app.get('/teams/:id', {
    config: { scope: 'principals:read' },
    schema: {
      operationId: 'getTeam', tags, summary: 'Get a team', description: 'The team and its ETag; If-None-Match with the current ETag answers 304.',
      params: IdParams, response: { 200: ref(Team), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const row = await repo.teams.find(request.db, request.params.id)
    if (!row) throw notFound('team')
    if (replyNotModified(request, reply, row.version)) return reply
    return versioned(reply, row)
  })

  app.patch('/teams/:id', {
    config: { scope: 'principals:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateTeam', tags, summary: 'Update a team (JSON Merge Patch)',
      description: 'name, parent_id (moving the team and its sub-teams; a parent inside the team answers 422 team-cycle) and description. With If-Match, a stale ETag answers 412.',
      params: IdParams, body: ref(TeamPatch), response: { 200: ref(Team), ...WRITE_ERRORS },
    },
  }, async (request, reply) => versioned(reply, await service.patchTeam(request.db, request.params.id, request.body, ifMatchVersion(request))))

  app.delete('/teams/:id', {
    config: { scope: 'principals:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'deleteTeam', tags, summary: 'Archive a team',
      description: 'Its members stop seeing its customers through it (and through it, its sub-teams); the customers keep their owning team until transferred. Archiving an archived team changes nothing.',
      params: IdParams, response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.teams.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/teams/:id/restore', {
    config: { scope: 'principals:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreTeam', tags, summary: 'Restore an archived team', description: 'Restoring a live team changes nothing. With If-Match, a stale ETag answers 412.',
      params: IdParams, response: { 200: ref(Team), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.teams.restore(request.db, request.params.id, ifMatchVersion(request))
    return versioned(reply, (await repo.teams.find(request.db, request.params.id))!)
  })

  // --- roles
  app.post('/roles', {
    config: { scope: 'principals:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createRole', tags, summary: 'Create a role',
      description: 'Actions per resource, a visibility and field classes. The default roles (admin, sales_manager, sales_rep, support_agent, marketing_analyst, auditor, integration) exist already.',
      body: ref(RoleCreate), response: { 201: ref(Role), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const row = await service.createRole(request.db, request.body)
    reply.code(201).header('location', `/v1/roles/${row.id}`)
    return versioned(reply, service.toRoleDto(row))
  })

  app.get('/roles', {
    config: { scope: 'principals:read' },
    schema: {
      operationId: 'listRoles', tags, summary: 'List roles', description: 'Cursor-paginated, oldest first (the default roles first).',
      querystring: RoleListQuery, response: { 200: ref(RoleList), ...READ_ERRORS },
    },
  }, async (request) => {
    const page = pageRequest(request.query, OLDEST_FIRST)
    return toPage(await repo.listRoles(request.db, { archived: archivedOf(request.query) }, page), page, service.toRoleDto)
  })

  app.get('/roles/:id', {
    config: { scope: 'principals:read' },
    schema: {
      operationId: 'getRole', tags, summary: 'Get a role', description: 'The role and its ETag; If-None-Match with the current ETag answers 304.',
      params: IdParams, response: { 200: ref(Role), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const row = await repo.roles.find(request.db, request.params.id)
    if (!row) throw notFound('role')
    if (replyNotModified(request, reply, row.version)) return reply
    return versioned(reply, service.toRoleDto(row))
  })

  app.patch('/roles/:id', {
    config: { scope: 'principals:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateRole', tags, summary: 'Update a role (JSON Merge Patch)',
      description: 'Takes effect for the role\'s users at their next request (within a few seconds on other instances). With If-Match, a stale ETag answers 412.',
      params: IdParams, body: ref(RolePatch), response: { 200: ref(Role), ...WRITE_ERRORS },
    },
  }, async (request, reply) => versioned(reply, service.toRoleDto(await service.patchRole(request.db, request.params.id, request.body, ifMatchVersion(request)))))

  app.delete('/roles/:id', {
    config: { scope: 'principals:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'deleteRole', tags, summary: 'Archive a role',
      description: 'Its users lose what it granted. A default role answers 422 builtin-role. Archiving an archived role changes nothing.',
      params: IdParams, response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.archiveRole(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/roles/:id/restore', {
    config: { scope: 'principals:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreRole', tags, summary: 'Restore an archived role', description: 'Restoring a live role changes nothing. With If-Match, a stale ETag answers 412.',
      params: IdParams, response: { 200: ref(Role), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.roles.restore(request.db, request.params.id, ifMatchVersion(request))
    return versioned(reply, service.toRoleDto((await repo.roles.find(request.db, request.params.id))!))
  })

  // --- users
  app.post('/users', {
    config: { scope: 'principals:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createUser', tags, summary: 'Create a user',
      description: 'Tokens whose sub is the subject act as this user from then on: its roles\' scopes and visibility replace the token\'s scopes.',
      body: ref(UserCreate), response: { 201: ref(User), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const row = await service.createUser(request.db, request.body)
    reply.code(201).header('location', `/v1/users/${row.id}`)
    return versioned(reply, row)
  })

  app.get('/users', {
    config: { scope: 'principals:read' },
    schema: {
      operationId: 'listUsers', tags, summary: 'List users', description: 'Cursor-paginated, oldest first; team_id lists a team\'s members.',
      querystring: UserListQuery, response: { 200: ref(UserList), ...READ_ERRORS },
    },
  }, async (request) => {
    const page = pageRequest(request.query, OLDEST_FIRST)
    return toPage(await repo.listUsers(request.db, { team_id: request.query.team_id, archived: archivedOf(request.query) }, page), page, (r) => r)
  })

  app.get('/users/:id', {
    config: { scope: 'principals:read' },
    schema: {
      operationId: 'getUser', tags, summary: 'Get a user', description: 'The user with its teams and roles, and its ETag; If-None-Match with the current ETag answers 304.',
      params: IdParams, response: { 200: ref(User), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const row = await repo.findUser(request.db, request.params.id)
    if (!row) throw notFound('user')
    if (replyNotModified(request, reply, row.version)) return reply
    return versioned(reply, row)
  })

  app.patch('/users/:id', {
    config: { scope: 'principals:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateUser', tags, summary: 'Update a user (JSON Merge Patch)',
      description: 'display_name, primary_team_id, and team_ids and roles (each replaced whole). With If-Match, a stale ETag answers 412.',
      params: IdParams, body: ref(UserPatch), response: { 200: ref(User), ...WRITE_ERRORS },
    },
  }, async (request, reply) => versioned(reply, await service.patchUser(request.db, request.params.id, request.body, ifMatchVersion(request))))

  app.delete('/users/:id', {
    config: { scope: 'principals:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'deleteUser', tags, summary: 'Archive a user (a departure)',
      description: 'Its tokens grant nothing from then on. Its customers keep their owner until transferred (transferUserCustomers). Archiving an archived user changes nothing.',
      params: IdParams, response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.users.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/users/:id/restore', {
    config: { scope: 'principals:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreUser', tags, summary: 'Restore an archived user', description: 'Restoring a live user changes nothing. With If-Match, a stale ETag answers 412.',
      params: IdParams, response: { 200: ref(User), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.users.restore(request.db, request.params.id, ifMatchVersion(request))
    return versioned(reply, (await repo.findUser(request.db, request.params.id))!)
  })

  // --- ownership
  app.post('/users/:id/transfer', {
    config: { scope: 'customers:write' },
    schema: {
      operationId: 'transferUserCustomers', tags, summary: 'Transfer everything a user owns',
      description:
        'Gives every customer the user owns (of those you see) to another owner and team, in one audited transaction; their interactions, orders and feedback follow. ' +
        'For a departing user: transfer, then archive the user. A destination outside your visibility answers 422 outside-visibility.',
      params: IdParams, body: ref(OwnershipTransfer), response: { 200: ref(OwnershipTransferred), ...WRITE_ERRORS },
    },
  }, async (request) => service.transferUserCustomers(request.db, request.params.id, request.body))

  app.post('/customers/:id/transfer', {
    config: { scope: 'customers:write' },
    schema: {
      operationId: 'transferCustomer', tags: ['customers'], summary: 'Transfer a customer to another owner and team',
      description:
        'One audited write; the customer\'s interactions, orders and feedback follow it. A customer you do not see answers 404; ' +
        'a destination outside your visibility answers 422 outside-visibility (you would lose the record).',
      params: IdParams, body: ref(OwnershipTransfer), response: { 200: ref(OwnershipTransferred), ...WRITE_ERRORS },
    },
  }, async (request) => service.transferCustomer(request.db, request.params.id, request.body))
}

export default principalRoutes
