import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Readable } from 'node:stream'
import { pageRequest, toPage, type SortKey } from '../../lib/pagination.js'
import { HttpProblem, notFound } from '../../lib/problem.js'
import { IdParams, problemResponses, ref } from '../../lib/schema.js'
import { STREAMED_BODY } from '../../lib/validation.js'
import { requestAuditContext } from '../../plugins/audit.js'
import * as repo from './imports.repository.js'
import * as service from './imports.service.js'
import { IMPORT_MEDIA_TYPES, ImportCreateQuery, ImportJob, ImportJobList, ImportListQuery, importSchemas, type ImportJobDto } from './imports.schemas.js'

export interface ImportRoutesOptions {
  /** The largest upload accepted (default 2 GiB). */
  maxBytes?: number
}

const tags = ['imports']
const KEYS: SortKey[] = [{ field: 'created_at', desc: true, type: 'timestamp' }]
const FORMAT_OF: Record<string, service.ImportFormat> = { [IMPORT_MEDIA_TYPES.csv]: 'csv', [IMPORT_MEDIA_TYPES.ndjson]: 'ndjson' }

/**
 * An upload read as a stream: declared as binary (format binary for OpenAPI 3.0-minded generators,
 * contentMediaType for 3.1), so generated clients send the bytes as they are instead of JSON-encoding them.
 */
const streamedBody = (mediaType: string, description: string) =>
  ({ type: 'string', format: 'binary', contentMediaType: mediaType, description, [STREAMED_BODY]: true })

const toDto = (row: repo.ImportJobRow) => row as ImportJobDto

const importRoutes: FastifyPluginAsyncTypebox<ImportRoutesOptions> = async (app, opts) => {
  for (const schema of importSchemas) app.addSchema(schema)
  const maxBytes = opts.maxBytes ?? 2 * 1024 ** 3
  // Merges still running when the app closes are waited for, so none is cut off half-way.
  const running = new Set<Promise<void>>()
  app.addHook('onClose', async () => {
    await Promise.allSettled([...running])
  })

  // Only this plugin reads CSV and NDJSON, and as a stream: an upload never sits in memory.
  app.addContentTypeParser(Object.values(IMPORT_MEDIA_TYPES), (_request, payload, done) => done(null, payload))

  app.post('/imports', {
    config: { scope: 'customers:write', transaction: 'manual', deadline: 'long', contract: { creates: true } },
    schema: {
      operationId: 'createImport', tags, summary: 'Import customers from CSV or NDJSON',
      description:
        'Streams the upload (Content-Type text/csv with a header line, or application/x-ndjson with one CustomerImportRow per line) ' +
        'through validation into a staging table, then answers 202 with the job and a Location to poll while the rows are merged in one ' +
        'audited transaction (all valid rows or none). A row with a known external_ref updates that customer (empty cells keep the ' +
        'current value); email and phone become primary contact points. Invalid rows, repeated external_refs or emails, emails that ' +
        'are another customer\'s primary, and external_refs of archived customers (restore them first) are refused and listed on the job ' +
        'by line; the rest are imported. A malformed CSV or an unknown ' +
        'column is a 400 and imports nothing.',
      querystring: ImportCreateQuery,
      body: {
        content: {
          [IMPORT_MEDIA_TYPES.csv]: { schema: streamedBody(IMPORT_MEDIA_TYPES.csv, 'CSV: a header line naming CustomerImportRow fields, then one customer per line; tags separated by |') },
          [IMPORT_MEDIA_TYPES.ndjson]: { schema: streamedBody(IMPORT_MEDIA_TYPES.ndjson, 'NDJSON: one CustomerImportRow object per line') },
        },
      } as never,
      response: { 202: ref(ImportJob), ...problemResponses(400, 401, 403, 413, 415) },
    },
  }, async (request, reply) => {
    const format = FORMAT_OF[(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()]
    if (!format) throw new HttpProblem('unsupported-media-type', { detail: 'Send the upload as text/csv or application/x-ndjson.' })
    const context = requestAuditContext(request, 'POST /v1/imports')
    const { job, merged } = await service.startCustomerImport(app.db, { format, body: request.body as Readable, context, maxBytes, log: request.log })
    running.add(merged)
    void merged.finally(() => running.delete(merged))
    reply.code(202).header('location', `/v1/imports/${job.id}`)
    return toDto(job)
  })

  app.get('/imports/:id', {
    config: { scope: 'customers:read' },
    schema: {
      operationId: 'getImport', tags, summary: 'Get an import job: its progress, outcome and rejected rows',
      params: IdParams,
      response: { 200: ref(ImportJob), ...problemResponses(400, 401, 403, 404) },
    },
  }, async (request) => {
    const row = await repo.findJob(request.db, request.params.id)
    if (!row) throw notFound('import')
    return toDto(row)
  })

  app.get('/imports', {
    config: { scope: 'customers:read' },
    schema: {
      operationId: 'listImports', tags, summary: 'List import jobs, newest first',
      querystring: ImportListQuery,
      response: { 200: ref(ImportJobList), ...problemResponses(400, 401, 403) },
    },
  }, async (request) => {
    const page = pageRequest(request.query, KEYS)
    return toPage(await repo.listJobs(request.db, page), page, toDto)
  })
}

export default importRoutes
