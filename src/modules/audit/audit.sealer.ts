import fp from 'fastify-plugin'
import { sealAuditTrail } from './audit.repository.js'

export interface AuditSealerOptions {
  /** Milliseconds between seals; 0 turns the schedule off (verification still seals first). */
  intervalMs: number
}

/**
 * Seals the audit trail into its hash chain in the background, so the unsealed tail stays short
 * and verification has little left to do. One seal at a time per process, and none waits for
 * another process's (wait = false); a failure (database down) is logged and the next tick tries
 * again. The timer is unref'd: it never keeps the process alive.
 */
export default fp<AuditSealerOptions>(
  async (app, opts) => {
    if (opts.intervalMs <= 0) return
    let running: Promise<void> | undefined
    let timer: NodeJS.Timeout | undefined
    const seal = async () => {
      try {
        const sealed = await sealAuditTrail(app.db, { wait: false })
        if (sealed > 0) app.log.debug({ sealed }, 'audit events sealed')
      } catch (err) {
        app.log.warn({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'audit sealing failed; will retry')
      } finally {
        running = undefined
      }
    }
    const tick = () => {
      running ??= seal()
    }
    app.addHook('onReady', async () => {
      timer = setInterval(tick, opts.intervalMs)
      timer.unref()
    })
    app.addHook('preClose', async () => {
      clearInterval(timer)
      await running
    })
  },
  { name: 'audit-sealer', dependencies: ['db'] },
)
