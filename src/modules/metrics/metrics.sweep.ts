import fp from 'fastify-plugin'
import { refreshAllLifecycleStages } from './metrics.repository.js'

/**
 * The lifecycle sweep: re-applies the lifecycle rules to every customer at start and then every
 * intervalMs, because time alone moves customers to at_risk and churned (0 turns it off).
 */
export default fp<{ intervalMs: number }>(
  async (app, opts) => {
    app.scheduleJob({ name: 'lifecycle-sweep', intervalMs: opts.intervalMs, atStart: true, run: refreshAllLifecycleStages })
  },
  { name: 'lifecycle-sweep', dependencies: ['scheduler'] },
)
