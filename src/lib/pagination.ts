import { Type } from 'typebox'
import { type Expression, type RawBuilder, type SelectQueryBuilder, type SqlBool, sql } from 'kysely'
import { problem, pointer } from './problem.js'
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

/**
 * What a sort key's values are, declared once per sortable field: a cursor's values are checked
 * against it before they reach SQL, so a forged cursor ('yesterday', 'infinity', a number where a
 * string belongs) is a 400 on /cursor on every list, never a cast error or a silently odd page.
 */
export type SortType = 'timestamp' | 'date' | 'uuid' | 'integer' | 'decimal' | 'text'

/** A list's sortable fields (API name, also the column name) with the type of their values. */
export type SortFields = Readonly<Record<string, SortType>>

export interface SortKey {
  /** API field name, also the column name. */
  field: string
  desc: boolean
  type: SortType
}

/** Parses `?sort=-created_at,name` against a whitelist; id is always the final tie-breaker. */
export function parseSort(input: string | undefined, allowed: SortFields, fallback: string): SortKey[] {
  const names = Object.keys(allowed)
  const raw = (input ?? fallback).split(',').map((s) => s.trim()).filter(Boolean)
  const keys: SortKey[] = []
  for (const part of raw) {
    const desc = part.startsWith('-')
    const field = desc ? part.slice(1) : part
    const type = Object.hasOwn(allowed, field) ? allowed[field] : undefined
    if (!type) {
      throw problem('invalid-sort', `Cannot sort by "${field}". Sortable fields: ${names.join(', ')}.`, [
        { pointer: pointer('sort'), message: `must be a comma-separated list of ${names.join(', ')}, each optionally prefixed with -` },
      ])
    }
    if (keys.some((k) => k.field === field)) continue
    keys.push({ field, desc, type })
  }
  if (keys.length === 0 || keys.length > 3) {
    throw problem('invalid-sort', 'Sort by one to three fields.', [{ pointer: pointer('sort'), message: 'must name one to three fields' }])
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

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,6})?(?:Z|([+-])(\d{2}):(\d{2}))$/
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DECIMAL = /^-?[0-9]{1,15}(\.[0-9]{1,6})?$/

/** A real calendar day from year 1 to 9999 (no February 30th, no year 0, which PostgreSQL reads as 1 BC). */
function isCalendarDate(y: number, m: number, d: number): boolean {
  if (y < 1 || m < 1 || m > 12 || d < 1) return false
  const date = new Date(Date.UTC(2000, m - 1, d))
  date.setUTCFullYear(y)
  return date.getUTCMonth() === m - 1 && date.getUTCDate() === d
}

/** RFC 3339 only, with a real date, time and offset: none of PostgreSQL's special inputs ('now', 'infinity', 'epoch'). */
function isTimestamp(v: unknown): boolean {
  const m = typeof v === 'string' ? TIMESTAMP.exec(v) : null
  if (!m) return false
  const [y, mo, d, h, mi, s, , oh, om] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x)))
  return isCalendarDate(y!, mo!, d!) && h! < 24 && mi! < 60 && s! < 60 && oh! < 16 && om! < 60
}

function isDate(v: unknown): boolean {
  const m = typeof v === 'string' ? DATE.exec(v) : null
  return !!m && isCalendarDate(Number(m[1]), Number(m[2]), Number(m[3]))
}

/** Whether a cursor value fits its key's declared type (null never does: sort keys are never null). */
export const CURSOR_VALUE: Readonly<Record<SortType, (v: unknown) => boolean>> = {
  timestamp: isTimestamp,
  date: isDate,
  uuid: (v) => typeof v === 'string' && UUID.test(v),
  integer: (v) => Number.isSafeInteger(v),
  decimal: (v) => typeof v === 'string' && DECIMAL.test(v),
  // PostgreSQL text cannot hold NUL; the cursor's own size limit bounds the length.
  text: (v) => typeof v === 'string' && !v.includes('\u0000'),
}

export interface DecodeOptions {
  /** The cursor must have been issued with exactly this context (see cursorContext). */
  context?: CursorContext | undefined
  /** The tie-breaker's type; default uuid. */
  id?: SortType
}

/**
 * The sort values and id a cursor carries, each checked against its key's declared type, so a
 * cursor the API did not issue for this list and sort is a 400 on /cursor, never a database error.
 */
export function decodeCursor(cursor: string, keys: SortKey[], opts: DecodeOptions = {}): unknown[] {
  const invalid = () =>
    problem('invalid-cursor', 'The cursor is not valid for this list and sort order. Start again without a cursor.', [
      { pointer: pointer('cursor'), message: 'is not a cursor issued for this list and sort' },
    ])
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw invalid()
  }
  const p = parsed as { s?: unknown; v?: unknown; x?: unknown }
  if (!p || typeof p !== 'object' || p.s !== sortSignature(keys) || !Array.isArray(p.v) || p.v.length !== keys.length + 1) {
    throw invalid()
  }
  const types = [...keys.map((k) => k.type), opts.id ?? 'uuid']
  if (!p.v.every((v, i) => CURSOR_VALUE[types[i]!](v))) throw invalid()
  if (opts.context && JSON.stringify(p.x ?? null) !== JSON.stringify(opts.context)) throw invalid()
  return p.v
}

/** The page a list asks for: its sort keys, the decoded cursor (none on the first page) and its size. */
export interface PageRequest {
  keys: SortKey[]
  after: unknown[] | undefined
  limit: number
}

