import fp from 'fastify-plugin'
import type { Db, DbExecutor } from '../db/database.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
  }
  interface FastifyRequest {
    /** The request's database handle: its transaction on mutating routes, the pool otherwise. */
    db: DbExecutor
  }
}

export interface DbPluginOptions {
  db: Db
  /** Destroy the pool when the app closes (false when the caller owns it, as tests do). */
  owned?: boolean
}

export default fp<DbPluginOptions>(
  async (app, opts) => {
    app.decorate('db', opts.db)
    app.decorateRequest('db', null as unknown as DbExecutor)
    app.addHook('onRequest', (request, _reply, done) => {
      request.db = opts.db
      done()
    })
    if (opts.owned !== false) app.addHook('onClose', async () => opts.db.destroy())
  },
  { name: 'db' },
)
