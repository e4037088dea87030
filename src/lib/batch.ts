import { Type, type TSchema } from 'typebox'
import { toProblem } from '../plugins/errors.js'
import { HttpProblem } from './problem.js'
import { Uuid } from './schema.js'

/**
 * The one batch mechanism of the API (`POST /v1/<resource>/batch`, API.md § Writing): up to
 * 1,000 items, all or nothing, per-item results. A domain needs three things from here:
 *
 *   const OrderBatch = batchBody(ref(OrderCreate), { $id: 'OrderBatch', description, example })
 *   const OrderBatchResult = batchResult({ $id: 'OrderBatchResult', description, example })
 *   app.post('/orders/batch', { bodyLimit: BATCH_BODY_LIMIT, schema: { body: ref(OrderBatch),
 *     response: { 200: ref(OrderBatchResult), ... } }, config: { scope: 'orders:write' } },
 *     (request) => runSetwiseBatch(request.body.items, plan))
 *
 * All-or-nothing comes from the request transaction the audit plugin opens around every POST:
 * the items are applied in order with `request.db`, and the first item that fails throws, which
 * rolls back every item before it. Schema errors never reach the runner: the body schema rejects
 * the whole request with pointers such as /items/499/quantity. A business error of item i is
 * re-thrown with its errors[] pointers prefixed by /items/i, keeping its status.
 *
 * Rule for the plan's functions: never catch and swallow a database error. PostgreSQL aborts the
 * transaction at the first failed statement, so a swallowed error only fails the next item with a
 * worse message.
 */
export const MAX_BATCH_ITEMS = 1000

/** Route bodyLimit for batch routes: 1,000 items do not fit the default 1 MiB. */
export const BATCH_BODY_LIMIT = 16 * 1024 * 1024

/** A type literal, not an interface, so that it fits TypeBox's options index signature. */
type NamedSchemaOptions = {
  $id: string
  description: string
  example: unknown
}

/** `{ items: [item, …] }` with 1..1,000 items and nothing else. Pass `ref(ItemSchema)` as item. */
export function batchBody<T extends TSchema>(item: T, options: NamedSchemaOptions) {
  return Type.Object(
    {
      items: Type.Array(item, {
        minItems: 1,
        maxItems: MAX_BATCH_ITEMS,
        description: `1 to ${MAX_BATCH_ITEMS} items, applied in order in one transaction: all of them or none`,
      }),
    },
    { additionalProperties: false, ...options },
  )
}

/** What a batch reports for one item. */
export interface BatchItemResult {
  /** Position of the item in the request's items[]. */
  index: number
  /** 201 when the item created a record, 200 when it updated one (e.g. an external_ref upsert). */
  status: number
  id: string
}

export interface BatchResult {
  items: BatchItemResult[]
}

/** The response body of a batch route: one result per item, in request order. */
export function batchResult(options: NamedSchemaOptions) {
  return Type.Object(
    {
      items: Type.Array(
        Type.Object({
          index: Type.Integer({ minimum: 0, description: 'Position of the item in the request', example: 0 }),
          status: Type.Integer({ description: '201 created, 200 updated (matched by external_ref)', example: 201 }),
          id: Uuid({ description: 'Id of the record the item created or updated' }),
        }),
        { description: 'One result per request item, in request order' },
      ),
    },
    options,
  )
}

/** The item's problem with pointers moved under /items/<index>; server errors pass through untouched. */
function itemProblem(err: unknown, index: number, count: number): unknown {
  const problem = toProblem(err)
  if (problem.status >= 500) return err
  const at = `/items/${index}`
  const errors = problem.errors?.length
    ? problem.errors.map((e) => ({ pointer: at + e.pointer, message: e.message }))
    : [{ pointer: at, message: problem.detail ?? problem.title }]
  return new HttpProblem(problem.code, {
    detail: `Item ${index} failed, so none of the ${count} items was applied. ${problem.detail ?? ''}`.trim(),
    errors,
    headers: problem.headers,
  })
}

