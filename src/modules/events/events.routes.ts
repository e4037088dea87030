import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { HttpProblem, badRequest, pointer } from '../../lib/problem.js'
import { problemResponses, ref } from '../../lib/schema.js'
import { eventsAfter, type EventRecord, type FeedPage } from './events.repository.js'
import { decodePosition, encodePosition, type Position } from './events.position.js'
import { DEFAULT_FEED_LIMIT, EVENT_TYPE_PATTERN, EventFeed, EventFeedQuery, eventSchemas, type EventDto, type EventFeedDto } from './events.schemas.js'
import { FeedWatcher } from './events.watcher.js'

export interface EventRoutesOptions {
  /** The request deadline (REQUEST_DEADLINE_MS): a long poll answers this long before it. */
  deadlineMs: number
  /** How often waiting readers' instance looks for new events (default 100 ms). */
  pollIntervalMs?: number
  /** The retention in days, named in the 410 problem. */
  retentionDays: number
}

/** A long poll answers this long before the request deadline, so the deadline's 503 never cuts it. */
const DEADLINE_MARGIN_MS = 1000

const tags = ['events']

const invalidPosition = () =>
  badRequest('The position is not one this API issued. Use an event\'s position or a next_position, or leave `after` out to start from the oldest retained event.', [
    { pointer: pointer('after'), message: 'is not a feed position' },
  ])

const EVENT_TYPE = new RegExp(EVENT_TYPE_PATTERN)

/** The types of `types=`, each `<entity>.<what happened>` (checked here: one linear pattern per name, not one for the list). */
function parseTypes(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined
  const types = value.split(',')
  const bad = types.findIndex((type) => !EVENT_TYPE.test(type))
  if (bad >= 0) {
    throw badRequest('Each event type is <entity>.<what happened>, lower case, e.g. customer.created.', [
      { pointer: pointer('types'), message: `item ${bad + 1} is not an event type` },
    ])
  }
  return types
}

const positionExpired = (retentionDays: number) =>
  new HttpProblem({
    status: 410,
    title: 'Gone',
    code: 'position-expired',
    detail: `Events after this position are older than the retention (${retentionDays} days) and were removed. Start again without \`after\` (the oldest retained event) and reconcile from the resources themselves.`,
    errors: [{ pointer: pointer('after'), message: 'is older than the retention' }],
  })

function toEventDto(e: EventRecord): EventDto {
  return { ...e, position: encodePosition(e.position) }
}

function toFeed(page: Extract<FeedPage, { expired: false }>): EventFeedDto {
  return { data: page.events.map(toEventDto), next_position: encodePosition(page.next) }
}

const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, opts) => {
  for (const schema of eventSchemas) app.addSchema(schema)
  const watcher = new FeedWatcher(app.db, opts.pollIntervalMs ?? 100)
  app.addHook('preClose', async () => watcher.close())

  app.get('/events', {
    config: { scope: 'events:read' },
    schema: {
      operationId: 'listEvents', tags, summary: 'Read the change feed',
      description: 'Every committed change as domain events, in one total order: a reader that passes each next_position back as `after` sees every event exactly once, including those of transactions that commit late. Long polling with `wait`. Positions older than the retention answer 410 (code position-expired).',
      querystring: EventFeedQuery,
      response: { 200: ref(EventFeed), ...problemResponses(400, 401, 403, 410) },
    },
  }, async (request, reply) => {
    const q = request.query
    let after: Position | null = null
    if (q.after !== undefined) {
      after = decodePosition(q.after)
      if (!after) throw invalidPosition()
    }
    const types = parseTypes(q.types)
    const limit = q.limit ?? DEFAULT_FEED_LIMIT
    const waitMs = Math.min((q.wait ?? 0) * 1000, opts.deadlineMs - reply.elapsedTime - DEADLINE_MARGIN_MS)
    const until = Date.now() + waitMs
    const gone = new AbortController()
    const onClose = () => gone.abort()
    reply.raw.once('close', onClose)
    try {
      for (;;) {
        const page = await eventsAfter(request.db, after, { types, limit })
        if (page.expired) throw positionExpired(opts.retentionDays)
        const left = until - Date.now()
        if (page.events.length > 0 || left <= 0 || gone.signal.aborted || watcher.closed) return toFeed(page)
        after = page.next
        await watcher.wait(page.next, left, gone.signal)
      }
    } finally {
      reply.raw.off('close', onClose)
    }
  })
}

export default eventRoutes
