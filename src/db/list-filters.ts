import { type SelectQueryBuilder, sql } from 'kysely'

/**
 * The simple filters every list has, written once: equality on a column and a half-open time
 * range. A value that is absent (or empty) applies no condition, as an absent query parameter.
 * Column names are the API's field names, qualified by `table`.
 */
export function whereEqual<DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>, table: string, values: Record<string, string | undefined>): SelectQueryBuilder<DB, TB, O> {
  let query = qb
  for (const [column, value] of Object.entries(values)) {
    if (value) query = query.where(sql.ref(`${table}.${column}`), '=', value)
  }
  return query
}

/** `column >= from and column < to`, each bound only when given (the lists' _after and _before parameters). */
export function whereRange<DB, TB extends keyof DB, O>(qb: SelectQueryBuilder<DB, TB, O>, column: string, from: string | undefined, to: string | undefined): SelectQueryBuilder<DB, TB, O> {
  let query = qb
  if (from) query = query.where(sql.ref(column), '>=', from)
  if (to) query = query.where(sql.ref(column), '<', to)
  return query
}