/**
 * What a domain supplies to runSetwiseBatch. `L` is what a run of new items needs looked up
 * (their customers, the unique values they claim), `P` an item checked and ready to insert.
 */
export interface SetwiseBatch<I, L, P> {
  /** The item's external_ref: an item naming one that exists, or that an earlier item creates, is an update. */
  externalRef(item: I): string | null | undefined
  /** Which of these external_refs exist already: one query. */
  existingRefs(refs: string[]): Promise<Set<string>>
  /** Looks up, in a few queries for all of them, what `prepare` needs for these new items. */
  lookup(items: I[]): Promise<L>
  /**
   * Checks one new item as the single-item path would, in the same order of checks, and returns
   * its rows; no database access (everything comes from the lookups, which it may extend, e.g. with
   * the unique values this item claims so that a later item claiming them fails as it would have).
   */
  prepare(item: I, lookups: L): P
  /**
   * Inserts the prepared items in a few statements (ON CONFLICT DO NOTHING) and returns per item
   * its id, or undefined when a concurrent transaction took one of its unique values since the
   * lookups: that item then goes through `one`, which upserts it or answers the conflict.
   */
  insert(prepared: P[]): Promise<Array<string | undefined>>
  /** The single-item path (as the single create route runs it): for updates and skipped inserts. */
  one(item: I): Promise<{ status: number; id: string }>
}

/**
 * The batch, in order, all or nothing, the first failing item's problem under /items/<index>,
 * written set-wise: consecutive items that create new records form a run, which
 * is checked item by item in order before anything of it is written, then inserted with one
 * statement per table. An item that updates a record by external_ref (one that exists, or one an
 * earlier item of the batch creates) goes through the single-item path in its place, after the
 * run before it is written, so it sees what it would have seen one item at a time. A batch of
 * new records is thus a handful of statements, each firing the audit triggers once for all its rows.
 */
export async function runSetwiseBatch<I, L, P>(items: readonly I[], plan: SetwiseBatch<I, L, P>): Promise<BatchResult> {
  const refs = [...new Set(items.map((item) => plan.externalRef(item)).filter((ref): ref is string => ref != null))]
  const known = refs.length > 0 ? await plan.existingRefs(refs) : new Set<string>()
  const results: BatchItemResult[] = []
  const single = async (index: number) => {
    try {
      results.push({ index, ...(await plan.one(items[index]!)) })
    } catch (err) {
      throw itemProblem(err, index, items.length)
    }
  }
  const write = async (run: number[]) => {
    if (run.length === 0) return
    const lookups = await plan.lookup(run.map((index) => items[index]!))
    const prepared = run.map((index) => {
      try {
        return plan.prepare(items[index]!, lookups)
      } catch (err) {
        throw itemProblem(err, index, items.length)
      }
    })
    const ids = await plan.insert(prepared)
    for (const [k, index] of run.entries()) {
      const id = ids[k]
      if (id !== undefined) results.push({ index, status: 201, id })
      else await single(index)
    }
  }
  let run: number[] = []
  for (let index = 0; index < items.length; index++) {
    const ref = plan.externalRef(items[index]!)
    if (ref != null && known.has(ref)) {
      await write(run)
      run = []
      await single(index)
      continue
    }
    if (ref != null) known.add(ref)
    run.push(index)
  }
  await write(run)
  return { items: results }
}

/** PostgreSQL's limit of bind parameters per statement (a 16-bit count in the protocol). */
const MAX_PARAMETERS = 65_535

/**
 * Splits rows for a multi-row INSERT ... VALUES so that no statement exceeds the bind parameter
 * limit: one chunk for a usual batch (1,000 orders of ~20 columns), more only for huge ones.
 */
export function parameterChunks<T extends object>(rows: readonly T[]): T[][] {
  const columns = new Set(rows.flatMap((row) => Object.keys(row))).size
  const size = Math.max(1, Math.floor(MAX_PARAMETERS / Math.max(1, columns)))
  const chunks: T[][] = []
  for (let i = 0; i < rows.length; i += size) chunks.push(rows.slice(i, i + size))
  return chunks
}
