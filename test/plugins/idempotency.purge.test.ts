import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../helpers/app.js'

/**
 * The idempotency-purge job keeps up with a backlog larger than one batch: a run deletes every
 * expired key (in batches of 5,000), never a live one, as the scheduler runs it.
 */
const ctx = await setup()

t.test('one run of the purge job deletes every expired key, batch after batch, and no live key', async (t) => {
  await sql`
    insert into idempotency_keys (actor, route, key, fingerprint, status, created_at, expires_at)
    select 'user:purge', 'POST /v1/customers', 'key-' || i, md5(i::text), 201, now() - interval '2 days',
           case when i <= 12000 then now() - interval '1 day' else now() + interval '1 day' end
    from generate_series(1, 12010) i`.execute(ctx.ownerDb)
  const run = await ctx.app.runJobNow('idempotency-purge')
  t.same(run, { ran: true, result: 12000, timeoutMs: 600_000 }, 'the 12,000 expired keys went in one run')
  const left = await sql<{ n: number }>`select count(*)::int as n from idempotency_keys where actor = 'user:purge'`.execute(ctx.ownerDb)
  t.equal(left.rows[0]!.n, 10, 'the live keys stay')
})
