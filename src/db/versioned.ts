import { type InsertObject, type Kysely, type Selectable, type SelectQueryBuilder, sql } from 'kysely'
import { parameterChunks } from '../lib/batch.js'
import { upsertByExternalRef, type UpsertResult } from '../lib/external-ref.js'
import { notFound, versionMismatch } from '../lib/problem.js'
import type { ArchivedFilter } from '../lib/schema.js'
import type { DbExecutor } from './database.js'
import type { Database } from './rows.js'

/**
 * The repository functions every versioned, archivable table needs, written once and
 * parameterized by the table (API.md § Writing): a row has an id, an integer `version` (the ETag,
 * bumped by the crm_touch trigger on every real change) and `archived_at`; tables whose records
 * come from another system also have a unique `external_ref`. Every write here goes through the
 * request transaction, so the audit triggers record it; a write that would change nothing is not
 * made, so it leaves no new version and no audit row.
 *
 * A domain keeps its own reads with computed columns and its own updates; the lock, the archive
 * and restore, and the external_ref upsert are these.
 */
export type VersionedTableName = 'customers' | 'orders' | 'interactions' | 'feedback' | 'segments' | 'webhook_subscriptions' | 'teams' | 'roles' | 'users'
export type ExternalRefTableName = 'customers' | 'orders' | 'interactions' | 'feedback'

export type VersionedRow<T extends VersionedTableName> = Selectable<Database[T]>

/** The columns this helper relies on, the same in every versioned table. */
interface VersionedColumns {
  id: string
  version: number
  archived_at: string | null
  external_ref: string | null
}

// The queries are the same for every table, so they are written against the columns all of them
// share (the table's real name stands where the type says 'versioned'); the rows go back to the
// caller with the table's own type.
const generic = (db: DbExecutor) => db as unknown as Kysely<{ versioned: VersionedColumns }>

/** Which rows a list's `archived` filter keeps: live ones (false, the default), archived ones (true) or both (all). */
export function whereArchived<DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>, table: VersionedTableName, filter: ArchivedFilter): SelectQueryBuilder<DB, TB, O> {
  if (filter === 'all') return qb
  return qb.where(sql.ref(`${table}.archived_at`), filter === 'true' ? 'is not' : 'is', null)
}

export interface VersionedTable<T extends VersionedTableName> {
  readonly table: T
  /** The record in problems: "No order with that identifier." */
  readonly what: string
  find(db: DbExecutor, id: string): Promise<VersionedRow<T> | undefined>
  /** The current version (the ETag), undefined when there is no such record. */
  version(db: DbExecutor, id: string): Promise<number | undefined>
  /**
   * The row locked (FOR UPDATE) for the rest of the transaction; with expectedVersion only if it
   * still has that version, so of concurrent writers holding the same ETag exactly one wins.
   */
  lock(db: DbExecutor, id: string, expectedVersion?: number): Promise<VersionedRow<T> | undefined>
  /** lock, or the 404 (no such record) or 412 (If-Match names another version) that explains why not. */
  lockForWrite(db: DbExecutor, id: string, expectedVersion?: number): Promise<VersionedRow<T>>
  /** Archives the record; an archived record is left as it is (same version, archived_at kept, no audit row). Returns whether it changed. */
  archive(db: DbExecutor, id: string, expectedVersion?: number): Promise<boolean>
  /**
   * Restores an archived record; a live one is left as it is. `check` may refuse the restore
   * (a merged customer stays archived). Returns whether it changed.
   */
  restore(db: DbExecutor, id: string, expectedVersion?: number, check?: (row: VersionedRow<T>) => void): Promise<boolean>
}

export interface ExternalRefTable<T extends ExternalRefTableName> extends VersionedTable<T> {
  /** The row holding this external_ref, locked for the rest of the transaction. */
  lockByExternalRef(db: DbExecutor, externalRef: string): Promise<VersionedRow<T> | undefined>
  /** Inserts a row; undefined when its external_ref exists already (ON CONFLICT DO NOTHING: a concurrent upsert won). */
  insert(db: DbExecutor, row: InsertRow<T>): Promise<string | undefined>
  /**
   * Inserts many rows (ids chosen by the caller) in as few statements as the parameter limit
   * allows, in the given order. A row whose external_ref (or other unique value) a concurrent
   * transaction took is skipped, not an error: the returned set holds the ids actually inserted.
   */
  insertMany(db: DbExecutor, rows: Array<InsertRow<T> & { id: string }>): Promise<Set<string>>
  /** The external_refs among `refs` that a record of this table holds (one query for a batch). */
  existingExternalRefs(db: DbExecutor, refs: string[]): Promise<Set<string>>
  /**
   * Create-or-update by external_ref (lib/external-ref.ts): `update` applies the request to the
   * record holding it, `insert` creates one. A record that is archived answers 409
   * external-ref-archived, or with restoreArchived is restored first.
   */
  upsert(db: DbExecutor, externalRef: string | null | undefined, steps: UpsertWrites<T>, opts?: UpsertOptions): Promise<UpsertResult>
}

