import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { pageRequest, parseSort, toPage } from '../../lib/pagination.js'
import { notFound } from '../../lib/problem.js'
import { IdParams, problemResponses, ref, READ_ERRORS } from '../../lib/schema.js'
import * as repo from './audit.repository.js'
import { AUDIT_SORTS, AuditChainVerification, AuditVerifyQuery, AuditEvent, AuditEventList, AuditEventListQuery, auditSchemas, type AuditChainVerificationDto, type AuditEventDto } from './audit.schemas.js'

const tags = ['audit']

/** An event as the API shows it; plugins/pii.ts masks its snapshots for callers without pii:read. */
function toAuditEventDto(row: repo.AuditEventRecord): AuditEventDto {
  return { ...row, action: row.action as AuditEventDto['action'] }
}

function toVerification(v: repo.ChainVerification): AuditChainVerificationDto {
  return {
    intact: v.intact,
    sealed_count: v.sealed_count,
    unsealed_count: v.unsealed_count,
    head: v.head_seq === null ? null : { seq: v.head_seq, hash: v.head_hash! },
    first_broken: v.intact ? null : { seq: v.broken_seq!, audit_event_id: v.broken_audit_event_id, reason: v.reason! },
    verified_from: v.verified_from,
  }
}

const auditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of auditSchemas) app.addSchema(schema)

  app.get('/audit-events', {
    config: { scope: 'audit:read' },
    schema: {
      operationId: 'listAuditEvents', tags, summary: 'List audit events',
      description: 'Every insert, update and delete made through the API, one event per changed record. Cursor-paginated, newest first by default; filters combine with AND.',
      querystring: AuditEventListQuery,
      response: { 200: ref(AuditEventList), ...READ_ERRORS },
    },
  }, async (request) => {
    const { limit, sort, cursor, ...filters } = request.query
    const page = pageRequest({ limit, cursor }, parseSort(sort, AUDIT_SORTS, '-occurred_at'))
    const rows = await repo.listAuditEvents(request.db, filters, page)
    return toPage(rows, page, toAuditEventDto)
  })

  // Registered before /audit-events/:id so the static path wins (find-my-way prefers it anyway).
  app.get('/audit-events/verify', {
    // On the primary: it seals the trail and records the verified position (writes).
    config: { scope: 'audit:read', deadline: 'long', reads: 'primary' },
    schema: {
      operationId: 'verifyAuditChain', tags, summary: 'Verify the audit hash chain',
      description: 'Seals every committed audit event not yet in the chain, then recomputes the chain in the database: each position\'s SHA-256 covers the previous hash and the event\'s full content. ' +
        'By default only the positions after the last verified one are recomputed (after checking that the chain still holds the hash verified there); `full=true` recomputes every position from the first, as the scheduler does daily. ' +
        'An intact head becomes the new verified position. Answers intact, or the first broken position and why.',
      querystring: AuditVerifyQuery,
      response: { 200: ref(AuditChainVerification), ...problemResponses(400, 401, 403, 503) },
    },
  }, async (request) => {
    await repo.sealAuditTrail(app.db)
    return toVerification(await repo.verifyAuditChain(app.db, { full: request.query.full }))
  })

  app.get('/audit-events/:id', {
    config: { scope: 'audit:read' },
    schema: {
      operationId: 'getAuditEvent', tags, summary: 'Get an audit event',
      params: IdParams,
      response: { 200: ref(AuditEvent), ...READ_ERRORS },
    },
  }, async (request) => {
    const row = await repo.findAuditEvent(request.db, request.params.id)
    if (!row) throw notFound('audit event')
    return toAuditEventDto(row)
  })
}

export default auditRoutes
