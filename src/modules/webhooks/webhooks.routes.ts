import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ifMatchVersion, replyNotModified, setEtag } from '../../lib/etag.js'
import { pageRequest, toPage, type SortKey } from '../../lib/pagination.js'
import { notFound } from '../../lib/problem.js'
import { IdParams, problemResponses, ref, READ_ERRORS, WRITE_ERRORS } from '../../lib/schema.js'
import * as repo from './webhooks.repository.js'
import * as service from './webhooks.service.js'
import {
  DeliveryListQuery, DeliveryParams, SecretRotated, SecretRotation, SubscriptionListQuery, WebhookDelivery, WebhookDeliveryDetail, WebhookDeliveryList,
  WebhookReplay, WebhookReplayAccepted, WebhookSubscription, WebhookSubscriptionCreate, WebhookSubscriptionCreated, WebhookSubscriptionList,
  WebhookSubscriptionPatch, webhookSchemas,
} from './webhooks.schemas.js'

const tags = ['webhooks']
const NEWEST_FIRST: SortKey[] = [{ field: 'created_at', desc: true, type: 'timestamp' }]

const SIGNING =
  'Each delivery is a POST of {type, timestamp, data} (data: the event as GET /v1/events shows it without pii:read) with the Standard Webhooks ' +
  'headers webhook-id (the delivery id: the same on every retry, deduplicate on it), webhook-timestamp and webhook-signature ("v1,<base64>"; ' +
  'during a secret rotation one signature per valid secret, space-separated). Verify with any Standard Webhooks library.'

