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
 *     (request) => runBatch(request.body.items, (item, index) => createOne(request.db, item)))
 *
 * All-or-nothing comes from the request transaction the audit plugin opens around every POST:
 * runBatch applies the items in order with `request.db`, and the first item that fails throws,
 * which rolls back every item before it. Schema errors never reach runBatch: the body schema
 * rejects the whole request with pointers such as /items/499/quantity. A business error of
 * item i is re-thrown with its errors[] pointers prefixed by /items/i, keeping its status.
 *
 * Rule for `fn`: never catch and swallow a database error. PostgreSQL aborts the transaction at
 * the first failed statement, so a swallowed error only fails the next item with a worse message.
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

/** What runBatch reports for one item. */
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

/**
 * Applies `fn` to each item in order inside the request's open transaction and collects the
 * results. The first failure aborts the batch: see the module comment.
 */
export async function runBatch<I>(
  items: readonly I[],
  fn: (item: I, index: number) => Promise<{ status: number; id: string }>,
): Promise<BatchResult> {
  const results: BatchItemResult[] = []
  for (let index = 0; index < items.length; index++) {
    try {
      const { status, id } = await fn(items[index]!, index)
      results.push({ index, status, id })
    } catch (err) {
      throw itemProblem(err, index, items.length)
    }
  }
  return { items: results }
}

/** The item's problem with pointers moved under /items/<index>; server errors pass through untouched. */
function itemProblem(err: unknown, index: number, count: number): unknown {
  const problem = toProblem(err)
  if (problem.status >= 500) return err
  const at = `/items/${index}`
  const errors = problem.errors?.length
    ? problem.errors.map((e) => ({ pointer: at + e.pointer, message: e.message }))
    : [{ pointer: at, message: problem.detail ?? problem.title }]
  return new HttpProblem({
    status: problem.status,
    title: problem.title,
    type: problem.type,
    detail: `Item ${index} failed, so none of the ${count} items was applied. ${problem.detail ?? ''}`.trim(),
    errors,
    headers: problem.headers,
  })
}
