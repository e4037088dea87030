import fp from 'fastify-plugin'
import { Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Prometheus metrics at GET /metrics (outside /v1, public like the other ops endpoints: expose it
 * only on the internal network). Process metrics plus one histogram of request durations labelled
 * by route pattern (never the raw URL, which would carry ids and search terms), method and status.
 * Each app has its own registry, so several apps in one process (tests) do not collide.
 */
export default fp(
  async (app) => {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route pattern, method and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    })

    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched'
      if (route !== '/metrics') duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000)
      done()
    })

    app.get('/metrics', { config: { scope: 'public' }, schema: { hide: true } }, async (_request, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    })
  },
  { name: 'metrics' },
)
