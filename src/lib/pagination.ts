import { Type } from 'typebox'
import { type ExpressionBuilder, type Expression, type SqlBool, sql } from 'kysely'
import { badRequest, pointer } from './problem.js'
import { Nullable } from './schema.js'

/**
 * Keyset (cursor) pagination shared by every list. The cursor is opaque to clients:
 * base64url JSON of the sort specification and the last row's sort values plus its id, so it
 * stays correct while rows are inserted and never needs OFFSET.
 */
export const DEFAULT_LIMIT = 50
export const MAX_LIMIT = 200

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, description: 'Page size (1..200)' })),
  cursor: Type.Optional(Type.String({ maxLength: 1024, description: 'Opaque cursor from the previous page\'s next_cursor' })),
}

export interface SortKey {
  /** API field name, also the column name. */
  field: string
  desc: boolean
}

/** Parses `?sort=-created_at,name` against a whitelist; id is always the final tie-breaker. */
export function parseSort(input: string | undefined, allowed: readonly string[], fallback: string): SortKey[] {
  const raw = (input ?? fallback).split(',').map((s) => s.trim()).filter(Boolean)
  const keys: SortKey[] = []
  for (const part of raw) {
    const desc = part.startsWith('-')
    const field = desc ? part.slice(1) : part
    if (!allowed.includes(field)) {
      throw badRequest(`Cannot sort by "${field}". Sortable fields: ${allowed.join(', ')}.`, [
        { pointer: pointer('sort'), message: `must be a comma-separated list of ${allowed.join(', ')}, each optionally prefixed with -` },
      ])
    }
    if (keys.some((k) => k.field === field)) continue
    keys.push({ field, desc })
  }
  if (keys.length === 0 || keys.length > 3) {
    throw badRequest('Sort by one to three fields.', [{ pointer: pointer('sort'), message: 'must name one to three fields' }])
  }
  return keys
}

export function sortSignature(keys: SortKey[]): string {
  return keys.map((k) => (k.desc ? '-' : '') + k.field).join(',')
}

/**
 * Parameters a list depends on besides its sort (for example an analytics list's as_of), carried
 * in the cursor so that the next page is computed over the same inputs; see cursorContext.
 */
export type CursorContext = Record<string, string | number | null>

export function encodeCursor(keys: SortKey[], row: Record<string, unknown>, idField = 'id', context?: CursorContext): string {
  const values = [...keys.map((k) => row[k.field] ?? null), row[idField]]
  return Buffer.from(JSON.stringify({ s: sortSignature(keys), v: values, ...(context ? { x: context } : {}) })).toString('base64url')
}

