import type { DbExecutor } from '../../db/database.js'
import type { ContactPointRow, CustomerRow } from '../../db/rows.js'
import { problem, notFound, pointer, versionMismatch } from '../../lib/problem.js'
import * as repo from './customers.repository.js'
import * as contactPoints from './contact-points.repository.js'
import { flushPendingMetrics } from '../metrics/index.js'
import type { CustomerMergeBody } from './customers.schemas.js'

/**
 * Merging a duplicate customer into a target (HubSpot's and Salesforce's "merge records"), in
 * the caller's request transaction, so every changed row is audited with the request:
 *
 * - the duplicate's orders, interactions and feedback move to the target (the metrics triggers
 *   recompute both customers from the raw rows, and with them the derived lifecycle stages);
 * - contact points: one of each kind and normalized value is kept (the target's), the target
 *   keeps its primary per kind and takes the duplicate's only where it has none, so a kind keeps
 *   exactly one primary and a primary email never collides;
 * - profile: tags and interests are united, preferences/attributes/consent deep-merged, scalar
 *   fields filled where one side is null; where both are set the `prefer` side wins (credit
 *   limit and currency go together). Loyalty points add up;
 * - the target keeps its external_ref; the duplicate keeps its own, is archived and gets
 *   merged_into_id, which the external_ref upsert follows (see createCustomer).
 * - static segment memberships move to the target (one membership per segment).
 */

/** Profile fields that merge as "the preferred side's value, else the other side's". */
const SCALARS = [
  'name', 'given_name', 'family_name', 'gender', 'birthday', 'occupation', 'marital_status', 'company', 'job_title',
  'preferred_channel', 'acquisition_source', 'payment_terms_days',
] as const

/**
 * A merged customer is a forwarding record: writes to it (profile, contact points, restore) are
 * refused with the customer that holds its data now, so nothing new lands on it.
 */
export function refuseIfMerged(row: Pick<CustomerRow, 'merged_into_id'> | undefined): void {
  if (row?.merged_into_id) throw problem('customer-merged', `This customer was merged into ${row.merged_into_id}; write to that customer instead.`)
}

const rejected = (detail: string, field = 'duplicate_id') => problem('merge-rejected', detail, [{ pointer: pointer(field), message: detail }])

function mergedScalars(target: CustomerRow, duplicate: CustomerRow, preferDuplicate: boolean): Record<string, unknown> {
  const [winner, loser] = preferDuplicate ? [duplicate, target] : [target, duplicate]
  const out: Record<string, unknown> = {}
  for (const field of SCALARS) out[field] = winner[field] ?? loser[field]
  const credit = winner.credit_limit !== null ? winner : loser
  out.credit_limit = credit.credit_limit
  out.credit_currency = credit.credit_currency
  return out
}

/**
 * Moves the duplicate's contact points to the target. A point whose kind and normalized value the
 * target already has is dropped (the target's copy keeps it, verified if either was); the rest move
 * as non-primary, except the duplicate's primary of a kind where the target has none.
 */
async function mergeContactPoints(db: DbExecutor, targetId: string, duplicateId: string): Promise<void> {
  const points = await contactPoints.lockContactPoints(db, [targetId, duplicateId])
  const key = (c: ContactPointRow) => `${c.kind}\u0000${c.value_normalized}`
  const targets = new Map(points.filter((c) => c.customer_id === targetId).map((c) => [key(c), c]))
  const primaryKinds = new Set(points.filter((c) => c.customer_id === targetId && c.is_primary).map((c) => c.kind))
  const duplicates = points.filter((c) => c.customer_id === duplicateId)
  const promote: ContactPointRow[] = []

  // Dropped first, so a primary email the duplicate held is free before the target's copy takes it.
  for (const c of duplicates) {
    const kept = targets.get(key(c))
    if (!kept) continue
    await contactPoints.deleteContactPoint(db, c.id)
    if (c.verified && !kept.verified) await contactPoints.updateContactPoint(db, kept.id, { verified: true })
    if (c.is_primary && !primaryKinds.has(c.kind)) {
      promote.push(kept)
      primaryKinds.add(c.kind)
    }
  }
  for (const c of duplicates) {
    if (targets.has(key(c))) continue
    const primary = c.is_primary && !primaryKinds.has(c.kind)
    if (primary) primaryKinds.add(c.kind)
    await contactPoints.updateContactPoint(db, c.id, { customer_id: targetId, is_primary: primary })
  }
  for (const c of promote) await contactPoints.updateContactPoint(db, c.id, { is_primary: true })
  // A kind that still has no primary (only possible if the data broke the one-primary rule before).
  for (const kind of new Set(duplicates.map((c) => c.kind))) {
    if (!primaryKinds.has(kind)) await contactPoints.promoteOldest(db, targetId, kind)
  }
}

export async function mergeCustomers(db: DbExecutor, targetId: string, body: CustomerMergeBody, expectedVersion?: number): Promise<void> {
  const duplicateId = body.duplicate_id
  if (duplicateId === targetId) {
    if ((await repo.customerVersion(db, targetId)) === undefined) throw notFound('customer')
    throw rejected('A customer cannot be merged into itself.')
  }
  const rows = await repo.lockCustomers(db, [targetId, duplicateId])
  const target = rows.find((r) => r.id === targetId)
  const duplicate = rows.find((r) => r.id === duplicateId)
  if (!target) throw notFound('customer')
  if (target.merged_into_id) throw problem('customer-merged', `This customer was merged into ${target.merged_into_id}; merge into that one instead.`)
  if (target.archived_at) throw problem('record-archived', 'An archived customer cannot take a merge; restore it first.')
  if (!duplicate) throw rejected('No customer with that identifier.')
  if (duplicate.merged_into_id) throw rejected(`The duplicate was already merged into ${duplicate.merged_into_id}.`)
  if (expectedVersion !== undefined && target.version !== expectedVersion) throw versionMismatch()

  const preferDuplicate = body.prefer === 'duplicate'
  await repo.moveActivity(db, duplicateId, targetId)
  await mergeContactPoints(db, targetId, duplicateId)
  await repo.applyMergedProfile(db, targetId, duplicateId, mergedScalars(target, duplicate, preferDuplicate), preferDuplicate)
  await repo.markMerged(db, duplicateId, targetId)
  // The answer shows the target's metrics-derived stage and final version, as they will commit.
  await flushPendingMetrics(db)
}
