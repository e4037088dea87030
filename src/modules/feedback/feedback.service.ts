import { sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { FeedbackRow } from '../../db/rows.js'
import type { UpsertOptions } from '../../db/versioned.js'
import type { UpsertResult } from '../../lib/external-ref.js'
import { problem, type FieldError, pointer } from '../../lib/problem.js'
import * as repo from './feedback.repository.js'
import { activeCustomers } from '../customers/index.js'
import type {
  ComplaintStatus, FeedbackChannel, FeedbackCreateBody, FeedbackDto, FeedbackKind, FeedbackPatchBody, Priority, SurveyType,
} from './feedback.schemas.js'

// The complaint workflow -------------------------------------------------------------------------
//
//   open ──> in_progress ──> resolved ──> closed
//     │  <──────┘               │  ^        │
//     └──────────> resolved ────┘  │        │
//     ^───────── reopen ───────────┴────────┘
//
// open → in_progress | resolved; in_progress → open | resolved; resolved → closed | open;
// closed → open. Moving to resolved needs a resolution_note in the same request and sets
// resolved_at (server-owned); reopening (resolved or closed → open) clears resolved_at and keeps
// the last note. Sending the current status again is no change.

export const TRANSITIONS: Readonly<Record<ComplaintStatus, readonly ComplaintStatus[]>> = {
  open: ['in_progress', 'resolved'],
  in_progress: ['open', 'resolved'],
  resolved: ['closed', 'open'],
  closed: ['open'],
}

/** Hours from submitted_at to the default sla_due_at of a complaint, by priority. */
export const SLA_HOURS: Readonly<Record<Priority, number>> = { urgent: 4, high: 24, normal: 72, low: 168 }

const SETTLED: readonly ComplaintStatus[] = ['resolved', 'closed']
const COMPLAINT_ONLY = ['status', 'priority', 'sla_due_at', 'resolution_note'] as const

export function canTransition(from: ComplaintStatus, to: ComplaintStatus): boolean {
  return TRANSITIONS[from].includes(to)
}

function assertTransition(from: ComplaintStatus, to: ComplaintStatus): void {
  if (canTransition(from, to)) return
  throw problem('invalid-transition', `A complaint cannot go from ${from} to ${to}.`, [
    { pointer: pointer('status'), message: `from ${from} the status can become ${TRANSITIONS[from].join(', ')}` },
  ])
}

const now = () => sql<string>`now()`
const slaFrom = (submittedAt: string | undefined, priority: Priority) =>
  submittedAt === undefined
    ? sql<string>`now() + make_interval(hours => ${SLA_HOURS[priority]})`
    : sql<string>`${submittedAt}::timestamptz + make_interval(hours => ${SLA_HOURS[priority]})`

// Validation -------------------------------------------------------------------------------------

type KindFields = Partial<Pick<FeedbackPatchBody, (typeof COMPLAINT_ONLY)[number]>>

/**
 * The rules of each kind, checked before any write so that the table's CHECK constraints never
 * fire: surveys have a type and a score in its range, reviews at most a 1–5 score, the other kinds
 * none; only complaints carry the workflow fields.
 */
function checkKind(kind: FeedbackKind, surveyType: SurveyType | null, score: number | null, sent: KindFields): void {
  const errors: FieldError[] = []
  if (kind === 'survey') {
    if (surveyType === null) errors.push({ pointer: pointer('survey_type'), message: 'is required for a survey (csat or nps)' })
    if (score === null) errors.push({ pointer: pointer('score'), message: 'is required for a survey' })
    else if (surveyType === 'csat' && (score < 1 || score > 5)) errors.push({ pointer: pointer('score'), message: 'a CSAT score is from 1 to 5' })
    else if (surveyType === 'nps' && (score < 0 || score > 10)) errors.push({ pointer: pointer('score'), message: 'an NPS score is from 0 to 10' })
  } else {
    if (surveyType !== null) errors.push({ pointer: pointer('survey_type'), message: 'only surveys have a survey_type' })
    if (kind === 'review') {
      if (score !== null && (score < 1 || score > 5)) errors.push({ pointer: pointer('score'), message: 'a review score is from 1 to 5' })
    } else if (score !== null) {
      errors.push({ pointer: pointer('score'), message: `${kind} feedback has no score` })
    }
  }
  if (kind !== 'complaint') {
    for (const field of COMPLAINT_ONLY) {
      if (sent[field] != null) errors.push({ pointer: pointer(field), message: `only complaints have a ${field}` })
    }
  }
  if (errors.length) throw problem('feedback-fields-mismatch', `These fields do not fit ${kind === 'survey' && surveyType ? `a ${surveyType} survey` : `${kind} feedback`}.`, errors)
}

/** Linked order and interaction must exist and belong to the feedback's customer. */
async function checkLinks(db: DbExecutor, customerId: string, links: { order_id?: string | null; interaction_id?: string | null }): Promise<void> {
  const errors: FieldError[] = []
  const check = async (field: 'order_id' | 'interaction_id', what: string, owner: (id: string) => Promise<string | undefined>) => {
    const id = links[field]
    if (id == null) return
    const customer = await owner(id)
    if (customer === undefined) errors.push({ pointer: pointer(field), message: `is not an existing ${what}` })
    else if (customer !== customerId) errors.push({ pointer: pointer(field), message: `is an ${what} of another customer` })
  }
  await check('order_id', 'order', (id) => repo.orderCustomer(db, id))
  await check('interaction_id', 'interaction', (id) => repo.interactionCustomer(db, id))
  if (errors.length) throw problem('invalid-reference', 'Feedback can only link to an order or interaction of the same customer.', errors)
}

// Writes -----------------------------------------------------------------------------------------

export async function createFeedback(db: DbExecutor, body: FeedbackCreateBody, opts: UpsertOptions = {}): Promise<UpsertResult> {
  if (!(await activeCustomers(db, [body.customer_id], { lock: true })).has(body.customer_id)) {
    throw problem('unknown-customer', 'No customer with that id can give feedback.', [{ pointer: pointer('customer_id'), message: 'is not an existing, unarchived customer' }])
  }
  return repo.feedback.upsert(db, body.external_ref, {
    update: (existing) => updateByExternalRef(db, existing, body),
    insert: () => insertNewFeedback(db, body),
  }, opts)
}

/** Checks and inserts new feedback; undefined when its external_ref exists already. */
async function insertNewFeedback(db: DbExecutor, body: FeedbackCreateBody): Promise<string | undefined> {
  checkKind(body.kind, body.survey_type ?? null, body.score ?? null, body)
  await checkLinks(db, body.customer_id, body)
  const row: repo.NewFeedback = {
    external_ref: body.external_ref ?? null,
    customer_id: body.customer_id,
    kind: body.kind,
    survey_type: body.survey_type ?? null,
    score: body.score ?? null,
    subject: body.subject ?? null,
    body: body.body ?? null,
    channel: body.channel ?? null,
    order_id: body.order_id ?? null,
    interaction_id: body.interaction_id ?? null,
    assignee: body.assignee ?? null,
    ...(body.submitted_at ? { submitted_at: body.submitted_at } : {}),
  }
  if (body.kind === 'complaint') Object.assign(row, newComplaint(body))
  return repo.feedback.insert(db, row)
}

/**
 * The workflow columns of a new complaint. It may start in any status (imports bring settled
 * ones); starting resolved or closed needs a resolution_note and sets resolved_at to now.
 */
function newComplaint(body: FeedbackCreateBody): Partial<repo.NewFeedback> {
  const status = body.status ?? 'open'
  const priority = body.priority ?? 'normal'
  const settled = SETTLED.includes(status)
  if (settled && body.resolution_note == null) {
    throw problem('resolution-note-required', `A complaint created ${status} needs its resolution_note.`, [
      { pointer: pointer('resolution_note'), message: `is required for a ${status} complaint` },
    ])
  }
  return {
    status, priority,
    sla_due_at: body.sla_due_at ?? slaFrom(body.submitted_at, priority),
    resolution_note: body.resolution_note ?? null,
    resolved_at: settled ? now() : null,
  }
}

async function updateByExternalRef(db: DbExecutor, existing: FeedbackRow, body: FeedbackCreateBody): Promise<void> {
  const errors: FieldError[] = []
  if (existing.customer_id !== body.customer_id) errors.push({ pointer: pointer('customer_id'), message: 'differs from the customer of the feedback with this external_ref' })
  if (existing.kind !== body.kind) errors.push({ pointer: pointer('kind'), message: `the feedback with this external_ref is ${existing.kind}` })
  if ((body.survey_type ?? null) !== existing.survey_type) errors.push({ pointer: pointer('survey_type'), message: `the feedback with this external_ref has survey_type ${existing.survey_type}` })
  if (errors.length) throw problem('external-ref-mismatch', 'This external_ref belongs to other feedback: customer_id, kind and survey_type cannot change.', errors)
  const { customer_id: _c, kind: _k, survey_type: _s, ...patch } = body
  await applyChanges(db, existing, patch)
}

export async function patchFeedback(db: DbExecutor, id: string, patch: FeedbackPatchBody, expectedVersion?: number): Promise<void> {
  await applyChanges(db, await repo.feedback.lockForWrite(db, id, expectedVersion), patch)
}

const PLAIN_FIELDS = [
  'external_ref', 'score', 'subject', 'body', 'channel', 'order_id', 'interaction_id', 'priority', 'assignee', 'sla_due_at', 'resolution_note', 'submitted_at',
] as const

/** Applies a merge patch to locked feedback: the kind's rules, links, then the complaint workflow. */
async function applyChanges(db: DbExecutor, current: FeedbackRow, patch: FeedbackPatchBody): Promise<void> {
  const score = patch.score !== undefined ? patch.score : current.score
  checkKind(current.kind as FeedbackKind, current.survey_type as SurveyType | null, score, patch)
  await checkLinks(db, current.customer_id, {
    order_id: patch.order_id !== current.order_id ? patch.order_id : undefined,
    interaction_id: patch.interaction_id !== current.interaction_id ? patch.interaction_id : undefined,
  })
  const changes: repo.FeedbackChanges = {}
  for (const field of PLAIN_FIELDS) {
    if (patch[field] !== undefined) (changes as Record<string, unknown>)[field] = patch[field]
  }
  if (current.kind === 'complaint') moveComplaint(current, patch, changes)
  await repo.updateFeedback(db, current.id, changes)
}

const sameInstant = (a: string, b: string) => Date.parse(a) === Date.parse(b)

/** The workflow part of a patch to a complaint: status transition, resolution, SLA. */
function moveComplaint(current: FeedbackRow, patch: FeedbackPatchBody, changes: repo.FeedbackChanges): void {
  const from = current.status as ComplaintStatus
  const to = patch.status ?? from
  if (to !== from) {
    assertTransition(from, to)
    if (to === 'resolved' && patch.resolution_note == null) {
      throw problem('resolution-note-required', 'Resolving a complaint needs a resolution_note in the same request.', [
        { pointer: pointer('resolution_note'), message: 'is required to resolve a complaint' },
      ])
    }
    changes.status = to
    if (to === 'resolved') changes.resolved_at = now()
    if (to === 'open') changes.resolved_at = null
  }
  const note = patch.resolution_note !== undefined ? patch.resolution_note : current.resolution_note
  if (SETTLED.includes(to) && note === null) {
    throw problem('resolution-note-required', `A ${to} complaint keeps its resolution_note.`, [{ pointer: pointer('resolution_note'), message: `cannot be cleared while the complaint is ${to}` }])
  }
  // The SLA follows the priority and the submission time unless the request sets it.
  const priority = (patch.priority ?? current.priority ?? 'normal') as Priority
  const priorityChanged = patch.priority !== undefined && patch.priority !== current.priority
  const submittedChanged = patch.submitted_at !== undefined && !sameInstant(patch.submitted_at, current.submitted_at)
  if (patch.sla_due_at === undefined && (priorityChanged || submittedChanged)) {
    changes.sla_due_at = slaFrom(patch.submitted_at ?? current.submitted_at, priority)
  }
}

// Output -----------------------------------------------------------------------------------------

export function toFeedbackDto(row: repo.FeedbackRecord): FeedbackDto {
  return {
    id: row.id, external_ref: row.external_ref, customer_id: row.customer_id, kind: row.kind as FeedbackKind,
    survey_type: row.survey_type as SurveyType | null, score: row.score, subject: row.subject, body: row.body,
    channel: row.channel as FeedbackChannel | null, order_id: row.order_id, interaction_id: row.interaction_id,
    status: row.status as ComplaintStatus | null, priority: row.priority as Priority | null, assignee: row.assignee,
    sla_due_at: row.sla_due_at, sla_breached: row.sla_breached, resolution_note: row.resolution_note, resolved_at: row.resolved_at,
    submitted_at: row.submitted_at, version: row.version, created_at: row.created_at, updated_at: row.updated_at, archived_at: row.archived_at,
  }
}
