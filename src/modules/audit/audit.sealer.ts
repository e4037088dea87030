import fp from 'fastify-plugin'
import { sealAuditTrail, verifyAuditChain } from './audit.repository.js'

export interface AuditSealerOptions {
  /** Milliseconds between seals; 0 turns the schedule off (verification still seals first). */
  intervalMs: number
  /** Milliseconds between full verifications of the chain; 0 (or unset) turns them off. */
  fullVerifyIntervalMs?: number
}

/**
 * Seals the audit trail into its hash chain in the background, so the unsealed tail stays short
 * and verification has little left to do. No seal waits for another process's (wait = false).
 * A daily full verification re-reads what the incremental ones (GET /v1/audit-events/verify)
 * skip: events before the last verified position. A broken chain is logged at error level.
 */
export default fp<AuditSealerOptions>(
  async (app, opts) => {
    app.scheduleJob({ name: 'audit-seal', intervalMs: opts.intervalMs, run: (db) => sealAuditTrail(db, { wait: false }) })
    app.scheduleJob({
      name: 'audit-verify-full',
      intervalMs: opts.fullVerifyIntervalMs ?? 0,
      timeoutMs: 60 * 60_000,
      run: async (db) => {
        const v = await verifyAuditChain(db, { full: true })
        if (!v.intact) app.log.error({ audit_chain: { broken_seq: v.broken_seq, reason: v.reason } }, 'the audit chain does not verify')
        return { intact: v.intact, head_seq: v.head_seq }
      },
    })
  },
  { name: 'audit-sealer', dependencies: ['scheduler'] },
)
