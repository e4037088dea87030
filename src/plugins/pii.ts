import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import { applyPlan, PII_CLASSES, planHas, planOf, type PiiPlan } from '../lib/pii.js'
import { canReadPii } from './auth.js'

/**
 * # The personal-data presenter (API.md § Security)
 *
 * Handlers return personal data in the clear; this plugin is the one place that masks it. When a
 * route is declared, its response schemas are walked (lib/pii.ts planOf) for the representations
 * the PII registry names (Customer, ContactPoint, AuditEvent, ...), however deep (a page of
 * customers, a customer's contact points). A route that carries any:
 * - has its handler wrapped: for a caller without `pii:read`, the payload it returns (or sends)
 *   is masked per the registry before it is serialized, and before a request transaction
 *   captures it for an Idempotency-Key;
 * - answers `Cache-Control: no-store` on success, and `x-pii-masked: true` when it masked.
 * So a new route that answers customers is masked because its schema says so, with nothing to
 * remember. A route that streams representations (an export) declares what it streams in
 * `config.piiStream`, and masks each item with `request.maskPii`.
 *
 * Registered before the audit plugin, whose transaction wrapper must see the masked payload.
 */
declare module 'fastify' {
  interface FastifyContextConfig {
    /** The representation (schema $id) a streaming route writes item by item; see request.maskPii. */
    piiStream?: string
    /** Set by this plugin: where the route's responses carry personal data. */
    pii?: RoutePii
  }
  interface FastifyRequest {
    /** An item of this route's piiStream in the caller's view (masked without pii:read). */
    maskPii<T>(value: T): T
  }
}

interface RoutePii {
  /** Plans by response status key ('200', '2xx', 'default'). */
  plans: Record<string, PiiPlan>
  stream?: PiiPlan
  /** Whether a caller without pii:read sees something masked. */
  masks: boolean
}

const WRAPPED = Symbol('pii presenter')

function planFor(pii: RoutePii, status: number): PiiPlan | undefined {
  return pii.plans[String(status)] ?? pii.plans[`${String(status)[0]}xx`] ?? pii.plans.default
}

function present(request: FastifyRequest, reply: FastifyReply, pii: RoutePii, payload: unknown): unknown {
  if (payload === reply || canReadPii(request.auth)) return payload
  const plan = planFor(pii, reply.statusCode)
  return plan ? applyPlan(plan, payload) : payload
}

export default fp(
  async (app) => {
    app.decorateRequest('maskPii', function maskPii<T>(this: FastifyRequest, value: T): T {
      const stream = this.routeOptions.config.pii?.stream
      if (!stream) throw new Error(`${this.method} ${this.routeOptions.url} masks a stream item but declares no config.piiStream`)
      return (canReadPii(this.auth) ? value : applyPlan(stream, value)) as T
    })

    app.addHook('onRoute', function (route) {
      const resolve = (id: string) => (this.getSchemas() as Record<string, unknown>)[id]
      const plans: Record<string, PiiPlan> = {}
      const responses = (route.schema?.response ?? {}) as Record<string, unknown>
      for (const [status, schema] of Object.entries(responses)) {
        if (/^[45]/.test(status)) continue
        const plan = planOf(schema, resolve)
        if (plan) plans[status] = plan
      }
      const stream = route.config?.piiStream ? planOf({ $ref: `${route.config.piiStream}#` }, resolve) : undefined
      if (route.config?.piiStream && !stream) throw new Error(`${route.url}: piiStream ${route.config.piiStream} is not a personal representation`)
      if (Object.keys(plans).length === 0 && !stream) return
      const masked = (cls: keyof typeof PII_CLASSES) => PII_CLASSES[cls].masked
      const pii: RoutePii = { plans, stream, masks: [...Object.values(plans), stream].some((p) => planHas(p, masked)) }
      route.config = { ...route.config, pii }

      const handler = route.handler as RouteHandlerMethod & { [WRAPPED]?: true }
      if (handler[WRAPPED] || Object.keys(plans).length === 0) return
      const presenting = async function (this: unknown, request: FastifyRequest, reply: FastifyReply) {
        // A handler that sends instead of returning goes through the presenter too.
        const own = reply as unknown as { send: FastifyReply['send'] }
        const had = Object.getOwnPropertyDescriptor(own, 'send')
        const send = own.send
        own.send = (payload?: unknown) => send.call(reply, present(request, reply, pii, payload))
        try {
          return present(request, reply, pii, await handler.call(this as never, request, reply))
        } finally {
          if (had) Object.defineProperty(own, 'send', had)
          else delete (own as { send?: unknown }).send
        }
      }
      route.handler = Object.assign(presenting, { [WRAPPED]: true as const }) as RouteHandlerMethod
    })

    app.addHook('onSend', (request, reply, payload, done) => {
      const pii = request.routeOptions.config?.pii
      if (pii && reply.statusCode < 400) {
        reply.header('cache-control', 'no-store')
        if (pii.masks && !canReadPii(request.auth)) reply.header('x-pii-masked', 'true')
      }
      done(null, payload)
    })
  },
  { name: 'pii' },
)
