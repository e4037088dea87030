import { sql } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import { whereEqual, whereRange } from '../../db/list-filters.js'
import { keysetPage, type PageRequest } from '../../lib/pagination.js'

/** The columns the API shows (txid stays internal). */
const COLUMNS = ['id', 'occurred_at', 'actor', 'request_id', 'correlation_id', 'route', 'action', 'entity', 'entity_id', 'before', 'after'] as const

export interface AuditEventFilters {
  entity?: string
  entity_id?: string
  actor?: string
  action?: string
  request_id?: string
  occurred_after?: string
  occurred_before?: string
}

export async function findAuditEvent(db: DbExecutor, id: string) {
  return db.selectFrom('audit_events').select(COLUMNS).where('id', '=', id).executeTakeFirst()
}

export type AuditEventRecord = NonNullable<Awaited<ReturnType<typeof findAuditEvent>>>

export async function listAuditEvents(db: DbExecutor, f: AuditEventFilters, page: PageRequest): Promise<AuditEventRecord[]> {
  const { occurred_after, occurred_before, ...equal } = f
  const query = whereRange(whereEqual(db.selectFrom('audit_events').select(COLUMNS), 'audit_events', { ...equal }), 'audit_events.occurred_at', occurred_after, occurred_before)
  return keysetPage(query, page, 'audit_events').execute()
}

/**
 * Appends every visible, not yet sealed audit event to the hash chain (crm_audit_seal, see the
 * audit_chain migration). With wait = false it returns 0 at once when another seal is running.
 * Runs on the pool, never in a request transaction: it needs its own READ COMMITTED snapshots.
 */
export async function sealAuditTrail(db: DbExecutor, opts: { maxRows?: number; wait?: boolean } = {}): Promise<number> {
  const { rows } = await sql<{ sealed: number }>`
    select crm_audit_seal(${opts.maxRows ?? 50_000}::int, ${opts.wait ?? true}::boolean) as sealed`.execute(db)
  return rows[0]?.sealed ?? 0
}

export interface ChainVerification {
  intact: boolean
  sealed_count: number
  unsealed_count: number
  head_seq: number | null
  head_hash: string | null
  broken_seq: number | null
  broken_audit_event_id: string | null
  reason: string | null
  /** The position after which links were recomputed: 0 for a full verification. */
  verified_from: number
}

/**
 * Verifies the chain in SQL (crm_audit_checkpoint, see the audit_verify_incremental migration)
 * and records an intact head as verified: incremental from the last verified position unless
 * `full`, which recomputes every link from the first.
 */
export async function verifyAuditChain(db: DbExecutor, opts: { full?: boolean } = {}): Promise<ChainVerification> {
  const { rows } = await sql<ChainVerification>`select * from crm_audit_checkpoint(${opts.full ?? false}::boolean)`.execute(db)
  return rows[0]!
}
