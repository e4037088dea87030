import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type pg from 'pg'
import { findPool, type Db } from '../db/database.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's Prometheus registry: plugins add their metrics to it (see the list in the README). */
    metrics: Registry
    /** Adds a pool to the crm_db_pool_* gauges under the given name ('primary', 'replica'). */
    observePool(name: string, db: Db): void
  }
}

/** A status code's class as a label: '2xx', '4xx', '5xx'. */
export const statusClass = (status: number): string => `${Math.floor(status / 100)}xx`

/**
 * Prometheus metrics at GET /metrics (outside /v1, public like the other ops endpoints: expose it
 * only on the internal network). Process metrics; per route (its pattern, never the raw URL,
 * which would carry ids and search terms), method and status class, a request counter and a
 * duration histogram; the database pools. Other plugins add theirs to app.metrics (scheduler
 * jobs, replica lag and routing, deadline 503s). Each app has its own registry, so several apps
 * in one process (tests) do not collide.
 */
export default fp(
  async (app) => {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    app.decorate('metrics', registry)
    const labelNames = ['method', 'route', 'status_class'] as const
    const requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by route pattern, method and status class',
      labelNames,
      registers: [registry],
    })
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route pattern, method and status class',
      labelNames,
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    })

    const pools = new Map<string, pg.Pool>()
    // A Kysely instance not made by createDb has no pool to observe: its figures are left out.
    app.decorate('observePool', (name: string, db: Db) => {
      const pool = findPool(db)
      if (pool) pools.set(name, pool)
    })
    app.observePool('primary', app.db)
    new Gauge({
      name: 'crm_db_pool_connections',
      help: 'Database pool connections by pool and state (total: open; idle: open and free)',
      labelNames: ['pool', 'state'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [name, pool] of pools) {
          this.set({ pool: name, state: 'total' }, pool.totalCount)
          this.set({ pool: name, state: 'idle' }, pool.idleCount)
        }
      },
    })
    new Gauge({
      name: 'crm_db_pool_waiting',
      help: 'Queries waiting for a free connection, by pool',
      labelNames: ['pool'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [name, pool] of pools) this.set({ pool: name }, pool.waitingCount)
      },
    })

    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched'
      if (route !== '/metrics') {
        const labels = { method: request.method, route, status_class: statusClass(reply.statusCode) }
        requests.inc(labels)
        duration.observe(labels, reply.elapsedTime / 1000)
      }
      done()
    })
  },
  { name: 'metrics', dependencies: ['db'] },
)

/** GET /metrics, registered with the other routes (after the plugins whose hooks every route gets). */
export const metricsRoute = fp(
  async (app) => {
    app.get('/metrics', { config: { scope: 'public' }, schema: { hide: true } }, async (_request, reply) => {
      reply.type(app.metrics.contentType)
      return app.metrics.metrics()
    })
  },
  { name: 'metrics-route', dependencies: ['metrics'] },
)
