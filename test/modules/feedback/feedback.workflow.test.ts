import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const writer = await ctx.auth('feedback:write feedback:read')

const STATUSES = ['open', 'in_progress', 'resolved', 'closed'] as const
type Status = (typeof STATUSES)[number]
// The workflow as the API documents it, written out independently of the service's table.
const LEGAL: Record<Status, Status[]> = {
  open: ['in_progress', 'resolved'],
  in_progress: ['open', 'resolved'],
  resolved: ['closed', 'open'],
  closed: ['open'],
}
const HOURS = { urgent: 4, high: 24, normal: 72, low: 168 } as const

const customerId = (await ctx.db.insertInto('customers').values({ name: 'Workflow' } as never).returning('id').executeTakeFirstOrThrow()).id

interface Complaint { id: string; status: Status; version: number; resolved_at: string | null; resolution_note: string | null; sla_due_at: string; submitted_at: string; sla_breached: boolean; priority: string }

const inject = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) =>
  ctx.app.inject({ method, url, headers: writer, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) })

const pointers = (res: { json(): { errors?: Array<{ pointer: string }> } }) => (res.json().errors ?? []).map((e) => e.pointer).sort()

async function complaint(body: Record<string, unknown> = {}): Promise<Complaint> {
  const res = await inject('POST', '/v1/feedback', { customer_id: customerId, kind: 'complaint', subject: 'Broken cup', ...body })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json()
}

/** A complaint in the given status, reached through legal transitions of the API. */
async function complaintIn(status: Status): Promise<Complaint> {
  const c = await complaint()
  const path: Record<Status, Array<Record<string, unknown>>> = {
    open: [],
    in_progress: [{ status: 'in_progress' }],
    resolved: [{ status: 'in_progress' }, { status: 'resolved', resolution_note: 'first fix' }],
    closed: [{ status: 'resolved', resolution_note: 'first fix' }, { status: 'closed' }],
  }
  let last = c
  for (const step of path[status]) {
    const res = await inject('PATCH', `/v1/feedback/${c.id}`, step)
    if (res.statusCode !== 200) throw new Error(res.body)
    last = res.json()
  }
  if (last.status !== status) throw new Error(`could not reach ${status}`)
  return last
}

async function auditCount(id: string) {
  return (await ctx.db.selectFrom('audit_events').select('id').where('entity_id', '=', id).execute()).length
}

t.test('the full transition matrix: every legal move 200, every illegal one 422 /status, the same status no change', async (t) => {
  let legal = 0
  let illegal = 0
  for (const from of STATUSES) {
    for (const to of STATUSES) {
      const c = await complaintIn(from)
      const audits = await auditCount(c.id)
      // Resolving needs a note; every other request sends only the status.
      const note = to === 'resolved' && from !== 'resolved' ? { resolution_note: 'the fix' } : {}
      const res = await inject('PATCH', `/v1/feedback/${c.id}`, { status: to, ...note })
      const after = (await inject('GET', `/v1/feedback/${c.id}`)).json() as Complaint
      if (from === to) {
        t.equal(res.statusCode, 200, `${from} → ${to} is no change`)
        t.equal(after.version, c.version, `${from} → ${to} keeps the version`)
        t.equal(await auditCount(c.id), audits, `${from} → ${to} audits nothing`)
      } else if (LEGAL[from].includes(to)) {
        legal++
        t.equal(res.statusCode, 200, `${from} → ${to} is legal: ${res.body}`)
        t.match(after, { status: to, version: c.version + 1 })
        t.equal(await auditCount(c.id), audits + 1, `${from} → ${to} writes one audit row`)
        if (to === 'resolved') t.ok(after.resolved_at, `${from} → resolved sets resolved_at`)
        if (to === 'open') t.equal(after.resolved_at, null, `${from} → open clears resolved_at`)
        if (to === 'closed') t.equal(after.resolved_at, c.resolved_at, 'closing keeps resolved_at')
      } else {
        illegal++
        t.equal(res.statusCode, 422, `${from} → ${to} is illegal`)
        t.same(pointers(res), ['/status'], `${from} → ${to} points at /status`)
        t.match(res.json().errors[0].message, new RegExp(`from ${from} the status can become`))
        t.same(after, c, `${from} → ${to} changes nothing`)
        t.equal(await auditCount(c.id), audits, `${from} → ${to} audits nothing`)
      }
    }
  }
  t.equal(legal, 7, 'seven legal transitions')
  t.equal(illegal, 5, 'five illegal ones')
})

