import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { hasScope } from '../../plugins/auth.js'
import { pageRequest, toPage } from '../../lib/pagination.js'
import { problem, notFound, pointer } from '../../lib/problem.js'
import { IdParams, problemResponses, ref } from '../../lib/schema.js'
import { customerVersion } from '../customers/index.js'
import { TIMELINE_KEYS, timelinePage } from './timeline.repository.js'
import { TIMELINE_TYPES, TimelinePage, TimelineQuery, timelineSchemas, type TimelineType } from './timeline.schemas.js'


/** Which sources a token may see: each needs its domain's read scope. */
const SOURCE_SCOPE = { interaction: 'interactions:read', order: 'orders:read', feedback: 'feedback:read', profile_change: 'customers:read' } as const

const timelineRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of timelineSchemas) app.addSchema(schema)

  app.get('/customers/:id/timeline', {
    config: { scope: 'customers:read' },
    schema: {
      operationId: 'getCustomerTimeline', tags: ['customers'], summary: 'A customer\'s history, newest first',
      description: 'Interactions, orders, feedback and profile changes merged by time in one query per page. ' +
        'Sources the token has no read scope for (orders:read, interactions:read, feedback:read) are left out.',
      params: IdParams, querystring: TimelineQuery,
      response: { 200: ref(TimelinePage), ...problemResponses(400, 401, 403, 404) },
    },
  }, async (request) => {
    const { types: typesParam } = request.query
    const wanted = typesParam ? [...new Set(typesParam.split(','))] : [...TIMELINE_TYPES]
    for (const t of wanted) {
      if (!(TIMELINE_TYPES as readonly string[]).includes(t)) {
        throw problem('validation-failed', `Unknown timeline type "${t}".`, [{ pointer: pointer('types'), message: `must list only ${TIMELINE_TYPES.join(', ')}` }])
      }
    }
    const types = (wanted as TimelineType[]).filter((t) => hasScope(request.auth, SOURCE_SCOPE[t]))
    // The page's query also says whether the customer exists (one round trip); when it cannot run
    // (no visible source, a bad cursor) a separate check keeps an unknown customer's 404 first.
    const exists = async () => {
      if ((await customerVersion(request.db, request.params.id)) === undefined) throw notFound('customer')
    }
    if (types.length === 0) {
      await exists()
      return { data: [], next_cursor: null }
    }
    let page
    try {
      page = pageRequest(request.query, TIMELINE_KEYS)
    } catch (err) {
      await exists()
      throw err
    }
    const rows = await timelinePage(request.db, request.params.id, types, page)
    if (!rows) throw notFound('customer')
    return toPage(rows as unknown as Array<Record<string, unknown>>, page, (r) => r as never)
  })
}

export default timelineRoutes