/** The context a cursor was issued with (undefined when it carries none or is not a cursor). */
export function cursorContext(cursor: string): CursorContext | undefined {
  try {
    const p = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { x?: unknown }
    const x = p?.x
    if (!x || typeof x !== 'object' || Array.isArray(x)) return undefined
    const out: CursorContext = {}
    for (const [k, v] of Object.entries(x)) {
      if (v !== null && typeof v !== 'string' && typeof v !== 'number') return undefined
      out[k] = v
    }
    return out
  } catch {
    return undefined
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Cursor value checks for `decodeCursor`'s `valid`: a forged cursor is a 400 on /cursor, not a database error. */
export const isCursorTimestamp = (v: unknown): v is string => typeof v === 'string' && RFC3339.test(v) && !Number.isNaN(Date.parse(v))
export const isCursorUuid = (v: unknown): v is string => typeof v === 'string' && UUID.test(v)

/**
 * The sort values and id a cursor carries. `valid` checks them further (types, formats) for lists
 * whose keys the database would otherwise fail to cast. With `context`, the cursor must have been
 * issued with exactly that context (see cursorContext).
 */
export function decodeCursor(cursor: string, keys: SortKey[], valid?: (values: unknown[]) => boolean, context?: CursorContext): unknown[] {
  const invalid = () =>
    badRequest('The cursor is not valid for this list and sort order. Start again without a cursor.', [
      { pointer: pointer('cursor'), message: 'is not a cursor issued for this list and sort' },
    ])
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw invalid()
  }
  const p = parsed as { s?: unknown; v?: unknown }
  if (!p || typeof p !== 'object' || p.s !== sortSignature(keys) || !Array.isArray(p.v) || p.v.length !== keys.length + 1) {
    throw invalid()
  }
  if (p.v.some((v) => v !== null && typeof v !== 'string' && typeof v !== 'number')) throw invalid()
  if (valid && !valid(p.v)) throw invalid()
  if (context && JSON.stringify((p as { x?: unknown }).x ?? null) !== JSON.stringify(context)) throw invalid()
  return p.v
}

/**
 * The row-after-cursor predicate. When every key (and the id) sorts the same way it is a row
 * comparison, (a, b, id) > (x, y, z) (< when descending), which an index on (a, b, id) answers
 * as a range: the scan starts at the cursor. With mixed directions it is
 * (a > x) or (a = x and b < y) or (a = x and b = y and id > z), and the bound a >= x is added so
 * that an index on a still starts at the cursor: without it the OR is only a filter, and a page
 * deep in a large table read every row before it (O(position) instead of O(page)).
 * `column` maps an API field to the SQL expression it sorts by.
 */
export function afterCursor<DB, TB extends keyof DB>(
  eb: ExpressionBuilder<DB, TB>,
  keys: SortKey[],
  values: unknown[],
  column: (field: string) => Expression<unknown>,
  idColumn: Expression<unknown>,
): Expression<SqlBool> {
  const all = [...keys.map((k) => ({ expr: column(k.field), desc: k.desc })), { expr: idColumn, desc: keys[keys.length - 1]?.desc ?? false }]
  const first = all[0]!
  if (all.every((k) => k.desc === first.desc)) {
    const columns = sql.join(all.map((k) => k.expr))
    const cursor = sql.join(values.slice(0, all.length).map((v) => sql`${v}`))
    return first.desc ? sql<SqlBool>`(${columns}) < (${cursor})` : sql<SqlBool>`(${columns}) > (${cursor})`
  }
  const ors: Expression<SqlBool>[] = []
  for (let i = 0; i < all.length; i++) {
    const ands: Expression<SqlBool>[] = []
    for (let j = 0; j < i; j++) ands.push(sql<SqlBool>`${all[j]!.expr} = ${values[j]}`)
    const cur = all[i]!
    ands.push(cur.desc ? sql<SqlBool>`${cur.expr} < ${values[i]}` : sql<SqlBool>`${cur.expr} > ${values[i]}`)
    ors.push(eb.and(ands))
  }
  const bound = first.desc ? sql<SqlBool>`${first.expr} <= ${values[0]}` : sql<SqlBool>`${first.expr} >= ${values[0]}`
  return eb.and([bound, eb.or(ors)])
}

export interface Page<T> {
  data: T[]
  next_cursor: string | null
}

/** Rows were fetched with limit + 1; the extra row only says whether another page exists. */
export function toPage<R extends Record<string, unknown>, T>(rows: R[], limit: number, keys: SortKey[], map: (row: R) => T, context?: CursorContext): Page<T> {
  const hasMore = rows.length > limit
  const pageRows = hasMore ? rows.slice(0, limit) : rows
  const last = pageRows[pageRows.length - 1]
  return {
    data: pageRows.map(map),
    next_cursor: hasMore && last ? encodeCursor(keys, last, 'id', context) : null,
  }
}

export const pageEnvelope = <T extends object>(item: T, description: string) =>
  Type.Object(
    {
      data: Type.Array(item),
      next_cursor: Nullable(Type.String(), { description: 'Pass as ?cursor= for the next page; null on the last page', example: null }),
    },
    { description },
  )
