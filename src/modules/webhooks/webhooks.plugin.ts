import fp from 'fastify-plugin'
import { DEFAULT_WORKER_OPTIONS, DeliveryWorker, type WorkerOptions } from './webhooks.worker.js'
import type { TargetPolicy } from './webhooks.ssrf.js'

export interface WebhookWorkerPluginOptions {
  policy: TargetPolicy
  /** false: this process does not deliver (WEBHOOK_WORKER=off; `npm run worker` does). */
  worker: Partial<Omit<WorkerOptions, 'policy'>> | false
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The delivery worker of this process, when it runs one. */
    webhookWorker: DeliveryWorker | null
  }
}

/**
 * The delivery worker inside the API process: started when the app is ready, drained when it
 * closes (preClose: before the pool goes), so in-flight deliveries finish and are recorded.
 */
export default fp<WebhookWorkerPluginOptions>(
  async (app, opts) => {
    const worker = opts.worker === false ? null : new DeliveryWorker(app.db, { ...DEFAULT_WORKER_OPTIONS, ...opts.worker, policy: opts.policy }, app.log)
    app.decorate('webhookWorker', worker)
    if (!worker) return
    app.addHook('onReady', async () => worker.start())
    app.addHook('preClose', async () => worker.stop())
  },
  { name: 'webhook-worker', dependencies: ['db'] },
)
