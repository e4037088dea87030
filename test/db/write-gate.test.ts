import t from 'tap'
import { sql } from 'kysely'
import { setup } from '../helpers/app.js'
import { closeWriteGate } from '../../src/db/write-gate.js'

const ctx = await setup()

const waitingOnAdvisory = async () =>
  (await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
     where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'`.execute(ctx.ownerDb)).rows[0]!.n

t.test('a write waits while a migration holds the write gate, then commits; a read does not wait', async (t) => {
  const headers = await ctx.auth()
  await ctx.ownerDb.connection().execute(async (migration) => {
    await sql`begin`.execute(migration)
    await sql`select ${closeWriteGate}`.execute(migration)
    let done = false
    const write = ctx.app.inject({ method: 'POST', url: '/v1/customers', headers, payload: { name: 'Gate Keeper' } }).finally(() => { done = true })
    for (let i = 0; i < 200 && (await waitingOnAdvisory()) === 0; i++) await new Promise((r) => setTimeout(r, 25))
    t.equal(await waitingOnAdvisory(), 1, 'the write waits at the gate')
    t.notOk(done, 'and has not answered')
    const read = await ctx.app.inject({ method: 'GET', url: '/v1/customers?limit=1', headers })
    t.equal(read.statusCode, 200, 'a read passes meanwhile')
    await sql`commit`.execute(migration)
    const res = await write
    t.equal(res.statusCode, 201, 'once the gate opens the write commits')
    t.equal(res.json().name, 'Gate Keeper')
  })
})
