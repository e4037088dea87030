import fp from 'fastify-plugin'
import { sealAuditTrail } from './audit.repository.js'

export interface AuditSealerOptions {
  /** Milliseconds between seals; 0 turns the schedule off (verification still seals first). */
  intervalMs: number
}

/**
 * Seals the audit trail into its hash chain in the background, so the unsealed tail stays short
 * and verification has little left to do. No seal waits for another process's (wait = false).
 */
export default fp<AuditSealerOptions>(
  async (app, opts) => {
    app.scheduleJob({ name: 'audit-seal', intervalMs: opts.intervalMs, run: (db) => sealAuditTrail(db, { wait: false }) })
  },
  { name: 'audit-sealer', dependencies: ['scheduler'] },
)
