import fp from 'fastify-plugin'
import { MERGE_STATEMENT_TIMEOUT_MS, recoverImports } from './imports.service.js'

/**
 * The import-recovery job: every intervalMs (0 turns it off) one instance finishes the imports
 * whose process died (recoverImports). Its time limit is the merge's: a resumed merge may take
 * as long as a first one.
 */
export default fp<{ intervalMs: number }>(
  async (app, opts) => {
    app.scheduleJob({
      name: 'import-recovery',
      intervalMs: opts.intervalMs,
      atStart: true,
      timeoutMs: MERGE_STATEMENT_TIMEOUT_MS,
      run: (trx) => recoverImports(trx),
    })
  },
  { name: 'import-recovery', dependencies: ['scheduler'] },
)
