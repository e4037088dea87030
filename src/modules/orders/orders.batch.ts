import type { DbExecutor } from '../../db/database.js'
import type { UpsertOptions } from '../../db/versioned.js'
import { type BatchResult, runSetwiseBatch } from '../../lib/batch.js'
import { constraintProblem } from '../../lib/constraints.js'
import { uuidv7 } from '../../lib/uuid.js'
import * as repo from './orders.repository.js'
import type { OrderCreateBody } from './orders.schemas.js'
import * as service from './orders.service.js'

/** What a run of new orders needs: their customers, and the order numbers already taken. */
interface Lookups {
  customers: service.CustomerCache
  /** Order numbers other orders have, plus those claimed by earlier items of the run. */
  takenNumbers: Set<string>
}

type Prepared = service.NewOrderRows & { id: string }

/**
 * POST /v1/orders/batch: each item handled as createOrder handles its body, in order, all or
 * nothing, with the first failing item's problem (lib/batch.ts, runSetwiseBatch). New orders are
 * checked first, then inserted with one statement each for orders, their lines and payments.
 */
export async function createOrders(db: DbExecutor, items: OrderCreateBody[], opts: UpsertOptions = {}): Promise<BatchResult> {
  const customers: service.CustomerCache = new Map()
  return runSetwiseBatch<OrderCreateBody, Lookups, Prepared>(items, {
    externalRef: (item) => item.external_ref,
    existingRefs: (refs) => repo.orders.existingExternalRefs(db, refs),
    one: async (item) => {
      const { id, created } = await service.createOrder(db, item, { ...opts, customers })
      return { status: created ? 201 : 200, id }
    },
    lookup: async (run) => {
      await service.cacheOrderingCustomers(db, run.map((item) => item.customer_id), customers)
      const numbers = [...new Set(run.flatMap((item) => (item.order_number ? [item.order_number] : [])))]
      return { customers, takenNumbers: await repo.takenOrderNumbers(db, numbers) }
    },
    prepare: (item, { customers, takenNumbers }) => {
      // The checks of createOrder, in its order: customer, then the new order itself, then uniqueness.
      const customer = service.assertOrderingCustomer(customers.get(item.customer_id))
      const rows = service.prepareNewOrder(item, customer)
      if (item.order_number) {
        if (takenNumbers.has(item.order_number)) throw constraintProblem('orders_order_number_key')
        takenNumbers.add(item.order_number)
      }
      return { ...rows, id: uuidv7() }
    },
    insert: async (prepared) => {
      const inserted = await repo.orders.insertMany(db, prepared.map((p) => ({ ...p.order, id: p.id })))
      const written = prepared.filter((p) => inserted.has(p.id))
      await repo.insertItemsOfOrders(db, written.flatMap((p) => p.lines.map((line) => ({ ...line, order_id: p.id }))))
      await repo.insertPaymentsOfOrders(db, written.flatMap((p) => p.payments.map((payment) => ({ ...payment, order_id: p.id }))))
      return prepared.map((p) => (inserted.has(p.id) ? p.id : undefined))
    },
  })
}
