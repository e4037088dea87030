/**
 * The SDK's change feed (crm.events) against the app listening on a port and a real PostgreSQL:
 * a follower long-polls while concurrent writers commit and sees each event once, in the feed's
 * order; it resumes from its position; an abort ends a long poll at once; a purged position is a
 * CrmProblem (410 position-expired).
 */
import t from 'tap'
import { sql } from 'kysely'
import type { AddressInfo } from 'node:net'
import { setup, token } from '../helpers/app.js'
import { createCrmClient, CrmProblem, type Event, type EventFollowOptions } from '../../sdk/src/index.js'

const ctx = await setup()
await ctx.app.listen({ port: 0, host: '127.0.0.1' })
const baseUrl = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`
const adminToken = await token('admin pii:read')
const crm = createCrmClient({ baseUrl, token: () => adminToken })
/** The writers: another client, so the follower's connection is its own. */
const writer = createCrmClient({ baseUrl, token: () => adminToken })

const CUSTOMER_TYPES = ['customer.created', 'customer.updated']

/** Every event from `after` up to the newest (wait: 0 ends there), and where that is. */
async function readAll(opts: EventFollowOptions = {}): Promise<{ events: Event[]; position: string }> {
  const follower = crm.events.follow({ ...opts, wait: 0 })
  const events: Event[] = []
  for await (const e of follower) events.push(e)
  return { events, position: follower.position! }
}

const head = async () => (await readAll({ limit: 200 })).position

async function newCustomer(name: string): Promise<string> {
  return (await writer.createCustomer({ body: { name } })).data.id
}

t.test('a follower long-polling while 4 writers commit sees every event once, in feed order', async (t) => {
  const start = await head()
  const controller = new AbortController()
  const follower = crm.events.follow({ after: start, types: CUSTOMER_TYPES, limit: 7, signal: controller.signal })
  const WRITERS = 4
  const PER_WRITER = 5
  const UPDATES = 2
  const expected = WRITERS * PER_WRITER * (1 + UPDATES)

  const seen: Event[] = []
  let firstSeenAt = 0
  const following = (async () => {
    for await (const e of follower) {
      firstSeenAt ||= Date.now()
      seen.push(e)
      if (seen.length === expected) break
    }
  })()
  // Give the follower time to be waiting in a long poll before anything commits.
  await new Promise((r) => setTimeout(r, 200))
  const ids = (await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    const mine: string[] = []
    for (let i = 0; i < PER_WRITER; i++) {
      const id = await newCustomer(`Writer ${w}.${i}`)
      mine.push(id)
      for (let u = 1; u <= UPDATES; u++) await writer.updateCustomer({ path: { id }, body: { occupation: `job ${u}` } })
    }
    return mine
  }))).flat()
  const writtenAt = Date.now()
  const timer = setTimeout(() => controller.abort(), 15_000)
  await following
  clearTimeout(timer)

  t.equal(seen.length, expected, `${expected} events, none missing (${seen.length})`)
  t.equal(new Set(seen.map((e) => e.id)).size, seen.length, 'none twice')
  t.same(new Set(seen.map((e) => e.entity_id)), new Set(ids), 'of the written customers')
  const history = (id: string) => seen.filter((e) => e.entity_id === id).map((e) => `${e.type}@${e.version}`).join(' ')
  t.same(ids.map(history), ids.map(() => 'customer.created@1 customer.updated@2 customer.updated@3'), 'each customer\'s changes in the order they happened')
  t.ok(firstSeenAt > 0 && firstSeenAt < writtenAt, 'the first event arrived while the writers were still writing')
  const replay = await readAll({ after: start, types: CUSTOMER_TYPES })
  t.same(seen.map((e) => e.id), replay.events.map((e) => e.id), 'in the order a later replay of the feed gives')
  t.equal(follower.position, seen.at(-1)!.position, 'its position is the last event handed out')
})

t.test('a follower resumes from its position; with several pages; without a type filter too', async (t) => {
  const start = await head()
  const ids: string[] = []
  for (let i = 0; i < 10; i++) ids.push(await newCustomer(`Resume ${i}`))

  const first = crm.events.follow({ after: start, types: ['customer.created'], limit: 3, wait: 0 })
  const before: Event[] = []
  for await (const e of first) {
    before.push(e)
    if (before.length === 4) break
  }
  t.equal(first.position, before[3]!.position, 'stopped after the 4th event, its position kept')

  const after = await readAll({ after: first.position!, types: 'customer.created', limit: 3 })
  t.same([...before, ...after.events].map((e) => e.entity_id), ids, 'the 10 creations, each once, in order')

  const again: Event[] = []
  for await (const e of first) again.push(e)
  t.same(again.map((e) => e.id), after.events.map((e) => e.id), 'iterating the same follower again continues where it stopped')

  const all = await readAll({ after: start, limit: 2 })
  t.same(all.events.filter((e) => e.type === 'customer.created').map((e) => e.entity_id), ids, 'unfiltered, in pages of 2')
  t.equal(all.position, after.position, 'both end at the newest event')
})

t.test('read() answers one page; a type filter of nothing is refused before any request', async (t) => {
  const start = await head()
  const id = await newCustomer('One Page')
  await writer.updateCustomer({ path: { id }, body: { occupation: 'x' } })
  const page = await crm.events.read({ after: start, types: ['customer.updated'] })
  t.same(page.data.map((e) => `${e.type} ${e.entity_id}`), [`customer.updated ${id}`])
  t.equal(page.next_position, page.data[0]!.position)
  const empty = await crm.events.read({ after: page.next_position })
  t.same(empty.data, [], 'nothing newer')
  t.equal(empty.next_position, page.next_position, 'the same position')
  await t.rejects(crm.events.follow({ types: [] })[Symbol.asyncIterator]().next(), TypeError)
  await t.rejects(crm.events.read({ types: [] }), TypeError)
  const bad = await crm.events.read({ types: ['Customer'] }).then(() => null, (e: unknown) => e)
  t.ok(bad instanceof CrmProblem && bad.status === 400 && bad.errorsAt('/types').length === 1, `a bad type is a 400 problem (${String(bad)})`)
})

t.test('an abort ends a follower in the middle of a long poll, at once and without an error', async (t) => {
  const controller = new AbortController()
  const follower = crm.events.follow({ after: await head(), signal: controller.signal })
  const started = Date.now()
  setTimeout(() => controller.abort(), 300)
  const seen: Event[] = []
  for await (const e of follower) seen.push(e)
  const took = Date.now() - started
  t.same(seen, [], 'nothing was written')
  t.ok(took >= 250 && took < 2000, `ended ${took} ms after starting (the long poll would have taken 20 s)`)

  // Aborted before it starts: it ends without asking.
  const none: Event[] = []
  for await (const e of crm.events.follow({ signal: AbortSignal.abort() })) none.push(e)
  t.same(none, [])
})

t.test('a position older than the retention throws CrmProblem position-expired (410)', async (t) => {
  const old = await head()
  await newCustomer('Soon Purged')
  const kept = await head()
  // What the events-purge job does once events are older than the retention (EVENTS_RETENTION_DAYS).
  await sql`select crm_events_purge(now() + interval '1 day', 100000)`.execute(ctx.ownerDb)

  const err = await (async () => {
    for await (const _ of crm.events.follow({ after: old })) return null
    return null
  })().then(() => null, (e: unknown) => e)
  t.ok(err instanceof CrmProblem, `a CrmProblem (${String(err)})`)
  const problem = err as CrmProblem
  t.equal(problem.status, 410)
  t.equal(problem.code, 'position-expired')
  t.ok(problem.errorsAt('/after').length, 'about `after`')
  await t.rejects(crm.events.read({ after: old }), { status: 410, code: 'position-expired' }, 'read() too')

  const fromKept = await readAll({ after: kept })
  t.same(fromKept.events, [], 'the newest purged position is still a place to continue from')
  const id = await newCustomer('After The Purge')
  const fresh = await readAll({ after: kept })
  t.same(fresh.events.map((e) => e.entity_id), [id], 'and sees what commits after it')
})