t.test('resolving needs a resolution_note in the same request; a settled complaint keeps it', async (t) => {
  for (const from of ['open', 'in_progress'] as const) {
    const c = await complaintIn(from)
    const bare = await inject('PATCH', `/v1/feedback/${c.id}`, { status: 'resolved' })
    t.equal(bare.statusCode, 422, `${from} → resolved without a note`)
    t.same(pointers(bare), ['/resolution_note'])
    const nulled = await inject('PATCH', `/v1/feedback/${c.id}`, { status: 'resolved', resolution_note: null })
    t.same(pointers(nulled), ['/resolution_note'])
    t.equal((await inject('GET', `/v1/feedback/${c.id}`)).json().version, c.version, 'nothing changed')
  }
  const drafted = await complaintIn('in_progress')
  await inject('PATCH', `/v1/feedback/${drafted.id}`, { resolution_note: 'draft' })
  const withDraft = await inject('PATCH', `/v1/feedback/${drafted.id}`, { status: 'resolved' })
  t.equal(withDraft.statusCode, 422, 'a note drafted earlier does not count: resolving states its resolution')
  const resolved = await complaintIn('resolved')
  const clear = await inject('PATCH', `/v1/feedback/${resolved.id}`, { resolution_note: null })
  t.equal(clear.statusCode, 422)
  t.same(pointers(clear), ['/resolution_note'])
  const closeClearing = await inject('PATCH', `/v1/feedback/${resolved.id}`, { status: 'closed', resolution_note: null })
  t.same(pointers(closeClearing), ['/resolution_note'])
  const reworded = await inject('PATCH', `/v1/feedback/${resolved.id}`, { resolution_note: 'better words' })
  t.match(reworded.json(), { status: 'resolved', resolution_note: 'better words', resolved_at: resolved.resolved_at })
  const reopened = (await inject('PATCH', `/v1/feedback/${resolved.id}`, { status: 'open' })).json() as Complaint
  t.match(reopened, { status: 'open', resolved_at: null, resolution_note: 'better words' }, 'reopening keeps the last note')
  const again = await inject('PATCH', `/v1/feedback/${resolved.id}`, { status: 'resolved' })
  t.equal(again.statusCode, 422, 'resolving again needs a new note')
  const second = (await inject('PATCH', `/v1/feedback/${resolved.id}`, { status: 'resolved', resolution_note: 'second fix' })).json() as Complaint
  t.ok(second.resolved_at && second.resolved_at > resolved.resolved_at!, 'resolved_at is the latest resolution')
  const serverOwned = await inject('PATCH', `/v1/feedback/${resolved.id}`, { resolved_at: '2020-01-01T00:00:00Z' })
  t.equal(serverOwned.statusCode, 400, 'resolved_at is server-owned')
})

t.test('complaints may be created in any status; settled ones need a note', async (t) => {
  for (const status of STATUSES) {
    const settled = status === 'resolved' || status === 'closed'
    const bare = await inject('POST', '/v1/feedback', { customer_id: customerId, kind: 'complaint', status })
    if (settled) {
      t.equal(bare.statusCode, 422, `created ${status} without a note`)
      t.same(pointers(bare), ['/resolution_note'])
    } else {
      t.equal(bare.statusCode, 201)
      t.match(bare.json(), { status, resolved_at: null })
    }
    const noted = await inject('POST', '/v1/feedback', { customer_id: customerId, kind: 'complaint', status, resolution_note: 'done' })
    t.equal(noted.statusCode, 201)
    t.equal(!!noted.json().resolved_at, settled, `${status}: resolved_at ${settled ? 'set' : 'unset'}`)
  }
})

