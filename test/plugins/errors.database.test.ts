import t from 'tap'
import { Writable } from 'node:stream'
import { sql } from 'kysely'
import { loggerOptions } from '../../src/app.js'
import { CONSTRAINT_PROBLEMS } from '../../src/lib/constraints.js'
import { setup } from '../helpers/app.js'

/**
 * Database errors the server causes (a data exception, a NOT NULL, a constraint no rule maps) are
 * 500s logged as bugs with their SQLSTATE and constraint, never their values; the constraints a
 * valid request can reach keep their 409 with the field. The faults are real PostgreSQL errors,
 * raised by a test-only trigger on interactions that the owner adds.
 */
const lines: string[] = []
const stream = new Writable({
  write(chunk, _enc, done) {
    lines.push(String(chunk))
    done()
  },
})
const ctx = await setup({ app: { logger: { ...(loggerOptions('info') as object), stream } } })
const writer = await ctx.auth()

await sql`
  create function test_server_fault() returns trigger language plpgsql as $$
  begin
    if new.subject = 'fault 22003' then
      raise exception 'value % is out of range', new.notes using errcode = '22003', detail = new.notes;
    elsif new.subject = 'fault 23502' then
      new.channel := null;
    end if;
    return new;
  end $$`.execute(ctx.ownerDb)
await sql`create trigger test_server_fault before insert on interactions for each row execute function test_server_fault()`.execute(ctx.ownerDb)
await sql`create unique index test_unmapped_idx on interactions (notes) where subject = 'fault unmapped'`.execute(ctx.ownerDb)

const customer = (await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: writer, payload: { name: 'Fault finder' } })).json().id as string

/** The log records written while `fn` ran, parsed. */
async function logged<T>(fn: () => Promise<T>): Promise<{ result: T; records: Array<Record<string, unknown>>; text: string }> {
  const from = lines.length
  const result = await fn()
  const text = lines.slice(from).join('')
  return { result, records: lines.slice(from).map((l) => JSON.parse(l) as Record<string, unknown>), text }
}

t.test('a data exception, a NOT NULL and an unmapped constraint the server causes are 500 bugs, logged without values', async (t) => {
  const cases = [
    { subject: 'fault 22003', sqlstate: '22003' },
    { subject: 'fault 23502', sqlstate: '23502', column: 'channel' },
    { subject: 'fault unmapped', sqlstate: '23505', constraint: 'test_unmapped_idx', twice: true },
  ]
  for (const c of cases) {
    const canary = `canary-${c.sqlstate}-x7q`
    const send = () => ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers: writer, payload: { customer_id: customer, channel: 'email', subject: c.subject, notes: canary } })
    if (c.twice) t.equal((await send()).statusCode, 201, 'the first of two identical notes is stored')
    const before = await ctx.count('interactions')
    const { result: res, records, text } = await logged(send)
    t.equal(res.statusCode, 500, `${c.sqlstate}: ${res.body}`)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.match(res.json(), { code: 'internal-server-error', status: 500, request_id: res.headers['x-request-id'] })
    t.notOk(res.body.includes(canary), `${c.sqlstate}: the answer does not quote the value`)
    t.equal(await ctx.count('interactions'), before, `${c.sqlstate}: nothing stored`)
    const bug = records.find((r) => r.level === 50)
    t.ok(bug, `${c.sqlstate}: logged at error level`)
    t.match(bug, { reqId: res.headers['x-request-id'], database: { sqlstate: c.sqlstate, ...(c.column ? { column: c.column } : {}), ...(c.constraint ? { constraint: c.constraint } : {}) } }, `${c.sqlstate}: the log has the SQLSTATE and where`)
    t.notOk(text.includes(canary), `${c.sqlstate}: the log does not quote the value`)
    t.notOk(text.includes('Failing row'), `${c.sqlstate}: nor PostgreSQL's detail`)
  }
})

t.test('the constraints a valid request can reach keep their 409 with the field', async (t) => {
  const first = await ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers: writer, payload: { customer_id: customer, channel: 'email', external_ref: 'ext-a' } })
  const second = await ctx.app.inject({ method: 'POST', url: '/v1/interactions', headers: writer, payload: { customer_id: customer, channel: 'email', external_ref: 'ext-b' } })
  t.equal(first.statusCode, 201)
  const { result: taken, records } = await logged(() => ctx.app.inject({ method: 'PATCH', url: `/v1/interactions/${second.json().id}`, headers: writer, payload: { external_ref: 'ext-a' } }))
  t.equal(taken.statusCode, 409, taken.body)
  t.match(taken.json(), { code: 'external-ref-taken', detail: 'Another interaction already has this external_ref.' })
  t.same(taken.json().errors, [{ pointer: '/external_ref', message: 'is already taken by another interaction' }])
  t.notOk(records.some((r) => (r.level as number) >= 50), 'a conflict is not logged as a bug')

  const owner = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: writer, payload: { name: 'Owner', contact_points: [{ kind: 'email', value: 'owner@example.com' }] } })
  t.equal(owner.statusCode, 201)
  const thief = await ctx.app.inject({
    method: 'POST', url: '/v1/customers', headers: writer,
    payload: { name: 'Thief', contact_points: [{ kind: 'phone', value: '+8613800138000' }, { kind: 'email', value: 'OWNER@example.com' }] },
  })
  t.equal(thief.statusCode, 409, thief.body)
  t.match(thief.json(), { code: 'primary-email-taken' })
  t.same(thief.json().errors, [{ pointer: '/contact_points/1/value', message: 'is the primary email of another customer' }], 'the pointer leads to the contact point in the body')
  t.notOk(thief.body.includes('owner@example.com') || thief.body.includes('OWNER@example.com'), 'the email is not echoed')

  const segment = (name: string) => ctx.app.inject({ method: 'POST', url: '/v1/segments', headers: writer, payload: { name, kind: 'static' } })
  t.equal((await segment('Friends')).statusCode, 201)
  const dup = await segment('friends')
  t.equal(dup.statusCode, 409)
  t.match(dup.json(), { code: 'segment-name-taken', errors: [{ pointer: '/name' }] })
})

t.test('every constraint in the map exists in the schema, and every unique constraint a client value can hit is in the map', async (t) => {
  const { rows } = await sql<{ name: string }>`
    select conname as name from pg_constraint where connamespace = 'public'::regnamespace
    union select indexrelid::regclass::text from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indisunique and c.relnamespace = 'public'::regnamespace`.execute(ctx.ownerDb)
  const names = new Set(rows.map((r) => r.name))
  for (const name of Object.keys(CONSTRAINT_PROBLEMS)) t.ok(names.has(name), `${name} exists`)
  for (const name of ['customers_external_ref_key', 'orders_external_ref_key', 'orders_order_number_key', 'interactions_external_ref_key', 'feedback_external_ref_key', 'contact_points_primary_email_idx', 'segments_live_name_idx']) {
    t.ok(name in CONSTRAINT_PROBLEMS, `${name} is mapped`)
  }
})
