import { Type } from 'typebox'
import { problem, HttpProblem, pointer } from './problem.js'

/**
 * Create-or-update by external_ref (API.md § Writing: "an upsert, not a duplicate"), the same
 * way for every domain whose records come from another system:
 *
 * 1. lock the row that has the external_ref (SELECT ... FOR UPDATE) and update it: 200;
 * 2. otherwise insert it with ON CONFLICT (external_ref) DO NOTHING: 201;
 * 3. if nothing was inserted, a concurrent request inserted the same external_ref between our
 *    look-up and our insert: lock that row and update it, as in 1.
 *
 * So two clients syncing the same record at once never create two, and neither gets a 409.
 * A record that is archived is not updated behind the client's back (no list shows it, so a
 * silent 200 would look like a lost write): the answer is 409 external-ref-archived naming it,
 * unless the request asks to restore it (restoreArchived), which restores, then updates it.
 * The domain supplies the steps; all SQL stays in repositories (db/versioned.ts).
 */
export interface UpsertResult {
  id: string
  /** false when external_ref matched an existing record, which was updated instead. */
  created: boolean
}

export interface UpsertSteps<R extends { id: string; archived_at: string | null }> {
  /** The record in problems ("order"). */
  what: string
  /** The row with this external_ref, locked for the rest of the transaction. */
  lock(externalRef: string): Promise<R | undefined>
  /** Inserts the new record; undefined when its external_ref already exists (ON CONFLICT DO NOTHING). */
  insert(): Promise<string | undefined>
  /** Applies the request to the existing record (may throw a 4xx, e.g. another customer's record). */
  update(existing: R): Promise<void>
  /** Restores the archived record before it is updated (only when the request asked for it). */
  restore(existing: R): Promise<void>
  /**
   * The record that takes the writes of the one holding the external_ref, locked: itself, or
   * the one it forwards to (a merged customer's survivor). Default: itself.
   */
  follow?(existing: R): Promise<R>
}

/** The query parameter of every create-or-update route that restores an archived record instead of answering 409. */
export const RESTORE_ARCHIVED_PARAM = 'restore_archived'

/** The 409 of an external_ref held by an archived record: names the record and how to bring it back. */
export function externalRefArchived(what: string, id: string, at = pointer('external_ref')): HttpProblem {
  return new HttpProblem('external-ref-archived', {
    detail: `The ${what} with this external_ref (${id}) is archived. Restore it first, or send ${RESTORE_ARCHIVED_PARAM}=true to restore and update it.`,
    errors: [{ pointer: at, message: `belongs to the archived ${what} ${id}` }],
  })
}

/**
 * A record that belongs to a customer never moves to another one: create-or-update naming
 * another customer's external_ref is a 422 on /customer_id, not a silent move.
 */
export function assertSameCustomer(what: string, existing: { customer_id: string }, body: { customer_id: string }): void {
  if (existing.customer_id === body.customer_id) return
  throw problem('external-ref-mismatch', `This external_ref belongs to an ${what} of another customer.`, [
    { pointer: pointer('customer_id'), message: `differs from the customer of the ${what} with this external_ref` },
  ])
}

export async function upsertByExternalRef<R extends { id: string; archived_at: string | null }>(
  externalRef: string | null | undefined, steps: UpsertSteps<R>, opts: { restoreArchived?: boolean | undefined } = {},
): Promise<UpsertResult> {
  const updateExisting = async (holder: R): Promise<UpsertResult> => {
    const existing = steps.follow ? await steps.follow(holder) : holder
    if (existing.archived_at !== null) {
      if (!opts.restoreArchived) throw externalRefArchived(steps.what, existing.id)
      await steps.restore(existing)
    }
    await steps.update(existing)
    return { id: existing.id, created: false }
  }
  if (externalRef != null) {
    const existing = await steps.lock(externalRef)
    if (existing) return updateExisting(existing)
  }
  const id = await steps.insert()
  if (id !== undefined) return { id, created: true }
  if (externalRef == null) throw new Error('upsertByExternalRef: insert without external_ref returned no id')
  const winner = await steps.lock(externalRef)
  if (!winner) throw new Error('upsertByExternalRef: the conflicting row is gone')
  return updateExisting(winner)
}

/** The query string of a create-or-update route (single and batch). */
export const UpsertQuery = Type.Object(
  {
    restore_archived: Type.Optional(Type.Boolean({
      default: false,
      example: true,
      description: 'When an external_ref names an archived record: false (the default) answers 409 external-ref-archived naming it; true restores it, then updates it (200)',
    })),
  },
  { additionalProperties: false },
)