t.test('priority defaults to normal; sla_due_at defaults from the priority and follows its changes', async (t) => {
  const submitted = '2030-03-01T08:00:00Z'
  for (const [priority, hours] of Object.entries(HOURS)) {
    const c = await complaint({ priority, submitted_at: submitted })
    t.equal(c.priority, priority)
    t.equal(Date.parse(c.sla_due_at) - Date.parse(submitted), hours * 3600_000, `${priority}: ${hours} h`)
  }
  const c = await complaint({ submitted_at: submitted })
  t.equal(c.priority, 'normal')
  const urgent = (await inject('PATCH', `/v1/feedback/${c.id}`, { priority: 'urgent' })).json() as Complaint
  t.equal(Date.parse(urgent.sla_due_at) - Date.parse(submitted), 4 * 3600_000, 'a new priority re-derives the SLA')
  const explicit = (await inject('PATCH', `/v1/feedback/${c.id}`, { priority: 'low', sla_due_at: '2030-03-02T00:00:00Z' })).json() as Complaint
  t.equal(explicit.sla_due_at, '2030-03-02T00:00:00.000Z', 'an SLA sent with the priority wins')
  const assigned = (await inject('PATCH', `/v1/feedback/${c.id}`, { assignee: 'agent:x', priority: 'low' })).json() as Complaint
  t.equal(assigned.sla_due_at, explicit.sla_due_at, 'other changes, or the same priority, keep the SLA')
  const moved = (await inject('PATCH', `/v1/feedback/${c.id}`, { submitted_at: '2030-03-05T08:00:00Z' })).json() as Complaint
  t.equal(moved.sla_due_at, '2030-03-12T08:00:00.000Z', 'a new submitted_at re-derives it too (low: 168 h)')
  const given = await complaint({ priority: 'high', sla_due_at: '2030-01-01T00:00:00Z' })
  t.equal(given.sla_due_at, '2030-01-01T00:00:00.000Z')
  const badPriority = await inject('POST', '/v1/feedback', { customer_id: customerId, kind: 'complaint', priority: 'critical' })
  t.equal(badPriority.statusCode, 400)
  t.same(pointers(badPriority), ['/priority'])
})

t.test('sla_breached: open past due, resolved late, within time, and the filter', async (t) => {
  const customer = (await ctx.db.insertInto('customers').values({ name: 'SLA' } as never).returning('id').executeTakeFirstOrThrow()).id
  const mk = async (body: Record<string, unknown>) => {
    const res = await inject('POST', '/v1/feedback', { customer_id: customer, kind: 'complaint', ...body })
    if (res.statusCode !== 201) throw new Error(res.body)
    return res.json() as Complaint
  }
  const overdue = await mk({ submitted_at: '2020-01-01T00:00:00Z' })
  const inTime = await mk({})
  const lateFix = await mk({ submitted_at: '2020-01-01T00:00:00Z', status: 'resolved', resolution_note: 'late' })
  const quickFix = await mk({ status: 'closed', resolution_note: 'quick' })
  const progressing = await mk({ status: 'in_progress', sla_due_at: '2020-06-01T00:00:00Z' })
  await inject('POST', '/v1/feedback', { customer_id: customer, kind: 'praise', submitted_at: '2020-01-01T00:00:00Z' })
  t.equal(overdue.sla_breached, true)
  t.equal(inTime.sla_breached, false)
  t.equal(lateFix.sla_breached, true, 'resolved after the due time stays breached')
  t.equal(quickFix.sla_breached, false)
  t.equal(progressing.sla_breached, true)
  const list = async (qs: string) => {
    const res = await inject('GET', `/v1/customers/${customer}/feedback?${qs}`)
    t.equal(res.statusCode, 200, res.body)
    return (res.json().data as Complaint[]).map((f) => f.id).sort()
  }
  t.same(await list('sla_breached=true'), [overdue.id, lateFix.id, progressing.id].sort())
  t.same(await list('sla_breached=false'), [inTime.id, quickFix.id].sort(), 'false: complaints within their SLA')
  t.same(await list('sla_breached=true&status=open'), [overdue.id])
  const extended = (await inject('PATCH', `/v1/feedback/${overdue.id}`, { sla_due_at: '2099-01-01T00:00:00Z' })).json() as Complaint
  t.equal(extended.sla_breached, false, 'a new due time lifts the breach')
})
