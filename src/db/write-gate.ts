import { sql } from 'kysely'

/**
 * The write gate: every audited write transaction (src/plugins/audit.ts, inAuditedTransaction)
 * takes it shared as its first lock; a transactional migration batch (src/db/migrate.ts) takes it
 * exclusive before its first statement. So a migration waits for the writes in flight to finish
 * and writes that arrive meanwhile wait for the migration, instead of each holding some tables
 * while waiting for others: a migration that alters several tables deadlocked every time with
 * writers touching a customer and its interactions (test/db/migrations-under-load.test.ts).
 * The wait is bounded on both sides: writers by the request deadline, the migration by
 * MIGRATION_LOCK_TIMEOUT_MS (then it rolls back and retries).
 *
 * Two int4 keys: that key space never meets the single bigint keys of the idempotency locks.
 */
const GATE = sql`${sql.lit(0x63726d)}, ${sql.lit(1)}`

/** An expression for a SELECT list: takes the gate shared until the transaction ends. */
export const shareWriteGate = sql`pg_advisory_xact_lock_shared(${GATE})`

/** An expression for a SELECT list: takes the gate exclusively until the transaction ends. */
export const closeWriteGate = sql`pg_advisory_xact_lock(${GATE})`
