import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { ifMatchVersion, replyNotModified, setEtag } from '../../lib/etag.js'
import { UpsertQuery } from '../../lib/external-ref.js'
import { pageRequest, parseSort, toPage } from '../../lib/pagination.js'
import { notFound } from '../../lib/problem.js'
import { IdParams, ref, READ_ERRORS, WRITE_ERRORS } from '../../lib/schema.js'
import { customerVersion } from '../customers/index.js'
import * as repo from './feedback.repository.js'
import * as service from './feedback.service.js'
import {
  CustomerFeedbackListQuery, Feedback, FeedbackCreate, FeedbackList, FeedbackListQuery, FeedbackPatch, FEEDBACK_SORTS, feedbackSchemas,
  type FeedbackListQueryT,
} from './feedback.schemas.js'

const tags = ['feedback']

/** Reads feedback back and sets its ETag. */
async function present(request: FastifyRequest, reply: FastifyReply, id: string) {
  const row = await repo.findFeedback(request.db, id)
  if (!row) throw notFound('feedback')
  setEtag(reply, row.version)
  return service.toFeedbackDto(row)
}

async function listPage(request: FastifyRequest, q: FeedbackListQueryT) {
  const page = pageRequest(q, parseSort(q.sort, FEEDBACK_SORTS, '-submitted_at'))
  const rows = await repo.listFeedback(request.db, {
    customer_id: q.customer_id, kind: q.kind, survey_type: q.survey_type, status: q.status, priority: q.priority, assignee: q.assignee,
    submitted_after: q.submitted_after, submitted_before: q.submitted_before, sla_breached: q.sla_breached, archived: q.archived ?? 'false',
  }, page)
  return toPage(rows, page, service.toFeedbackDto)
}

const sla = Object.entries(service.SLA_HOURS).map(([p, h]) => `${p} ${h} h`).join(', ')
const KIND_RULES =
  'Kinds: survey (survey_type csat with score 1–5, or nps with score 0–10), complaint, suggestion, review (optional score 1–5), praise (no score). ' +
  'survey_type only on surveys; status, priority, sla_due_at and resolution_note only on complaints; assignee on any kind; any other combination answers 422 ' +
  'with a pointer per field. order_id and interaction_id must name an order or interaction of the same customer (422 otherwise). ' +
  `A complaint's priority defaults to normal and its sla_due_at to submitted_at + the priority's hours (${sla}); ` +
  'sla_breached is true while an open or in_progress complaint is past sla_due_at, and for a complaint resolved after it.'
const WORKFLOW =
  'Complaint status transitions: open → in_progress | resolved; in_progress → open | resolved; resolved → closed | open; closed → open ' +
  '(resolved → open and closed → open reopen the complaint). Any other change answers 422 (pointer /status); sending the current status is no change. ' +
  'Moving to resolved needs resolution_note in the same request (422 /resolution_note otherwise) and sets resolved_at; reopening clears resolved_at ' +
  'and keeps the last resolution_note, which cannot be cleared while resolved or closed. Changing priority or submitted_at without sending sla_due_at ' +
  're-derives sla_due_at from them.'

const feedbackRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of feedbackSchemas) app.addSchema(schema)

  app.post('/feedback', {
    config: { scope: 'feedback:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createFeedback', tags, summary: 'Record feedback (or update the feedback with the same external_ref)',
      description:
        '201 with Location for new feedback; 200 when external_ref matched existing feedback of the same customer, kind and survey_type, which is updated ' +
        'with the fields sent (as updateFeedback would; otherwise 422). Archived feedback with that external_ref answers 409 external-ref-archived naming it, ' +
        'unless restore_archived=true, which restores it, then updates it. The customer must exist and not be archived. A complaint may be created in any status; ' +
        `created resolved or closed it needs a resolution_note and gets resolved_at now. ${KIND_RULES}`,
      querystring: UpsertQuery, body: ref(FeedbackCreate),
      response: { 200: ref(Feedback), 201: ref(Feedback), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const { id, created } = await service.createFeedback(request.db, request.body, { restoreArchived: request.query.restore_archived })
    if (created) reply.code(201).header('location', `/v1/feedback/${id}`)
    return present(request, reply, id)
  })

  app.get('/feedback', {
    config: { scope: 'feedback:read' },
    schema: {
      operationId: 'listFeedback', tags, summary: 'List feedback',
      description: 'Cursor-paginated, newest submitted first by default. Filters combine with AND; archived feedback is listed only with archived=true (only it) or archived=all (with the live feedback).',
      querystring: FeedbackListQuery,
      response: { 200: ref(FeedbackList), ...READ_ERRORS },
    },
  }, async (request) => listPage(request, request.query))

  app.get('/feedback/:id', {
    config: { scope: 'feedback:read' },
    schema: {
      operationId: 'getFeedback', tags, summary: 'Get feedback',
      description: 'The feedback and its ETag; If-None-Match with the current ETag answers 304.',
      params: IdParams,
      response: { 200: ref(Feedback), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const version = await repo.feedback.version(request.db, request.params.id)
    if (version === undefined) throw notFound('feedback')
    if (replyNotModified(request, reply, version)) return reply
    return present(request, reply, request.params.id)
  })

  app.patch('/feedback/:id', {
    config: { scope: 'feedback:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateFeedback', tags, summary: 'Update feedback (JSON Merge Patch), including a complaint\'s status',
      description: `RFC 7396: null clears a field, absent fields are untouched; kind, survey_type and customer_id cannot change. ` +
        `With If-Match, a stale ETag answers 412. ${WORKFLOW} ${KIND_RULES}`,
      params: IdParams, body: ref(FeedbackPatch),
      response: { 200: ref(Feedback), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.patchFeedback(request.db, request.params.id, request.body, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.delete('/feedback/:id', {
    config: { scope: 'feedback:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'archiveFeedback', tags, summary: 'Archive feedback',
      description: 'Hides the feedback from lists (see archived), the timeline and the customer\'s metrics (open complaints, latest CSAT/NPS); ' +
        'keeps its data. Archiving archived feedback changes nothing (204, same version, no audit event); restore with restoreFeedback. ' +
        'With If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.feedback.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/feedback/:id/restore', {
    config: { scope: 'feedback:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreFeedback', tags, summary: 'Restore archived feedback',
      description:
        'Brings the feedback back into lists, the timeline and the customer\'s metrics. Restoring live feedback changes nothing. Answers the feedback ' +
        'with its ETag; with If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 200: ref(Feedback), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.feedback.restore(request.db, request.params.id, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.get('/customers/:id/feedback', {
    config: { scope: 'feedback:read' },
    schema: {
      operationId: 'listCustomerFeedback', tags: ['feedback', 'customers'], summary: 'List a customer\'s feedback',
      description: 'listFeedback for one customer: same filters, sorting and cursors. 404 for an unknown customer.',
      params: IdParams, querystring: CustomerFeedbackListQuery,
      response: { 200: ref(FeedbackList), ...READ_ERRORS },
    },
  }, async (request) => {
    if ((await customerVersion(request.db, request.params.id)) === undefined) throw notFound('customer')
    return listPage(request, { ...request.query, customer_id: request.params.id })
  })
}

export default feedbackRoutes
