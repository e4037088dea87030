import type { DbExecutor } from '../../db/database.js'
import type { InteractionRow } from '../../db/rows.js'
import { type BatchResult, runSetwiseBatch } from '../../lib/batch.js'
import type { UpsertOptions } from '../../db/versioned.js'
import { assertSameCustomer, type UpsertResult } from '../../lib/external-ref.js'
import { problem, pointer } from '../../lib/problem.js'
import { uuidv7 } from '../../lib/uuid.js'
import { activeCustomers } from '../customers/index.js'
import * as repo from './interactions.repository.js'
import type { InteractionCreateBody, InteractionDto, InteractionPatchBody } from './interactions.schemas.js'

// Rules --------------------------------------------------------------------------------------------
//
// - An interaction is recorded for an existing, unarchived customer (422 /customer_id otherwise),
//   and never moves to another customer: PATCH cannot send customer_id, and an external_ref upsert
//   naming another customer is a 422.
// - order_id links an order of the same customer (422 /order_id otherwise): a call about an order
//   belongs on the timeline of the customer who placed it.
// - Customer metrics (interaction_count, last_interaction_at) are kept by the database triggers of
//   the interactions table, in the same transaction as the writes (refreshed once, at commit).

/** Customers already found active in this request (a batch names the same ones again and again). */
export type CustomerCache = Set<string>

const noActiveCustomer = () => problem('unknown-customer', 'No customer with that id can have interactions recorded.', [
  { pointer: pointer('customer_id'), message: 'is not an existing, unarchived customer' },
])

async function assertActiveCustomer(db: DbExecutor, id: string, cache?: CustomerCache): Promise<void> {
  if (cache?.has(id)) return
  if (!(await activeCustomers(db, [id], { lock: true })).has(id)) throw noActiveCustomer()
  cache?.add(id)
}

async function assertOrderOfCustomer(db: DbExecutor, orderId: string | null | undefined, customerId: string): Promise<void> {
  if (orderId == null) return
  checkOrderOwner(await repo.orderCustomer(db, orderId), customerId)
}

/** The rule that an interaction links only an order of its own customer, given the order's customer (undefined: no such order). */
function checkOrderOwner(owner: string | undefined, customerId: string): void {
  if (owner === customerId) return
  throw problem('invalid-reference', owner === undefined ? 'No order with that id exists.' : 'The order belongs to another customer.', [
    { pointer: pointer('order_id'), message: 'must be an existing order of the same customer' },
  ])
}

const PATCHABLE = [
  'external_ref', 'channel', 'direction', 'subject', 'notes', 'occurred_at', 'duration_seconds', 'outcome', 'agent',
  'follow_up_on', 'follow_up_done', 'order_id',
] as const

/** The columns a merge patch sets: every field present (null clears it); absent fields are untouched. */
function changesOf(patch: InteractionPatchBody): repo.InteractionChanges {
  const changes: Record<string, unknown> = {}
  for (const field of PATCHABLE) {
    if (patch[field] !== undefined) changes[field] = patch[field]
  }
  return changes as repo.InteractionChanges
}

// Writes -------------------------------------------------------------------------------------------

export interface CreateOptions extends UpsertOptions {
  /** Customers already found active in this request. */
  customers?: CustomerCache | undefined
}

export async function createInteraction(db: DbExecutor, body: InteractionCreateBody, opts: CreateOptions = {}): Promise<UpsertResult> {
  await assertActiveCustomer(db, body.customer_id, opts.customers)
  return repo.interactions.upsert(db, body.external_ref, {
    update: (existing) => updateByExternalRef(db, existing, body),
    insert: async () => {
      await assertOrderOfCustomer(db, body.order_id, body.customer_id)
      return repo.interactions.insert(db, newInteraction(body))
    },
  }, opts)
}

const newInteraction = (body: InteractionCreateBody) =>
  ({ ...changesOf(body), customer_id: body.customer_id, channel: body.channel }) as repo.NewInteraction

/** What a run of new interactions needs: which of their customers are active, and their orders' customers. */
interface Lookups {
  active: Set<string>
  orderCustomers: Map<string, string>
}

/**
 * POST /v1/interactions/batch: each item handled as createInteraction handles its body, in
 * order, all or nothing, with the first failing item's problem (lib/batch.ts, runSetwiseBatch).
 * New interactions are checked first, then inserted with one statement.
 */
export async function createInteractions(db: DbExecutor, items: InteractionCreateBody[], opts: UpsertOptions = {}): Promise<BatchResult> {
  const customers: CustomerCache = new Set()
  return runSetwiseBatch<InteractionCreateBody, Lookups, repo.NewInteraction & { id: string }>(items, {
    externalRef: (item) => item.external_ref,
    existingRefs: (refs) => repo.interactions.existingExternalRefs(db, refs),
    one: async (item) => {
      const { id, created } = await createInteraction(db, item, { ...opts, customers })
      return { status: created ? 201 : 200, id }
    },
    lookup: async (run) => {
      const active = new Set((await activeCustomers(db, run.map((item) => item.customer_id), { lock: true })).keys())
      for (const id of active) customers.add(id)
      const orderIds = [...new Set(run.flatMap((item) => (item.order_id != null ? [item.order_id] : [])))]
      return { active, orderCustomers: await repo.orderCustomers(db, orderIds) }
    },
    prepare: (item, { active, orderCustomers }) => {
      // The checks of createInteraction, in its order.
      if (!active.has(item.customer_id)) throw noActiveCustomer()
      if (item.order_id != null) checkOrderOwner(orderCustomers.get(item.order_id), item.customer_id)
      return { ...newInteraction(item), id: uuidv7() }
    },
    insert: async (prepared) => {
      const inserted = await repo.interactions.insertMany(db, prepared)
      return prepared.map((p) => (inserted.has(p.id) ? p.id : undefined))
    },
  })
}

async function updateByExternalRef(db: DbExecutor, existing: InteractionRow, body: InteractionCreateBody): Promise<void> {
  assertSameCustomer('interaction', existing, body)
  const { customer_id: _customer, ...patch } = body
  await applyChanges(db, existing, patch)
}

async function applyChanges(db: DbExecutor, current: InteractionRow, patch: InteractionPatchBody): Promise<void> {
  if (patch.order_id !== undefined && patch.order_id !== current.order_id) await assertOrderOfCustomer(db, patch.order_id, current.customer_id)
  await repo.updateInteraction(db, current.id, changesOf(patch))
}

export async function patchInteraction(db: DbExecutor, id: string, patch: InteractionPatchBody, expectedVersion?: number): Promise<void> {
  await applyChanges(db, await repo.interactions.lockForWrite(db, id, expectedVersion), patch)
}

// Output -------------------------------------------------------------------------------------------

export function toInteractionDto(r: repo.InteractionRecord): InteractionDto {
  return {
    id: r.id, external_ref: r.external_ref, customer_id: r.customer_id,
    channel: r.channel as InteractionDto['channel'], direction: r.direction as InteractionDto['direction'],
    subject: r.subject, notes: r.notes, occurred_at: r.occurred_at, duration_seconds: r.duration_seconds,
    outcome: r.outcome as InteractionDto['outcome'], agent: r.agent,
    follow_up_on: r.follow_up_on, follow_up_done: r.follow_up_done, follow_up_due: r.follow_up_due, order_id: r.order_id,
    version: r.version, created_at: r.created_at, updated_at: r.updated_at, archived_at: r.archived_at,
  }
}