const webhookRoutes: FastifyPluginAsyncTypebox<service.WebhookSettings> = async (app, settings) => {
  for (const schema of webhookSchemas) app.addSchema(schema)

  app.post('/webhook-subscriptions', {
    config: { scope: 'webhooks:write' },
    schema: {
      operationId: 'createWebhookSubscription', tags, summary: 'Subscribe a URL to events',
      description:
        `Answers 201 with the signing secret, shown only here. The subscription receives the events committed after it. ${SIGNING} ` +
        'A URL whose host is or resolves to a private, loopback, link-local or reserved address is refused (422 webhook-target-refused) unless allow-listed; ' +
        'the address is checked again at each delivery (DNS rebinding).',
      body: ref(WebhookSubscriptionCreate),
      response: { 201: ref(WebhookSubscriptionCreated), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const { row, secret } = await service.createSubscription(request.db, request.body, settings)
    setEtag(reply, row.version)
    reply.code(201).header('location', `/v1/webhook-subscriptions/${row.id}`)
    return { ...service.toSubscriptionDto(row), secret }
  })

  app.get('/webhook-subscriptions', {
    config: { scope: 'webhooks:read' },
    schema: {
      operationId: 'listWebhookSubscriptions', tags, summary: 'List webhook subscriptions',
      description: 'Cursor-paginated, newest first; secrets are never listed. Archived subscriptions are listed only with archived=true (only them) or archived=all.',
      querystring: SubscriptionListQuery,
      response: { 200: ref(WebhookSubscriptionList), ...READ_ERRORS },
    },
  }, async (request) => {
    const page = pageRequest(request.query, NEWEST_FIRST)
    const rows = await repo.listSubscriptions(request.db, { status: request.query.status, archived: request.query.archived ?? 'false' }, page)
    return toPage(rows, page, service.toSubscriptionDto)
  })

  app.get('/webhook-subscriptions/:id', {
    config: { scope: 'webhooks:read' },
    schema: {
      operationId: 'getWebhookSubscription', tags, summary: 'Get a webhook subscription',
      description: 'The subscription and its ETag; If-None-Match with the current ETag answers 304.',
      params: IdParams,
      response: { 200: ref(WebhookSubscription), 304: Type.Null({ description: 'Not modified' }), ...READ_ERRORS },
    },
  }, async (request, reply) => {
    const row = await repo.findSubscription(request.db, request.params.id)
    if (!row) throw notFound('webhook subscription')
    if (replyNotModified(request, reply, row.version)) return reply
    setEtag(reply, row.version)
    return service.toSubscriptionDto(row)
  })

  app.patch('/webhook-subscriptions/:id', {
    config: { scope: 'webhooks:write' },
    schema: {
      operationId: 'updateWebhookSubscription', tags, summary: 'Update a webhook subscription (JSON Merge Patch)',
      description:
        'url, event_types, filter, status and description. status paused holds deliveries (events keep queueing); active resumes, and re-enables a ' +
        'subscription the service disabled (delivery goes on from where it stopped). A new url passes the same SSRF check as on create. With If-Match, a stale ETag answers 412.',
      params: IdParams, body: ref(WebhookSubscriptionPatch),
      response: { 200: ref(WebhookSubscription), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const row = await service.patchSubscription(request.db, request.params.id, request.body, ifMatchVersion(request), settings)
    setEtag(reply, row.version)
    return service.toSubscriptionDto(row)
  })

  app.delete('/webhook-subscriptions/:id', {
    config: { scope: 'webhooks:write' },
    schema: {
      operationId: 'deleteWebhookSubscription', tags, summary: 'Archive a webhook subscription',
      description:
        'Stops delivery at once (nothing is fanned out or sent while archived) and hides it from lists (see archived); its secrets and delivery log are kept. ' +
        'Archiving an archived subscription changes nothing (204). restoreWebhookSubscription resumes delivery from where it stopped. With If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 204: Type.Null({ description: 'Archived' }), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.subscriptions.archive(request.db, request.params.id, ifMatchVersion(request))
    return reply.code(204).send(null)
  })

  app.post('/webhook-subscriptions/:id/restore', {
    config: { scope: 'webhooks:write' },
    schema: {
      operationId: 'restoreWebhookSubscription', tags, summary: 'Restore an archived webhook subscription',
      description: 'Delivery resumes from where it stopped (the events committed meanwhile are delivered). Restoring a live subscription changes nothing. With If-Match, a stale ETag answers 412.',
      params: IdParams,
      response: { 200: ref(WebhookSubscription), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    await repo.subscriptions.restore(request.db, request.params.id, ifMatchVersion(request))
    const row = (await repo.findSubscription(request.db, request.params.id))!
    setEtag(reply, row.version)
    return service.toSubscriptionDto(row)
  })

  app.post('/webhook-subscriptions/:id/rotate-secret', {
    config: { scope: 'webhooks:write' },
    schema: {
      operationId: 'rotateWebhookSecret', tags, summary: 'Rotate a subscription\'s signing secret',
      description:
        'Answers the new secret (shown only here). Until previous_secret_expires_at, deliveries carry two signatures (new and previous secret), ' +
        'so receivers can switch at their pace. With If-Match, a stale ETag answers 412.',
      params: IdParams, body: Type.Optional(ref(SecretRotation)),
      response: { 200: ref(SecretRotated), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const { row, secret, previous_secret_expires_at } = await service.rotateSecret(request.db, request.params.id, request.body?.overlap_seconds, ifMatchVersion(request), settings)
    setEtag(reply, row.version)
    return { secret, previous_secret_expires_at }
  })

  app.get('/webhook-subscriptions/:id/deliveries', {
    config: { scope: 'webhooks:read' },
    schema: {
      operationId: 'listWebhookDeliveries', tags, summary: 'A subscription\'s delivery log',
      description: 'Newest first: each delivery\'s status, attempt count and its last attempt\'s status code, latency and response excerpt. status=dead lists the dead letters.',
      params: IdParams, querystring: DeliveryListQuery,
      response: { 200: ref(WebhookDeliveryList), ...READ_ERRORS },
    },
  }, async (request) => {
    if (!(await repo.findSubscription(request.db, request.params.id))) throw notFound('webhook subscription')
    const page = pageRequest(request.query, NEWEST_FIRST)
    const rows = await repo.listDeliveries(request.db, request.params.id, { status: request.query.status }, page)
    return toPage(rows, page, service.toDeliveryDto)
  })

  app.get('/webhook-subscriptions/:id/deliveries/:delivery_id', {
    config: { scope: 'webhooks:read' },
    schema: {
      operationId: 'getWebhookDelivery', tags, summary: 'A delivery with every attempt',
      params: DeliveryParams,
      response: { 200: ref(WebhookDeliveryDetail), ...READ_ERRORS },
    },
  }, async (request) => {
    const row = await repo.findDelivery(request.db, request.params.id, request.params.delivery_id)
    if (!row) throw notFound('delivery')
    const attempts = await repo.deliveryAttempts(request.db, row.id)
    return {
      ...service.toDeliveryDto(row),
      attempts_log: attempts.map((a) => ({
        attempt: a.attempt, started_at: a.started_at, status_code: a.status_code, latency_ms: a.latency_ms, response_excerpt: a.response_excerpt, error: a.error,
      })),
    }
  })

  app.post('/webhook-subscriptions/:id/deliveries/:delivery_id/retry', {
    config: { scope: 'webhooks:write' },
    schema: {
      operationId: 'retryWebhookDelivery', tags, summary: 'Retry a delivery now',
      description:
        'Makes the delivery due at once with a fresh retry schedule (a dead letter becomes pending; a succeeded one is sent again, with the same webhook-id). ' +
        'Answers 202 with the delivery; the subscription must be active for it to go out.',
      params: DeliveryParams,
      response: { 202: ref(WebhookDelivery), ...WRITE_ERRORS },
    },
  }, async (request, reply) => {
    const row = await service.retryDelivery(request.db, request.params.id, request.params.delivery_id)
    reply.code(202)
    return service.toDeliveryDto(row)
  })

  app.post('/webhook-subscriptions/:id/replay', {
    config: { scope: 'webhooks:write' },
    schema: {
      operationId: 'replayWebhookEvents', tags, summary: 'Deliver again every event after a feed position',
      description:
        'Moves the subscription back in the change feed: each matching event after `position` is queued again as a new delivery (new webhook-id), ' +
        'in feed order. A position before the feed\'s retention answers 410 position-expired (as GET /v1/events does).',
      params: IdParams, body: ref(WebhookReplay),
      response: { 202: ref(WebhookReplayAccepted), ...WRITE_ERRORS, ...problemResponses(410) },
    },
  }, async (request, reply) => {
    const accepted = await service.replay(request.db, request.params.id, request.body.position)
    reply.code(202)
    return accepted
  })
}

export default webhookRoutes
