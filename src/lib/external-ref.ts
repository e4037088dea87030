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
 * The domain supplies the three steps; all SQL stays in its repository.
 */
export interface UpsertResult {
  id: string
  /** false when external_ref matched an existing record, which was updated instead. */
  created: boolean
}

export interface UpsertSteps<R extends { id: string }> {
  /** The row with this external_ref, locked for the rest of the transaction. */
  lock(externalRef: string): Promise<R | undefined>
  /** Inserts the new record; undefined when its external_ref already exists (ON CONFLICT DO NOTHING). */
  insert(): Promise<string | undefined>
  /** Applies the request to the existing record (may throw a 4xx, e.g. another customer's record). */
  update(existing: R): Promise<void>
}

export async function upsertByExternalRef<R extends { id: string }>(externalRef: string | null | undefined, steps: UpsertSteps<R>): Promise<UpsertResult> {
  const updateExisting = async (existing: R): Promise<UpsertResult> => {
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