/** The page a list's query string asks for: `keys` from parseSort (or fixed), the cursor decoded against them. */
export function pageRequest(q: { limit?: number | undefined; cursor?: string | undefined }, keys: SortKey[], opts?: DecodeOptions): PageRequest {
  return { keys, after: q.cursor ? decodeCursor(q.cursor, keys, opts) : undefined, limit: q.limit ?? DEFAULT_LIMIT }
}

/** How a list's sort keys map to SQL: a table (alias) whose columns are named as the fields, or explicit expressions. */
export type KeysetColumns = string | { column: (field: string) => Expression<unknown>; id: Expression<unknown> }

function columnsOf(columns: KeysetColumns) {
  return typeof columns === 'string'
    ? { column: (field: string) => sql.ref(`${columns}.${field}`), id: sql.ref(`${columns}.id`) }
    : columns
}

/**
 * The row-after-cursor predicate. When every key (and the id) sorts the same way it is a row
 * comparison, (a, b, id) > (x, y, z) (< when descending), which an index on (a, b, id) answers
 * as a range: the scan starts at the cursor. With mixed directions it is
 * (a > x) or (a = x and b < y) or (a = x and b = y and id > z), and the bound a >= x is added so
 * that an index on a still starts at the cursor: without it the OR is only a filter, and a page
 * deep in a large table read every row before it (O(position) instead of O(page)).
 */
function afterCursor(keys: SortKey[], values: unknown[], columns: KeysetColumns): RawBuilder<SqlBool> {
  const { column, id } = columnsOf(columns)
  const all = [...keys.map((k) => ({ expr: column(k.field), desc: k.desc })), { expr: id, desc: keys[keys.length - 1]?.desc ?? false }]
  const first = all[0]!
  if (all.every((k) => k.desc === first.desc)) {
    const exprs = sql.join(all.map((k) => k.expr))
    const cursor = sql.join(values.slice(0, all.length).map((v) => sql`${v}`))
    return first.desc ? sql<SqlBool>`(${exprs}) < (${cursor})` : sql<SqlBool>`(${exprs}) > (${cursor})`
  }
  const ors: RawBuilder<SqlBool>[] = []
  for (let i = 0; i < all.length; i++) {
    const ands: RawBuilder<SqlBool>[] = []
    for (let j = 0; j < i; j++) ands.push(sql<SqlBool>`${all[j]!.expr} = ${values[j]}`)
    const cur = all[i]!
    ands.push(cur.desc ? sql<SqlBool>`${cur.expr} < ${values[i]}` : sql<SqlBool>`${cur.expr} > ${values[i]}`)
    ors.push(ands.length === 1 ? ands[0]! : sql<SqlBool>`(${sql.join(ands, sql` and `)})`)
  }
  const bound = first.desc ? sql<SqlBool>`${first.expr} <= ${values[0]}` : sql<SqlBool>`${first.expr} >= ${values[0]}`
  return sql<SqlBool>`(${bound} and (${sql.join(ors, sql` or `)}))`
}

/**
 * The keyset parts of a list written as raw SQL: `where` (true on the first page) and the
 * `orderBy` list (the keys, then the id in the last key's direction).
 */
export function keysetSql(page: Pick<PageRequest, 'keys' | 'after'>, columns: KeysetColumns): { where: RawBuilder<SqlBool>; orderBy: RawBuilder<unknown> } {
  const { column, id } = columnsOf(columns)
  const dir = (desc: boolean) => sql.raw(desc ? 'desc' : 'asc')
  const last = page.keys[page.keys.length - 1]
  return {
    where: page.after ? afterCursor(page.keys, page.after, columns) : sql<SqlBool>`true`,
    orderBy: sql.join([...page.keys.map((k) => sql`${column(k.field)} ${dir(k.desc)}`), sql`${id} ${dir(last?.desc ?? false)}`]),
  }
}

/**
 * A Kysely select as one page of a keyset list: the rows after the cursor, ordered by the keys
 * then the id (in the last key's direction), limit + 1 of them (toPage turns the extra row into
 * next_cursor). Every list pages through here or through keysetSql.
 */
export function keysetPage<DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>, page: PageRequest, columns: KeysetColumns): SelectQueryBuilder<DB, TB, O> {
  return keysetOrder(qb, page, columns).limit(page.limit + 1)
}

/**
 * keysetPage without the limit, for a query compiled once per shape (db/compiled.ts), whose
 * limit is a parameter the caller sets to limit + 1 itself.
 */
export function keysetOrder<DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>, page: Pick<PageRequest, 'keys' | 'after'>, columns: KeysetColumns): SelectQueryBuilder<DB, TB, O> {
  const { column, id } = columnsOf(columns)
  let query = page.after ? qb.where(afterCursor(page.keys, page.after, columns)) : qb
  for (const k of page.keys) query = query.orderBy(column(k.field), k.desc ? 'desc' : 'asc')
  const last = page.keys[page.keys.length - 1]
  return query.orderBy(id, last?.desc ? 'desc' : 'asc')
}

export interface Page<T> {
  data: T[]
  next_cursor: string | null
}

/** Rows were fetched with limit + 1; the extra row only says whether another page exists. */
export function toPage<R extends Record<string, unknown>, T>(rows: R[], { keys, limit }: Pick<PageRequest, 'keys' | 'limit'>, map: (row: R) => T, context?: CursorContext): Page<T> {
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
