import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ifMatchVersion, replyNotModified, setEtag } from '../../lib/etag.js'
import { compileFilter } from '../filters/filter.compile.js'
import { filterFromBody, requireFinancialFilter } from '../filters/filter.request.js'
import { pageRequest, parseSort, toPage, type SortKey } from '../../lib/pagination.js'
import { IdParams, problemResponses, ref, READ_ERRORS, WRITE_ERRORS } from '../../lib/schema.js'
import { countCustomers, searchPage } from '../customers/index.js'
import { Address, Consent, CONTACT_POINT_VARIANTS, ContactPoint, Customer, CustomerList, CustomerMetrics } from '../customers/customers.schemas.js'
import * as repo from './segments.repository.js'
import * as service from './segments.service.js'
import {
  ExportQuery, HistoryQuery, MemberListQuery, MembershipEventList, Segment, SegmentCount, SegmentCreate, SegmentList, SegmentListQuery,
  SegmentMemberChange, SegmentMemberIds, SegmentPatch, SegmentPreview, SegmentPreviewResult, SegmentRefreshResult, SEGMENT_SORTS, segmentSchemas,
} from './segments.schemas.js'

const tags = ['segments']
const HISTORY_KEYS: SortKey[] = [{ field: 'occurred_at', desc: true, type: 'timestamp' }]

const segmentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Members are customers: the customer shapes are registered in this context too (the
  // customers plugin's own registrations are encapsulated), under the same $ids.
  for (const schema of [Address, Consent, ...CONTACT_POINT_VARIANTS, ContactPoint, CustomerMetrics, Customer, CustomerList, ...segmentSchemas]) app.addSchema(schema)

  app.post('/segments', {
    config: { scope: 'segments:write', contract: { etag: true, creates: true } },
    attachValidation: true,
    schema: {
      operationId: 'createSegment', tags, summary: 'Create a segment',
      description: 'A dynamic segment stores a CustomerFilter; a static one starts empty and takes members by id.',
      body: ref(SegmentCreate),
      response: { 201: ref(Segment), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const ast = filterFromBody(request, request.body?.filter)
    const row = await service.createSegment(request.db, request.body, ast)
    setEtag(reply, row.version)
    reply.code(201).header('location', `/v1/segments/${row.id}`)
    return service.toSegmentDto(row)
  })

  app.get('/segments', {
    config: { scope: 'segments:read' },
    schema: {
      operationId: 'listSegments', tags, summary: 'List segments',
      description: 'Cursor-paginated, newest first by default; archived segments are listed only with archived=true (only them) or archived=all (with the live ones).',
      querystring: SegmentListQuery,
      response: { 200: ref(SegmentList), ...READ_ERRORS },
    },
  }, async (request) => {
    const q = request.query
    const page = pageRequest(q, parseSort(q.sort, SEGMENT_SORTS, '-created_at'))
    const rows = await repo.listSegments(request.db, { kind: q.kind, archived: q.archived ?? 'false' }, page)
    return toPage(rows, page, service.toSegmentDto)
  })

  app.post('/segments/preview', {
    config: { scope: 'segments:read', deadline: 'long' },
    attachValidation: true,
    schema: {
      operationId: 'previewSegment', tags, summary: 'Count and list the customers an unsaved filter selects',
      description: 'What a dynamic segment with this filter would hold now: the count and the first page (next_cursor pages on with GET …/members once saved, or with POST /v1/customers/search).',
      body: ref(SegmentPreview),
      response: { 200: ref(SegmentPreviewResult), ...problemResponses(400, 401, 403, 413, 415) },
    },
  }, async (request) => {
    const where = compileFilter(filterFromBody(request, request.body?.filter)!)
    const page = await searchPage(request.db, where, { sort: request.body.sort, limit: request.body.limit })
    return { count: await countCustomers(request.db, where), ...page }
  })

  app.get('/segments/:id', {
    config: { scope: 'segments:read' },
    schema: {
      operationId: 'getSegment', tags, summary: 'Get a segment',
      params: IdParams,
      response: { 200: ref(Segment), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const row = await service.getSegment(request.db, request.params.id)
    setEtag(reply, row.version)
    if (replyNotModified(request, reply, row.version)) return reply
    return service.toSegmentDto(row)
  })

  app.patch('/segments/:id', {
    config: { scope: 'segments:write', contract: { etag: true, ifMatch: true } },
    attachValidation: true,
    schema: {
      operationId: 'updateSegment', tags, summary: 'Update a segment (JSON Merge Patch)',
      description: 'name, description and (dynamic segments) filter; the filter is replaced as a whole. With If-Match, a stale ETag answers 412.',
      params: IdParams, body: ref(SegmentPatch),
      response: { 200: ref(Segment), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    filterFromBody(request, request.body?.filter ?? undefined)
    const row = await service.patchSegment(request.db, request.params.id, request.body, ifMatchVersion(request))
    setEtag(reply, row.version)
    return service.toSegmentDto(row)
  })

  app.delete('/segments/:id', {
    config: { scope: 'segments:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'archiveSegment', tags, summary: 'Archive a segment',
      description:
        'Hides it from lists (see archived) and frees its name; its members and history are kept. Archiving an archived segment changes nothing ' +
        '(204, same version, no audit event); restore with restoreSegment. With If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.segments.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/segments/:id/restore', {
    config: { scope: 'segments:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreSegment', tags, summary: 'Restore an archived segment',
      description:
        'Brings the segment back into lists with its members and history. Its name must still be free among live segments (409 on /name otherwise: ' +
        'rename the other one first). Restoring a live segment changes nothing. Answers the segment with its ETag; with If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 200: ref(Segment), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.restoreSegment(request.db, request.params.id, ifMatchVersion(request))
    const row = await service.getSegment(request.db, request.params.id)
    setEtag(reply, row.version)
    return service.toSegmentDto(row)
  })

  app.get('/segments/:id/members', {
    config: { scope: 'segments:read' },
    schema: {
      operationId: 'listSegmentMembers', tags, summary: 'List the customers in a segment',
      description: 'Evaluated now: a dynamic segment\'s filter, or a static segment\'s members; archived customers are left out.',
      params: IdParams, querystring: MemberListQuery,
      response: { 200: ref(CustomerList), ...READ_ERRORS },
    },
  }, async (request) => {
    const segment = await service.getSegment(request.db, request.params.id)
    return searchPage(request.db, service.membersOf(segment, (ast) => requireFinancialFilter(request, ast)), request.query)
  })

  app.get('/segments/:id/count', {
    config: { scope: 'segments:read', deadline: 'long' },
    schema: {
      operationId: 'countSegmentMembers', tags, summary: 'Count the customers in a segment',
      params: IdParams,
      response: { 200: ref(SegmentCount), ...READ_ERRORS },
    },
  }, async (request) => {
    const segment = await service.getSegment(request.db, request.params.id)
    return { count: await countCustomers(request.db, service.membersOf(segment, (ast) => requireFinancialFilter(request, ast))) }
  })

  app.post('/segments/:id/members', {
    config: { scope: 'segments:write' },
    schema: {
      operationId: 'addSegmentMembers', tags, summary: 'Add customers to a static segment',
      description: 'Up to 1,000 ids, all or none: an id that is not a customer answers 422 and adds nothing. Ids already in count as unchanged.',
      params: IdParams, body: ref(SegmentMemberIds),
      response: { 200: ref(SegmentMemberChange), ...WRITE_ERRORS },
    },
  }, async (request) => service.changeStaticMembers(request.db, request.params.id, request.body.customer_ids, 'add'))

  app.delete('/segments/:id/members', {
    config: { scope: 'segments:write' },
    schema: {
      operationId: 'removeSegmentMembers', tags, summary: 'Remove customers from a static segment',
      description: 'Up to 1,000 ids in the body; ids that are not members count as unchanged.',
      params: IdParams, body: ref(SegmentMemberIds),
      response: { 200: ref(SegmentMemberChange), ...WRITE_ERRORS },
    },
  }, async (request) => service.changeStaticMembers(request.db, request.params.id, request.body.customer_ids, 'remove'))

  app.get('/segments/:id/export', {
    config: { scope: 'segments:read', piiStream: 'Customer', deadline: 'long', contract: { sends: { 'Content-Disposition': 'ContentDisposition' } } },
    schema: {
      operationId: 'exportSegmentMembers', tags, summary: 'Export the customers in a segment (CSV or NDJSON, streamed)',
      description: 'Streams every member in batches (flat memory whatever the size). CSV has a header row and masks PII without pii:read, like NDJSON (one Customer per line).',
      params: IdParams, querystring: ExportQuery,
      response: {
        // A stream, never serialized: declared per media type so clients read it as text, not JSON.
        200: {
          description: 'The members, streamed: CSV with a header row (format=csv), or NDJSON with one Customer per line (format=ndjson)',
          content: {
            'text/csv': { schema: { type: 'string', contentMediaType: 'text/csv', description: 'CSV with a header row, one customer per line' } },
            'application/x-ndjson': { schema: { type: 'string', contentMediaType: 'application/x-ndjson', description: 'One Customer JSON object per line' } },
          },
        } as never,
        ...READ_ERRORS,
      },
    },
  }, async (request, reply) => {
    const segment = await service.getSegment(request.db, request.params.id)
    const format = request.query.format ?? 'csv'
    reply
      .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
      .header('content-disposition', `attachment; filename="segment-${segment.id}.${format}"`)
    return reply.send(service.exportStream(request.db, service.membersOf(segment, (ast) => requireFinancialFilter(request, ast)), format, (c) => request.maskPii(c)) as never)
  })

  app.post('/segments/:id/refresh', {
    config: { scope: 'segments:write', deadline: 'long' },
    schema: {
      operationId: 'refreshSegment', tags, summary: 'Refresh a dynamic segment\'s membership history',
      description: 'Evaluates the filter now and records, set-wise in one statement, who entered and who left since the last refresh.',
      params: IdParams,
      response: { 200: ref(SegmentRefreshResult), ...WRITE_ERRORS },
    },
  }, async (request) => service.refresh(request.db, request.params.id))

  app.get('/segments/:id/history', {
    config: { scope: 'segments:read' },
    schema: {
      operationId: 'listSegmentHistory', tags, summary: 'Membership events of a segment, newest first',
      params: IdParams, querystring: HistoryQuery,
      response: { 200: ref(MembershipEventList), ...READ_ERRORS },
    },
  }, async (request) => {
    await service.getSegment(request.db, request.params.id)
    const q = request.query
    const page = pageRequest(q, HISTORY_KEYS)
    const rows = await repo.listEvents(request.db, request.params.id, { event: q.event, customer_id: q.customer_id }, page)
    return toPage(rows, page, (r) => ({ id: r.id, segment_id: r.segment_id, customer_id: r.customer_id, event: r.event as 'entered' | 'left', occurred_at: r.occurred_at }))
  })
}

export default segmentRoutes
