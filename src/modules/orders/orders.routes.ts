import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { BATCH_BODY_LIMIT } from '../../lib/batch.js'
import { UpsertQuery } from '../../lib/external-ref.js'
import { ifMatchVersion, replyNotModified, setEtag } from '../../lib/etag.js'
import { pageRequest, parseSort, toPage } from '../../lib/pagination.js'
import { notFound } from '../../lib/problem.js'
import { IdParams, ref, READ_ERRORS, WRITE_ERRORS } from '../../lib/schema.js'
import { createOrders } from './orders.batch.js'
import * as repo from './orders.repository.js'
import { customerExists } from '../customers/index.js'
import * as service from './orders.service.js'
import {
  CustomerOrderListQuery, CustomerReceivables, Order, OrderBatch, OrderBatchResult, OrderCreate, OrderList, OrderListQuery, OrderPatch,
  OrderPaymentCreate, OrderPaymentResult, ORDER_SORTS, orderSchemas, type OrderListQueryT,
} from './orders.schemas.js'

const tags = ['orders']

/** Reads an order back with its items and payments and sets its ETag. */
async function present(request: FastifyRequest, reply: FastifyReply, id: string) {
  const row = await repo.findOrder(request.db, id)
  if (!row) throw notFound('order')
  setEtag(reply, row.version)
  return (await service.loadOrders(request.db, [row]))[0]!
}

async function listPage(request: FastifyRequest, q: OrderListQueryT) {
  const page = pageRequest(q, parseSort(q.sort, ORDER_SORTS, '-ordered_at'))
  const rows = await repo.listOrders(request.db, {
    customer_id: q.customer_id, status: q.status, channel: q.channel, ordered_after: q.ordered_after, ordered_before: q.ordered_before,
    overdue: q.overdue, archived: q.archived ?? 'false',
  }, page)
  const { data, next_cursor } = toPage(rows, page, (r) => r)
  return { data: await service.loadOrders(request.db, data), next_cursor }
}

const STATUS_RULES =
  'Status transitions: pending → paid | cancelled; paid → fulfilled | refunded | partially_refunded; fulfilled → refunded | partially_refunded; ' +
  'partially_refunded → partially_refunded | refunded; cancelled and refunded are final; any other change answers 422 (pointer /status). ' +
  'A paid order is refunded, not cancelled. Moving to paid records the outstanding amount as a payment; moving to refunded records a refund of ' +
  'everything received; partially_refunded is reached by recording a refund (createOrderPayment); a pending order holding payments is refunded before it can be cancelled. ' +
  'items (replaced as a whole), tax_rate, shipping and currency change only while pending. Sending a field\'s current value is no change.'

const orderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of orderSchemas) app.addSchema(schema)

  app.post('/orders', {
    config: { scope: 'orders:write', contract: { etag: true, creates: true } },
    schema: {
      operationId: 'createOrder', tags, summary: 'Create an order (or update the one with the same external_ref)',
      description:
        '201 with Location for a new order; 200 when external_ref matched an existing order of the same customer, which is updated with the fields sent ' +
        '(as updateOrder would; another customer\'s external_ref is a 422). An archived order with that external_ref answers 409 external-ref-archived ' +
        'naming it, unless restore_archived=true, which restores it, then updates it. Totals are computed from the items and cannot be sent (400). ' +
        'A credit sale (payment_method credit) without due_date falls due ordered_at + the customer\'s payment_terms_days.',
      querystring: UpsertQuery, body: ref(OrderCreate),
      response: { 200: ref(Order), 201: ref(Order), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const { id, created } = await service.createOrder(request.db, request.body, { restoreArchived: request.query.restore_archived })
    if (created) reply.code(201).header('location', `/v1/orders/${id}`)
    return present(request, reply, id)
  })

  app.post('/orders/batch', {
    bodyLimit: BATCH_BODY_LIMIT,
    config: { scope: 'orders:write' },
    schema: {
      operationId: 'batchCreateOrders', tags, summary: 'Create or update up to 1,000 orders, all or nothing',
      description:
        'Each item is handled as createOrder handles its body, in order, in one transaction. The first failing item rolls back the whole batch ' +
        'and answers its problem with errors[] pointers under /items/<index> (an archived order\'s external_ref: 409 external-ref-archived, unless restore_archived=true). ' +
        'On success: one result per item (201 created, 200 updated by external_ref).',
      querystring: UpsertQuery, body: ref(OrderBatch),
      response: { 200: ref(OrderBatchResult), ...WRITE_ERRORS },
    },
  }, async (request) => createOrders(request.db, request.body.items, { restoreArchived: request.query.restore_archived }))

  app.get('/orders', {
    config: { scope: 'orders:read' },
    schema: {
      operationId: 'listOrders', tags, summary: 'List orders',
      description: 'Cursor-paginated, newest first by default. Filters combine with AND; archived orders are listed only with archived=true (only them) or archived=all (with the live ones).',
      querystring: OrderListQuery,
      response: { 200: ref(OrderList), ...READ_ERRORS },
    },
  }, async (request) => listPage(request, request.query))

  app.get('/orders/:id', {
    config: { scope: 'orders:read' },
    schema: {
      operationId: 'getOrder', tags, summary: 'Get an order',
      description: 'The order with its items and payments, and its ETag; If-None-Match with the current ETag answers 304.',
      params: IdParams,
      response: { 200: ref(Order), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const version = await repo.orders.version(request.db, request.params.id)
    if (version === undefined) throw notFound('order')
    if (replyNotModified(request, reply, version)) return reply
    return present(request, reply, request.params.id)
  })

  app.patch('/orders/:id', {
    config: { scope: 'orders:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'updateOrder', tags, summary: 'Update an order (JSON Merge Patch), including its status',
      description: `RFC 7396: null clears a field, absent fields are untouched. With If-Match, a stale ETag answers 412. ${STATUS_RULES}`,
      params: IdParams, body: ref(OrderPatch),
      response: { 200: ref(Order), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await service.patchOrder(request.db, request.params.id, request.body, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.delete('/orders/:id', {
    config: { scope: 'orders:write', contract: { ifMatch: true } },
    schema: {
      operationId: 'archiveOrder', tags, summary: 'Archive an order',
      description:
        'Hides the order from lists (see archived) and from receivables; keeps its data. Archiving an archived order changes nothing (204, same version, ' +
        'no audit event); restore with restoreOrder. With If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.orders.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/orders/:id/restore', {
    config: { scope: 'orders:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'restoreOrder', tags, summary: 'Restore an archived order',
      description:
        'Brings the order back into lists and receivables, and into the customer\'s metrics if it is a purchase. Restoring a live order changes nothing. ' +
        'Answers the order with its ETag; with If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 200: ref(Order), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.orders.restore(request.db, request.params.id, ifMatchVersion(request))
    return present(request, reply, request.params.id)
  })

  app.post('/orders/:id/payments', {
    config: { scope: 'orders:write', contract: { etag: true, ifMatch: true } },
    schema: {
      operationId: 'createOrderPayment', tags, summary: 'Record a payment or a refund',
      description:
        'kind payment: only on a pending order, at most amount_outstanding (total - amount_paid + amount_refunded); covering it makes the order paid. ' +
        'kind refund: at most amount_paid - amount_refunded; on a paid, fulfilled or partially_refunded order the status becomes partially_refunded, ' +
        'or refunded when everything received has gone back; on a pending order it reverses a partial payment, which is owed again. ' +
        'Once an order is settled nothing is outstanding: refunds return money for returned goods and do not make the customer owe. With If-Match, a stale ETag answers 412.',
      params: IdParams, body: ref(OrderPaymentCreate),
      response: { 201: ref(OrderPaymentResult), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const payment = await service.recordPayment(request.db, request.params.id, request.body, ifMatchVersion(request))
    const order = await present(request, reply, request.params.id)
    reply.code(201)
    return { payment: service.toPaymentDto(payment), order }
  })

  app.get('/customers/:id/orders', {
    config: { scope: 'orders:read' },
    schema: {
      operationId: 'listCustomerOrders', tags: ['orders', 'customers'], summary: 'List a customer\'s orders',
      description: 'listOrders for one customer: same filters, sorting and cursors. 404 for an unknown customer.',
      params: IdParams, querystring: CustomerOrderListQuery,
      response: { 200: ref(OrderList), ...READ_ERRORS },
    },
  }, async (request) => {
    if (!(await customerExists(request.db, request.params.id))) throw notFound('customer')
    return listPage(request, { ...request.query, customer_id: request.params.id })
  })

  app.get('/customers/:id/receivables', {
    config: { scope: 'orders:read' },
    schema: {
      operationId: 'getCustomerReceivables', tags: ['orders', 'customers'], summary: 'A customer\'s open receivables',
      description:
        'Open credit orders (a due_date and something outstanding, not archived) summed per currency, with the overdue part ' +
        '(due_date before today, UTC). The orders themselves: listCustomerOrders with overdue=true.',
      params: IdParams,
      response: { 200: ref(CustomerReceivables), ...READ_ERRORS },
    },
  }, async (request) => service.customerReceivables(request.db, request.params.id))
}

export default orderRoutes
