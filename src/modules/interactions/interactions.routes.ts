import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { BATCH_BODY_LIMIT } from '../../lib/batch.js'
import { UpsertQuery } from '../../lib/external-ref.js'
import { ifMatchVersion, replyNotModified, setEtag } from '../../lib/etag.js'
import { pageRequest, parseSort, toPage } from '../../lib/pagination.js'
import { problem, notFound, pointer } from '../../lib/problem.js'
import { IdParams, ref, READ_ERRORS, WRITE_ERRORS } from '../../lib/schema.js'
import { customerExists } from '../customers/index.js'
import * as repo from './interactions.repository.js'
import * as service from './interactions.service.js'
import {
  CustomerInteractionListQuery, Interaction, InteractionBatch, InteractionBatchResult, InteractionCreate, InteractionList, InteractionListQuery,
  InteractionPatch, INTERACTION_SORTS, interactionSchemas, type InteractionListQueryT,
} from './interactions.schemas.js'

const tags = ['interactions']

/** Reads an interaction back and sets its ETag. */
async function present(request: FastifyRequest, reply: FastifyReply, id: string) {
  const row = await repo.findInteraction(request.db, id)
  if (!row) throw notFound('interaction')
  setEtag(reply, row.version)
  return service.toInteractionDto(row)
}

async function listPage(request: FastifyRequest, q: InteractionListQueryT) {
  const keys = parseSort(q.sort, INTERACTION_SORTS, '-occurred_at')
  if (q.follow_up_due !== true && keys.some((k) => k.field === 'follow_up_on')) {
    throw problem('invalid-sort', 'Sorting by follow_up_on needs follow_up_due=true (other interactions may have no follow-up date).', [
      { pointer: pointer('sort'), message: 'follow_up_on sorts only the follow-up work list (follow_up_due=true)' },
    ])
  }
  const page = pageRequest(q, keys)
  const rows = await repo.listInteractions(request.db, {
    customer_id: q.customer_id, channel: q.channel, direction: q.direction, order_id: q.order_id,
    occurred_after: q.occurred_after, occurred_before: q.occurred_before, follow_up_due: q.follow_up_due, archived: q.archived ?? 'false',
  }, page)
  return toPage(rows, page, service.toInteractionDto)
}

const RULES =
  'customer_id names an existing, unarchived customer (422 /customer_id otherwise) and never changes; order_id, when set, names an order ' +
  'of the same customer (422 /order_id otherwise).'

const interactionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of interactionSchemas) app.addSchema(schema)

  app.post('/interactions', {
    config: { scope: 'interactions:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createInteraction', tags, summary: 'Record an interaction (or update the one with the same external_ref)',
      description:
        '201 with Location for a new interaction; 200 when external_ref matched an existing interaction of the same customer, which is updated ' +
        `with the fields sent (as updateInteraction would; another customer's external_ref is a 422). An archived interaction with that external_ref ` +
        `answers 409 external-ref-archived naming it, unless restore_archived=true, which restores it, then updates it. ${RULES}`,
      querystring: UpsertQuery, body: ref(InteractionCreate),
      response: { 200: ref(Interaction), 201: ref(Interaction), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const { id, created } = await service.createInteraction(request.db, request.body, { restoreArchived: request.query.restore_archived })
    if (created) reply.code(201).header('location', `/v1/interactions/${id}`)
    return present(request, reply, id)
  })

  app.post('/interactions/batch', {
    bodyLimit: BATCH_BODY_LIMIT,
    config: { scope: 'interactions:write' },
    schema: {
      operationId: 'batchCreateInteractions', tags, summary: 'Record or update up to 1,000 interactions, all or nothing',
      description:
        'Each item is handled as createInteraction handles its body, in order, in one transaction. The first failing item rolls back the whole ' +
        'batch and answers its problem with errors[] pointers under /items/<index> (an archived interaction\'s external_ref: 409 external-ref-archived, ' +
        'unless restore_archived=true). On success: one result per item (201 created, 200 updated by external_ref).',
      querystring: UpsertQuery, body: ref(InteractionBatch),
      response: { 200: ref(InteractionBatchResult), ...WRITE_ERRORS },
    },
  }, async (request) => service.createInteractions(request.db, request.body.items, { restoreArchived: request.query.restore_archived }))

  app.get('/interactions', {
    config: { scope: 'interactions:read' },
    schema: {
      operationId: 'listInteractions', tags, summary: 'List interactions',
      description:
        'Cursor-paginated, most recent first by default. Filters combine with AND; follow_up_due=true is the follow-up work list (sort=follow_up_on: oldest due first). ' +
        'Archived interactions are listed only with archived=true (only them) or archived=all (with the live ones).',
      querystring: InteractionListQuery,
      response: { 200: ref(InteractionList), ...READ_ERRORS },
    },
  }, async (request) => listPage(request, request.query))

  app.get('/interactions/:id', {
    config: { scope: 'interactions:read' },
    schema: {
      operationId: 'getInteraction', tags, summary: 'Get an interaction',
      description: 'The interaction and its ETag; If-None-Match with the current ETag answers 304.',
      params: IdParams,
      response: { 200: ref(Interaction), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const version = await repo.interactions.version(request.db, request.params.id)
    if (version === undefined) throw notFound('interaction')
    if (replyNotModified(request, reply, version)) return reply
    return present(request, reply, request.params.id)
  })

  app.patch('/interactions/:id', {
    config: { scope: 'interactions:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateInteraction', tags, summary: 'Update an interaction (JSON Merge Patch)',
      description: `RFC 7396: null clears a field, absent fields are untouched. With If-Match, a stale ETag answers 412. ${RULES}`,
      params: IdParams, body: ref(InteractionPatch),
      response: { 200: ref(Interaction), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.patchInteraction(request.db, request.params.id, request.body, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.delete('/interactions/:id', {
    config: { scope: 'interactions:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'archiveInteraction', tags, summary: 'Archive an interaction',
      description:
        'Hides the interaction from lists (see archived), the timeline and the customer\'s metrics; keeps its data. Archiving an archived interaction ' +
        'changes nothing (204, same version, no audit event); restore with restoreInteraction. With If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.interactions.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/interactions/:id/restore', {
    config: { scope: 'interactions:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreInteraction', tags, summary: 'Restore an archived interaction',
      description:
        'Brings the interaction back into lists, the timeline and the metrics. Restoring a live interaction changes nothing. Answers the interaction ' +
        'with its ETag; with If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 200: ref(Interaction), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.interactions.restore(request.db, request.params.id, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.get('/customers/:id/interactions', {
    config: { scope: 'interactions:read' },
    schema: {
      operationId: 'listCustomerInteractions', tags: ['interactions', 'customers'], summary: 'List a customer\'s interactions',
      description: 'listInteractions for one customer: same filters, sorting and cursors. 404 for an unknown customer.',
      params: IdParams, querystring: CustomerInteractionListQuery,
      response: { 200: ref(InteractionList), ...READ_ERRORS },
    },
  }, async (request) => {
    if (!(await customerExists(request.db, request.params.id))) throw notFound('customer')
    return listPage(request, { ...request.query, customer_id: request.params.id })
  })
}

export default interactionRoutes