/** Column values or SQL expressions of a new row. */
export type InsertRow<T extends ExternalRefTableName> = InsertObject<Database, T>

export interface UpsertWrites<T extends ExternalRefTableName> {
  /** Inserts the new record; undefined when its external_ref exists already. */
  insert(): Promise<string | undefined>
  /** Applies the request to the existing (locked, live) record. */
  update(existing: VersionedRow<T>): Promise<void>
  /** The record that takes the writes of the one holding the external_ref (see lib/external-ref.ts); default itself. */
  follow?(existing: VersionedRow<T>): Promise<VersionedRow<T>>
}

export interface UpsertOptions {
  /** Restore an archived record the external_ref names instead of answering 409. */
  restoreArchived?: boolean | undefined
}

export function versionedTable<T extends VersionedTableName>(table: T, what: string): VersionedTable<T> {
  const t = table as string as 'versioned'
  const lock = async (db: DbExecutor, id: string, expectedVersion?: number) =>
    (await generic(db)
      .selectFrom(t)
      .selectAll()
      .where('id', '=', id)
      .$if(expectedVersion !== undefined, (qb) => qb.where('version', '=', expectedVersion!))
      .forUpdate()
      .executeTakeFirst()) as VersionedRow<T> | undefined
  const version = async (db: DbExecutor, id: string) =>
    (await generic(db).selectFrom(t).select('version').where('id', '=', id).executeTakeFirst())?.version
  const lockForWrite = async (db: DbExecutor, id: string, expectedVersion?: number) => {
    const row = await lock(db, id, expectedVersion)
    if (row) return row
    if ((await version(db, id)) === undefined) throw notFound(what)
    throw versionMismatch()
  }
  const setArchived = async (db: DbExecutor, id: string, archived: boolean) => {
    await generic(db).updateTable(t).set({ archived_at: archived ? sql<string>`now()` : null }).where('id', '=', id).execute()
  }
  return {
    table,
    what,
    find: async (db, id) => (await generic(db).selectFrom(t).selectAll().where('id', '=', id).executeTakeFirst()) as VersionedRow<T> | undefined,
    version,
    lock,
    lockForWrite,
    async archive(db, id, expectedVersion) {
      const row = (await lockForWrite(db, id, expectedVersion)) as unknown as VersionedColumns
      if (row.archived_at !== null) return false
      await setArchived(db, id, true)
      return true
    },
    async restore(db, id, expectedVersion, check) {
      const row = await lockForWrite(db, id, expectedVersion)
      check?.(row)
      if ((row as unknown as VersionedColumns).archived_at === null) return false
      await setArchived(db, id, false)
      return true
    },
  }
}

export function externalRefTable<T extends ExternalRefTableName>(table: T, what: string): ExternalRefTable<T> {
  const base = versionedTable(table, what)
  const t = table as string as 'versioned'
  const lockByExternalRef = async (db: DbExecutor, externalRef: string) =>
    (await generic(db).selectFrom(t).selectAll().where('external_ref', '=', externalRef).forUpdate().executeTakeFirst()) as VersionedRow<T> | undefined
  return {
    ...base,
    lockByExternalRef,
    async insert(db, row) {
      const inserted = await generic(db)
        .insertInto(t)
        .values(row as never)
        .$if((row as { external_ref?: unknown }).external_ref != null, (qb) => qb.onConflict((oc) => oc.column('external_ref').doNothing()))
        .returning('id')
        .executeTakeFirst()
      return inserted?.id
    },
    async insertMany(db, rows) {
      const inserted = new Set<string>()
      for (const chunk of parameterChunks(rows)) {
        const ids = await generic(db).insertInto(t).values(chunk as never).onConflict((oc) => oc.doNothing()).returning('id').execute()
        for (const { id } of ids) inserted.add(id)
      }
      return inserted
    },
    async existingExternalRefs(db, refs) {
      if (refs.length === 0) return new Set()
      const rows = await generic(db).selectFrom(t).select('external_ref').where('external_ref', 'in', refs).execute()
      return new Set(rows.map((r) => r.external_ref!))
    },
    upsert: (db, externalRef, steps, opts = {}) =>
      upsertByExternalRef(externalRef, {
        what,
        lock: (ref) => lockByExternalRef(db, ref) as Promise<(VersionedRow<T> & VersionedColumns) | undefined>,
        insert: steps.insert,
        update: (existing) => steps.update(existing),
        ...(steps.follow ? { follow: steps.follow as (existing: VersionedRow<T> & VersionedColumns) => Promise<VersionedRow<T> & VersionedColumns> } : {}),
        restore: async (existing) => {
          await base.restore(db, existing.id)
        },
      }, opts),
  }
}
