import type { CompiledQuery, Compilable } from 'kysely'
import type { DbExecutor } from './database.js'

const MARKER = '00000000-0000-4000-8000-00000000c0de'

/**
 * A keyed read compiled once: building and compiling a Kysely query tree costs about 0.1 ms, a
 * noticeable share of a hot read such as GET /v1/customers/{id}. `build` is called once with a
 * marker in place of the key; each call then runs that SQL with the key put where the marker was.
 * Only for queries whose shape does not depend on the key (every other value stays fixed).
 */
export function compiledByKey<R>(build: (db: DbExecutor, key: string) => Compilable<R>) {
  let compiled: { query: CompiledQuery<R>; index: number } | undefined
  return async (db: DbExecutor, key: string): Promise<R[]> => {
    if (!compiled) {
      const query = build(db, MARKER).compile()
      const index = query.parameters.indexOf(MARKER)
      if (index < 0 || query.parameters.indexOf(MARKER, index + 1) >= 0) throw new Error('compiledByKey: the key must be exactly one parameter')
      compiled = { query, index }
    }
    const parameters = [...compiled.query.parameters]
    parameters[compiled.index] = key
    const result = await db.executeQuery<R>({ ...compiled.query, parameters })
    return result.rows
  }
}

const SLOT = '\u0000crm-slot:'

/**
 * A query whose SQL depends only on its shape (which optional filters apply, the sort, how many
 * cursor values), compiled once per shape. `build` is called once per shape with markers in place
 * of the values; each call then runs that SQL with each value put where its marker was. The shape
 * must decide everything `build` decides (a value is only ever passed through as a parameter), and
 * must be JSON. At most `maxShapes` shapes are kept; others are compiled on each call.
 */
export function compiledByShape<S, V extends Record<string, unknown>, R>(build: (db: DbExecutor, shape: S, values: V) => Compilable<R>, maxShapes = 256) {
  const cache = new Map<string, { query: CompiledQuery<R>; slots: Array<[index: number, name: string]> }>()
  return async (db: DbExecutor, shape: S, values: V): Promise<R[]> => {
    const key = JSON.stringify(shape)
    let compiled = cache.get(key)
    if (!compiled) {
      const markers: Record<string, unknown> = {}
      for (const name of Object.keys(values)) markers[name] = SLOT + name
      const query = build(db, shape, markers as V).compile()
      const slots: Array<[number, string]> = []
      query.parameters.forEach((p, i) => {
        if (typeof p === 'string' && p.startsWith(SLOT)) slots.push([i, p.slice(SLOT.length)])
      })
      compiled = { query, slots }
      if (cache.size < maxShapes) cache.set(key, compiled)
    }
    const parameters = [...compiled.query.parameters]
    for (const [i, name] of compiled.slots) parameters[i] = values[name]
    const result = await db.executeQuery<R>({ ...compiled.query, parameters })
    return result.rows
  }
}
