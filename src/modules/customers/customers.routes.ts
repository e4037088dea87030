import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { canReadPii, requireFinancial } from '../../plugins/auth.js'
import { ifMatchVersion, replyNotModified, setEtag } from '../../lib/etag.js'
import { UpsertQuery } from '../../lib/external-ref.js'
import { pageRequest, parseSort, toPage } from '../../lib/pagination.js'
import { problem, notFound, pointer } from '../../lib/problem.js'
import { IdParams, problemResponses, ref, READ_ERRORS, WRITE_ERRORS } from '../../lib/schema.js'
import { sql, type SqlBool } from 'kysely'
import { compileFilter } from '../filters/filter.compile.js'
import { filterFromBody } from '../filters/filter.request.js'
import * as repo from './customers.repository.js'
import * as contactPoints from './contact-points.repository.js'
import { findMetrics } from '../metrics/index.js'
import { listCustomersByTerm } from './customers.search.repository.js'
import * as service from './customers.service.js'
import { mergeCustomers } from './customers.merge.js'
import {
  ContactPoint, ContactPointCreate, ContactPointList, ContactPointParams, ContactPointPatch, Customer, CustomerCreate, CustomerGetQuery, CustomerMerge,
  CustomerList, CustomerListQuery, CustomerPatch, CUSTOMER_INCLUDES, CUSTOMER_SORTS, CustomerSearch, CustomerSearchResult, customerSchemas,
} from './customers.schemas.js'

const tags = ['customers']

function parseInclude(request: FastifyRequest, include: string | undefined): Set<string> {
  const names = new Set((include ?? '').split(',').filter(Boolean))
  for (const n of names) {
    if (!(CUSTOMER_INCLUDES as readonly string[]).includes(n)) {
      throw problem('validation-failed', `Cannot include "${n}".`, [{ pointer: pointer('include'), message: `must list only ${CUSTOMER_INCLUDES.join(', ')}` }])
    }
  }
  // The metrics hold purchase figures (order counts, spend).
  if (names.has('metrics')) requireFinancial(request.auth, 'include=metrics')
  return names
}

/** Reads a customer back and sets its ETag. */
async function present(request: FastifyRequest, reply: FastifyReply, id: string, include = new Set<string>()) {
  const row = await repo.findCustomer(request.db, id)
  if (!row) throw notFound('customer')
  return render(request, reply, row, include)
}

/** A customer row with the related data asked for (one more query each). */
async function render(request: FastifyRequest, reply: FastifyReply, row: repo.CustomerRecord, include: Set<string>) {
  const id = row.id
  setEtag(reply, row.version)
  const contacts = include.has('contact_points') ? await contactPoints.listContactPoints(request.db, [id]) : undefined
  const metrics = include.has('metrics') ? await findMetrics(request.db, [id]) : undefined
  return service.toCustomerDto(row, contacts, metrics)
}

const customerRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of customerSchemas) app.addSchema(schema)

  app.post('/customers', {
    config: { scope: 'customers:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createCustomer', tags, summary: 'Create a customer (or update the one with the same external_ref)',
      description:
        'Answers 201 with Location for a new customer; 200 when external_ref matched an existing one, which is updated with the fields sent ' +
        '(a customer merged into another forwards the update to that one). An archived customer with that external_ref answers 409 ' +
        'external-ref-archived naming it, unless restore_archived=true, which restores it, then updates it.',
      querystring: UpsertQuery, body: ref(CustomerCreate),
      response: { 200: ref(Customer), 201: ref(Customer), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const { id, created } = await service.createCustomer(request.db, request.body, { restoreArchived: request.query.restore_archived })
    if (created) reply.code(201).header('location', `/v1/customers/${id}`)
    return present(request, reply, id, new Set(request.body.contact_points ? ['contact_points'] : []))
  })

  app.get('/customers', {
    config: { scope: 'customers:read' },
    schema: {
      operationId: 'listCustomers', tags, summary: 'List customers',
      description: 'Cursor-paginated. Filters combine with AND; archived customers are listed only with archived=true (only them) or archived=all (with the live ones).',
      querystring: CustomerListQuery,
      response: { 200: ref(CustomerList), ...READ_ERRORS },
    },
  }, async (request) => {
    const q = request.query
    const wanted = pageRequest(q, parseSort(q.sort, CUSTOMER_SORTS, '-created_at'))
    const include = parseInclude(request, q.include)
    const filters: repo.CustomerFilters = {
      // Matching q against emails and phones would tell who owns one: only for pii:read.
      q: q.q?.trim(), qContacts: canReadPii(request.auth), tags: q.tag?.map((t) => t.trim().toLowerCase()), lifecycle_stage: q.lifecycle_stage,
      acquisition_source: q.acquisition_source, created_after: q.created_after, created_before: q.created_before, archived: q.archived ?? 'false',
    }
    const rows = filters.q
      ? await listCustomersByTerm(request.db, { ...filters, q: filters.q }, wanted)
      : await repo.listCustomers(request.db, filters, wanted)
    const page = toPage(rows, wanted, (r) => r)
    const ids = page.data.map((r) => r.id)
    const contacts = include.has('contact_points') ? await contactPoints.listContactPoints(request.db, ids) : []
    const metrics = include.has('metrics') ? await findMetrics(request.db, ids) : undefined
    const byCustomer = new Map<string, typeof contacts>()
    for (const c of contacts) byCustomer.set(c.customer_id, [...(byCustomer.get(c.customer_id) ?? []), c])
    return {
      data: page.data.map((r) => service.toCustomerDto(r, include.has('contact_points') ? byCustomer.get(r.id) ?? [] : undefined, metrics)),
      next_cursor: page.next_cursor,
    }
  })

  app.post('/customers/search', {
    config: { scope: 'customers:read' },
    attachValidation: true,
    schema: {
      operationId: 'searchCustomers', tags, summary: 'Search customers with the filter language',
      description: 'The full boolean filter language (CustomerFilter), the same one segments store. Cursor-paginated like every list; ' +
        'include_total adds the number of all matches. A filter that is malformed, too deep (over 8 levels) or too large (over 100 nodes) answers 400 with pointers to the bad nodes.',
      body: ref(CustomerSearch),
      response: { 200: ref(CustomerSearchResult), ...problemResponses(400, 401, 403, 413, 415) },
    },
  }, async (request) => {
    const ast = filterFromBody(request, request.body?.filter)
    const body = request.body
    const where = ast ? compileFilter(ast) : () => sql<SqlBool>`true`
    const page = await service.searchPage(request.db, where, body)
    return body.include_total ? { ...page, total: await repo.countCustomers(request.db, where) } : page
  })

  app.get('/customers/:id', {
    config: { scope: 'customers:read' },
    schema: {
      operationId: 'getCustomer', tags, summary: 'Get a customer',
      description:
        'Answers the customer with its ETag; If-None-Match with the current ETag answers 304. Archived customers stay readable by id; ' +
        'a customer merged into another (see mergeCustomers) answers 200 with archived_at and merged_into_id, the customer that holds its data now.',
      params: IdParams, querystring: CustomerGetQuery,
      response: { 200: ref(Customer), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const include = parseInclude(request, request.query.include)
    // One query for the row, its version and its primary contacts: a conditional GET costs no more.
    const row = await repo.findCustomer(request.db, request.params.id)
    if (!row) throw notFound('customer')
    if (replyNotModified(request, reply, row.version)) return reply
    return render(request, reply, row, include)
  })

  app.patch('/customers/:id', {
    config: { scope: 'customers:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateCustomer', tags, summary: 'Update a customer (JSON Merge Patch)',
      description: 'RFC 7396: null clears a field, absent fields are untouched, attributes/preferences/consent merge key by key. With If-Match, a stale ETag answers 412. A customer merged into another answers 422.',
      params: IdParams, body: ref(CustomerPatch),
      response: { 200: ref(Customer), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.patchCustomer(request.db, request.params.id, request.body, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.delete('/customers/:id', {
    config: { scope: 'customers:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'archiveCustomer', tags, summary: 'Archive a customer',
      description:
        'Hides the customer from lists (see archived) and keeps its data. Archiving an archived customer changes nothing (204, same version, ' +
        'archived_at kept, no audit event); restore with restoreCustomer. With If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.customers.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/customers/:id/restore', {
    config: { scope: 'customers:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreCustomer', tags, summary: 'Restore an archived customer',
      description:
        'Brings the customer back into lists. Restoring a live customer changes nothing. A customer merged into another cannot be restored (422): ' +
        'merges are not undone. Answers the customer with its ETag; with If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 200: ref(Customer), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.restoreCustomer(request.db, request.params.id, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.post('/customers/:id/merge', {
    config: { scope: 'customers:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'mergeCustomers', tags, summary: 'Merge a duplicate customer into this one',
      description:
        'In one audited transaction: the duplicate\'s orders, interactions and feedback move to this customer (metrics and lifecycle are ' +
        'recomputed for both); contact points are united, one per kind and normalized value, this customer keeping its primary per kind ' +
        '(taking the duplicate\'s where it has none); tags and interests are united; preferences, attributes and consent deep-merged and ' +
        'scalar fields filled where one side is null, the `prefer` side winning where both are set; loyalty points add up. This customer keeps ' +
        'its external_ref; the duplicate keeps its own, is archived with merged_into_id set, and createCustomer with the duplicate\'s ' +
        'external_ref updates this customer from then on. Answers the merged customer with its ETag; If-Match applies to this customer (412). ' +
        '422 when merging a customer into itself, into an archived or merged customer, or an unknown or already merged duplicate.',
      params: IdParams, body: ref(CustomerMerge),
      response: { 200: ref(Customer), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await mergeCustomers(request.db, request.params.id, request.body, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.get('/customers/:id/contact-points', {
    config: { scope: 'customers:read' },
    schema: {
      operationId: 'listContactPoints', tags, summary: 'List a customer\'s contact points',
      description: 'All of them in one page (a customer holds at most a few dozen), primary first within each kind.',
      params: IdParams,
      response: { 200: ref(ContactPointList), ...READ_ERRORS },
    },
  }, async (request) => {
    if ((await repo.customerVersion(request.db, request.params.id)) === undefined) throw notFound('customer')
    const rows = await contactPoints.listContactPoints(request.db, [request.params.id])
    return { data: rows.map((r) => service.toContactPointDto(r)), next_cursor: null }
  })

  app.post('/customers/:id/contact-points', {
    config: { scope: 'customers:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createContactPoint', tags, summary: 'Add a contact point',
      description: 'The first of a kind becomes primary; is_primary=true demotes the previous primary. Another customer\'s primary email answers 409; a customer merged into another answers 422.',
      params: IdParams, body: ref(ContactPointCreate),
      response: { 201: ref(ContactPoint), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const row = await service.addContactPoint(request.db, request.params.id, request.body)
    setEtag(reply, row.version)
    reply.code(201).header('location', `/v1/customers/${request.params.id}/contact-points/${row.id}`)
    return service.toContactPointDto(row)
  })

  app.patch('/customers/:id/contact-points/:contact_point_id', {
    config: { scope: 'customers:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateContactPoint', tags, summary: 'Update a contact point (JSON Merge Patch)',
      params: ContactPointParams, body: ref(ContactPointPatch),
      response: { 200: ref(ContactPoint), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const { id, contact_point_id } = request.params
    const row = await service.patchContactPoint(request.db, id, contact_point_id, request.body, ifMatchVersion(request))
    setEtag(reply, row.version)
    return service.toContactPointDto(row)
  })

  app.delete('/customers/:id/contact-points/:contact_point_id', {
    config: { scope: 'customers:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'deleteContactPoint', tags, summary: 'Remove a contact point',
      description: 'Deletes it (the audit trail keeps its last state). If it was primary, the oldest remaining one of its kind becomes primary.',
      params: ContactPointParams,
      response: { 204: Type.Null({ description: 'Removed' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.removeContactPoint(request.db, request.params.id, request.params.contact_point_id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })
}

export default customerRoutes
