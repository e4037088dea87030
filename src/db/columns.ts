import type { ColumnType } from 'kysely'

/**
 * Column types that the generated src/db/schema.ts refers to (by the overrides in
 * scripts/db-schema/types.ts) where the database's own type says too little.
 */

/** Written only by the database (a trigger, a default the API role may not override, crm_audit_seal). */
export type ServerOwned<T> = ColumnType<T, never, never>

/** A jsonb column: read as T; written as T or as JSON text. */
export type JsonColumn<T> = ColumnType<T, string | T | undefined, string | T>

/** A jsonb object without a fixed shape (preferences, attributes, consent, address, audit snapshots). */
export type JsonDocument = JsonColumn<Record<string, unknown>>

/** The stored headers of an idempotent response. */
export type HeaderMap = JsonColumn<Record<string, string>>

/** An import job's rejected rows (written as JSON text). */
export type ImportErrors = ColumnType<Array<{ line: number; pointer: string; message: string }>, string | undefined, string>

/** A segment's filter expression, validated by the filter language, not by the column. */
export type SegmentFilter = JsonColumn<unknown>
