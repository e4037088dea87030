import type { DbExecutor } from '../../db/database.js'
import type { OrderItemRow, OrderPaymentRow, OrderRow } from '../../db/rows.js'
import type { UpsertOptions } from '../../db/versioned.js'
import { assertSameCustomer, type UpsertResult } from '../../lib/external-ref.js'
import { minorUnits } from '../../lib/currency.js'
import {
  fitsMoneyColumn, formatMoney, maxMoney, minorUnitsError, moneyFromColumn, multiplyMoney, parseMoney, parseRate, percentOf, significantDecimals,
} from '../../lib/money.js'
import { problem, type FieldError, notFound, pointer } from '../../lib/problem.js'
import * as repo from './orders.repository.js'
import { activeCustomers, customerExists, type ActiveCustomer } from '../customers/index.js'
import type {
  CustomerReceivablesDto, OrderCreateBody, OrderDto, OrderItemDto, OrderItemInputBody, OrderPatchBody, OrderPaymentCreateBody,
  OrderPaymentDto, OrderStatus, PaymentMethod,
} from './orders.schemas.js'

// The status machine -------------------------------------------------------------------------------
//
//   pending ──> paid ──> fulfilled ──> refunded | partially_refunded
//      │          └────> refunded | partially_refunded
//      └──> cancelled           partially_refunded ──> partially_refunded | refunded
//
// cancelled and refunded are terminal. A paid order is refunded, not cancelled: money was taken,
// so the way out is giving it back, which the ledger records. Sending the current status again
// is not a transition and changes nothing (a re-synced order stays as it is).
//
// Money moves with the status, so amount_paid always equals Σ payments and amount_refunded Σ refunds:
// - to paid: the outstanding amount is recorded as a payment (method: the order's payment_method);
// - to refunded: everything received and not yet refunded is recorded as a refund;
// - to partially_refunded: only by recording a refund with its amount (POST /v1/orders/{id}/payments);
// - to cancelled: only when nothing is held (a pending order's partial payments are refunded first).
// A pending order whose payments cover its (non-zero) total becomes paid by itself.

export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  pending: ['paid', 'cancelled'],
  paid: ['fulfilled', 'refunded', 'partially_refunded'],
  fulfilled: ['refunded', 'partially_refunded'],
  partially_refunded: ['partially_refunded', 'refunded'],
  cancelled: [],
  refunded: [],
}

/** Statuses a new order may be created in, and the legal path from pending that reaches each. */
const CREATE_PATHS: Partial<Record<OrderStatus, OrderStatus[]>> = {
  pending: [],
  paid: ['paid'],
  fulfilled: ['paid', 'fulfilled'],
  cancelled: ['cancelled'],
}

const REFUNDABLE: readonly OrderStatus[] = ['pending', 'paid', 'fulfilled', 'partially_refunded']

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return TRANSITIONS[from].includes(to)
}

function assertTransition(from: OrderStatus, to: OrderStatus): void {
  if (canTransition(from, to)) return
  const allowed = TRANSITIONS[from]
  throw problem('invalid-transition', `An order cannot go from ${from} to ${to}.`, [
    { pointer: pointer('status'), message: allowed.length ? `from ${from} the status can become ${allowed.join(', ')}` : `${from} is final` },
  ])
}

/** The money state of one order, in its currency's minor units, while a request changes it. */
interface Ledger {
  status: OrderStatus
  /** Fraction digits of the order's currency. */
  units: number
  total: bigint
  paid: bigint
  refunded: bigint
}

function ledgerOf(row: OrderRow): Ledger {
  // An order written before amounts were checked against its currency may hold more decimals
  // than the currency has (JPY 12.50): its ledger keeps them, so nothing is rounded away.
  const units = Math.max(minorUnits(row.currency), ...[row.total, row.amount_paid, row.amount_refunded].map(significantDecimals))
  return {
    status: row.status as OrderStatus,
    units,
    total: moneyFromColumn(row.total, units),
    paid: moneyFromColumn(row.amount_paid, units),
    refunded: moneyFromColumn(row.amount_refunded, units),
  }
}
const received = (l: Ledger) => l.paid - l.refunded
/** What the customer owes: total - paid + refunded while pending (refunds of partial payments owe again); nothing after. */
const outstanding = (l: Ledger) => (l.status === 'pending' ? l.total - received(l) : 0n)

function settleIfCovered(l: Ledger): void {
  if (l.status === 'pending' && l.total > 0n && received(l) === l.total) l.status = 'paid'
}

const entry = (l: Ledger, kind: 'payment' | 'refund', amount: bigint, method: string, paidAt?: string): repo.NewOrderPayment => ({
  kind, amount: formatMoney(amount, l.units), method, reference: null, ...(paidAt ? { paid_at: paidAt } : {}),
})

/** Moves the ledger to `to` and returns the payments or refunds that the move implies. */
function moveTo(l: Ledger, to: OrderStatus, method: string, paidAt?: string): repo.NewOrderPayment[] {
  if (to === l.status) return []
  assertTransition(l.status, to)
  const entries: repo.NewOrderPayment[] = []
  if (to === 'paid') {
    const due = l.total - received(l)
    if (due > 0n) entries.push(entry(l, 'payment', due, method, paidAt))
    l.paid += due
  } else if (to === 'refunded') {
    const back = received(l)
    if (back > 0n) entries.push(entry(l, 'refund', back, method, paidAt))
    l.refunded += back
  } else if (to === 'cancelled' && received(l) > 0n) {
    throw problem('refund-required', `${formatMoney(received(l), l.units)} has been received for this order: refund it before cancelling.`, [
      { pointer: pointer('status'), message: 'an order holding payments cannot be cancelled' },
    ])
  } else if (to === 'partially_refunded') {
    throw problem('invalid-transition', 'An order becomes partially_refunded by recording a refund with its amount: POST /v1/orders/{id}/payments with kind refund.', [
      { pointer: pointer('status'), message: 'record a refund instead' },
    ])
  }
  l.status = to
  return entries
}

// Pricing ----------------------------------------------------------------------------------------------

interface Priced {
  lines: repo.NewOrderItem[]
  units: number
  tax_rate: string
  subtotal: bigint
  discount_total: bigint
  tax_total: bigint
  shipping_total: bigint
  total: bigint
}

/**
 * An order's amounts checked against its currency's minor units (JPY "12.5" is a 400 naming
 * the field). Amounts the client sent are pointed at one by one; stored amounts that the new
 * currency of a patch cannot hold are pointed at /currency.
 */
function checkAmounts(currency: string, items: { list: OrderItemInputBody[]; sent: boolean }, shipping: { value: string; sent: boolean }): void {
  const errors: FieldError[] = []
  const add = (value: string | null | undefined, at: string, sent: boolean) => {
    const error = value == null ? undefined : minorUnitsError(value, currency, at, sent ? 'as-sent' : 'stored')
    if (error && !errors.some((e) => e.pointer === error.pointer)) errors.push(error)
  }
  items.list.forEach((item, i) => {
    add(item.unit_price, items.sent ? pointer('items', i, 'unit_price') : pointer('currency'), items.sent)
    add(item.discount, items.sent ? pointer('items', i, 'discount') : pointer('currency'), items.sent)
  })
  add(shipping.value, shipping.sent ? pointer('shipping') : pointer('currency'), shipping.sent)
  if (errors.length) throw problem('too-many-decimals', `An amount has more decimals than ${currency} has.`, errors)
}

/**
 * Totals from the line items, exact in the currency's minor units: subtotal = Σ quantity ×
 * unit_price, discount_total = Σ line discounts, tax_total = tax_rate % of (subtotal -
 * discount_total) rounded half up to the minor unit, total = subtotal - discount_total +
 * tax_total + shipping. The amounts have been checked against the currency (checkAmounts).
 */
export function priceOrder(items: OrderItemInputBody[], taxRate: string, shipping: string, currency: string): Priced {
  const units = minorUnits(currency)
  const money = (minor: bigint) => formatMoney(minor, units)
  const errors: FieldError[] = []
  const lines: repo.NewOrderItem[] = []
  let subtotal = 0n
  let discountTotal = 0n
  items.forEach((item, i) => {
    const unit = parseMoney(item.unit_price, units)
    const gross = multiplyMoney(unit, item.quantity)
    const discount = parseMoney(item.discount ?? '0', units)
    if (!fitsMoneyColumn(gross, units)) errors.push({ pointer: pointer('items', i, 'quantity'), message: `quantity × unit_price exceeds ${maxMoney(units)}` })
    else if (discount > gross) errors.push({ pointer: pointer('items', i, 'discount'), message: `must not exceed quantity × unit_price (${money(gross)})` })
    lines.push({
      position: i, sku: item.sku ?? null, product_name: item.product_name, category: item.category ?? null, quantity: item.quantity,
      unit_price: money(unit), discount: money(discount), line_total: money(gross - discount),
    })
    subtotal += gross
    discountTotal += discount
  })
  if (errors.length) throw problem('invalid-line-items', 'Some line items do not add up.', errors)
  let rate: bigint
  try {
    rate = parseRate(taxRate)
  } catch {
    throw problem('validation-failed', 'The tax rate is a percentage from 0 to 100.', [{ pointer: pointer('tax_rate'), message: 'must be at most 100' }])
  }
  const shippingTotal = parseMoney(shipping, units)
  const taxTotal = percentOf(subtotal - discountTotal, taxRate)
  const total = subtotal - discountTotal + taxTotal + shippingTotal
  if (!fitsMoneyColumn(subtotal, units) || !fitsMoneyColumn(total, units)) {
    throw problem('order-total-too-large', `The order total exceeds ${maxMoney(units)}.`, [{ pointer: pointer('items'), message: 'add up to more than an order can hold' }])
  }
  const formattedRate = `${rate / 10_000n}.${(rate % 10_000n).toString().padStart(4, '0')}`
  return { lines, units, tax_rate: formattedRate, subtotal, discount_total: discountTotal, tax_total: taxTotal, shipping_total: shippingTotal, total }
}

const pricedColumns = (p: Priced): repo.OrderChanges => ({
  tax_rate: p.tax_rate,
  subtotal: formatMoney(p.subtotal, p.units),
  discount_total: formatMoney(p.discount_total, p.units),
  tax_total: formatMoney(p.tax_total, p.units),
  shipping_total: formatMoney(p.shipping_total, p.units),
  total: formatMoney(p.total, p.units),
})

const toItemInput = (r: OrderItemRow): OrderItemInputBody => ({
  sku: r.sku, product_name: r.product_name, category: r.category, quantity: r.quantity, unit_price: r.unit_price, discount: r.discount,
})

function sameItems(lines: repo.NewOrderItem[], rows: OrderItemRow[]): boolean {
  return lines.length === rows.length && lines.every((l, i) => {
    const r = rows[i]!
    return l.sku === r.sku && l.product_name === r.product_name && l.category === r.category && l.quantity === r.quantity
      && l.unit_price === r.unit_price && l.discount === r.discount
  })
}

// Writes -------------------------------------------------------------------------------------------------

type OrderingCustomer = ActiveCustomer
/** Customers already looked up in this request (a batch names the same ones again and again). */
export type CustomerCache = Map<string, OrderingCustomer | undefined>

async function orderingCustomer(db: DbExecutor, id: string, cache?: CustomerCache): Promise<OrderingCustomer> {
  const customer = cache?.has(id) ? cache.get(id) : (await activeCustomers(db, [id], { lock: true })).get(id)
  cache?.set(id, customer)
  return assertOrderingCustomer(customer)
}

/** The customer found for an order's customer_id, or the 422 that says there is none. */
export function assertOrderingCustomer(customer: OrderingCustomer | undefined): OrderingCustomer {
  if (!customer) throw problem('unknown-customer', 'No customer with that id can place orders.', [{ pointer: pointer('customer_id'), message: 'is not an existing, unarchived customer' }])
  return customer
}

/** Fills the cache with the customers of these ids that it lacks: one query. */
export async function cacheOrderingCustomers(db: DbExecutor, ids: Iterable<string>, cache: CustomerCache): Promise<void> {
  const missing = [...new Set(ids)].filter((id) => !cache.has(id))
  const found = await activeCustomers(db, missing, { lock: true })
  for (const id of missing) cache.set(id, found.get(id))
}

/** A credit sale without a due date falls due after the customer's payment terms. */
function creditDueDate(body: OrderCreateBody, customer: OrderingCustomer): string | null {
  if (body.due_date != null) return body.due_date
  if (body.payment_method !== 'credit') return null
  if (customer.payment_terms_days == null) {
    throw problem('due-date-required', 'A credit sale needs a due date, and the customer has no payment_terms_days to derive it from.', [
      { pointer: pointer('due_date'), message: 'is required for a credit sale' },
    ])
  }
  const start = body.ordered_at ? new Date(body.ordered_at) : new Date()
  const due = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate() + customer.payment_terms_days))
  return due.toISOString().slice(0, 10)
}

export type CreateResult = UpsertResult

export interface CreateOptions extends UpsertOptions {
  /** Customers already looked up in this request. */
  customers?: CustomerCache | undefined
}

export async function createOrder(db: DbExecutor, body: OrderCreateBody, opts: CreateOptions = {}): Promise<CreateResult> {
  const customer = await orderingCustomer(db, body.customer_id, opts.customers)
  return repo.orders.upsert(db, body.external_ref, {
    update: (existing) => updateByExternalRef(db, existing, body),
    insert: () => insertNewOrder(db, body, customer),
  }, opts)
}

/** A new order checked and priced, with the lines and payments it is created with. */
export interface NewOrderRows {
  order: repo.NewOrder
  lines: repo.NewOrderItem[]
  payments: repo.NewOrderPayment[]
}

/**
 * Checks a new order (initial status, pricing, credit due date) and computes its rows, without
 * touching the database: the single create and the set-wise batch both start here.
 */
export function prepareNewOrder(body: OrderCreateBody, customer: OrderingCustomer): NewOrderRows {
  const initial = body.status ?? 'pending'
  const path = CREATE_PATHS[initial]
  if (!path) {
    throw problem('invalid-transition', `A new order cannot start as ${initial}.`, [
      { pointer: pointer('status'), message: `a new order is ${Object.keys(CREATE_PATHS).join(', ')}` },
    ])
  }
  const shipping = body.shipping ?? '0'
  checkAmounts(body.currency, { list: body.items, sent: true }, { value: shipping, sent: true })
  const priced = priceOrder(body.items, body.tax_rate ?? '0', shipping, body.currency)
  const ledger: Ledger = { status: 'pending', units: priced.units, total: priced.total, paid: 0n, refunded: 0n }
  const method = body.payment_method ?? 'other'
  const payments = path.flatMap((step) => moveTo(ledger, step, method, body.ordered_at))
  const order: repo.NewOrder = {
    external_ref: body.external_ref ?? null,
    ...(body.order_number ? { order_number: body.order_number } : {}),
    customer_id: customer.id,
    status: ledger.status,
    channel: body.channel ?? 'other',
    payment_method: body.payment_method ?? null,
    currency: body.currency,
    ...pricedColumns(priced),
    amount_paid: formatMoney(ledger.paid, ledger.units),
    amount_refunded: formatMoney(ledger.refunded, ledger.units),
    due_date: creditDueDate(body, customer),
    ...(body.ordered_at ? { ordered_at: body.ordered_at } : {}),
    notes: body.notes ?? null,
  }
  return { order, lines: priced.lines, payments }
}

/** Inserts the order with its items and payments; undefined when its external_ref exists already. */
async function insertNewOrder(db: DbExecutor, body: OrderCreateBody, customer: OrderingCustomer): Promise<string | undefined> {
  const { order, lines, payments } = prepareNewOrder(body, customer)
  const id = await repo.orders.insert(db, order)
  if (!id) return undefined
  await repo.insertItems(db, id, lines)
  await repo.insertPayments(db, id, payments)
  return id
}

async function updateByExternalRef(db: DbExecutor, existing: OrderRow, body: OrderCreateBody): Promise<void> {
  assertSameCustomer('order', existing, body)
  const { customer_id: _customer, ...patch } = body
  await applyChanges(db, existing, patch)
}

export async function patchOrder(db: DbExecutor, id: string, patch: OrderPatchBody, expectedVersion?: number): Promise<void> {
  await applyChanges(db, await repo.orders.lockForWrite(db, id, expectedVersion), patch)
}

const PLAIN_FIELDS = ['external_ref', 'order_number', 'channel', 'payment_method', 'due_date', 'ordered_at', 'notes'] as const

/** Applies a merge patch to a locked order: plain fields, then pricing (pending only), then the status. */
async function applyChanges(db: DbExecutor, current: OrderRow, patch: OrderPatchBody): Promise<void> {
  const changes: repo.OrderChanges = {}
  for (const field of PLAIN_FIELDS) {
    if (patch[field] !== undefined) (changes as Record<string, unknown>)[field] = patch[field]
  }
  const ledger = ledgerOf(current)
  const lines = await reprice(db, current, patch, ledger, changes)
  settleIfCovered(ledger)
  const method = patch.payment_method ?? current.payment_method ?? 'other'
  const payments = patch.status !== undefined ? moveTo(ledger, patch.status, method) : []

  if (ledger.status !== current.status) changes.status = ledger.status
  const before = ledgerOf(current)
  // A currency change (pending, nothing received) rewrites the zeros at the new scale.
  if (ledger.paid !== before.paid || ledger.units !== before.units) changes.amount_paid = formatMoney(ledger.paid, ledger.units)
  if (ledger.refunded !== before.refunded || ledger.units !== before.units) changes.amount_refunded = formatMoney(ledger.refunded, ledger.units)
  await repo.updateOrder(db, current.id, changes, lines !== undefined)
  if (lines) await repo.replaceItems(db, current.id, lines)
  await repo.insertPayments(db, current.id, payments)
}

/**
 * Re-prices the order when items, tax_rate, shipping or currency actually change (only while
 * pending); returns the new lines when the items changed. Sending the current values is no change.
 */
async function reprice(db: DbExecutor, current: OrderRow, patch: OrderPatchBody, ledger: Ledger, changes: repo.OrderChanges) {
  if (patch.items === undefined && patch.tax_rate === undefined && patch.shipping === undefined && patch.currency === undefined) return undefined
  const currentItems = await repo.listItems(db, [current.id])
  const currency = patch.currency ?? current.currency
  const items = { list: patch.items ?? currentItems.map(toItemInput), sent: patch.items !== undefined }
  const shipping = { value: patch.shipping ?? current.shipping_total, sent: patch.shipping !== undefined }
  checkAmounts(currency, items, shipping)
  const priced = priceOrder(items.list, patch.tax_rate ?? current.tax_rate, shipping.value, currency)
  const changed: string[] = []
  if (patch.items !== undefined && !sameItems(priced.lines, currentItems)) changed.push('items')
  if (patch.tax_rate !== undefined && parseRate(patch.tax_rate) !== parseRate(current.tax_rate)) changed.push('tax_rate')
  if (patch.shipping !== undefined && formatMoney(priced.shipping_total, priced.units) !== current.shipping_total) changed.push('shipping')
  if (patch.currency !== undefined && patch.currency !== current.currency) changed.push('currency')
  if (changed.length === 0) return undefined
  if (current.status !== 'pending') {
    throw problem('order-not-editable', `Items, tax_rate, shipping and currency change only while the order is pending; it is ${current.status}.`,
      changed.map((f) => ({ pointer: pointer(f), message: 'cannot change once the order has left pending' })))
  }
  if (changed.includes('currency') && received(ledger) > 0n) {
    throw problem('order-not-editable', 'The currency of an order with payments cannot change.', [{ pointer: pointer('currency'), message: 'payments were received in the current currency' }])
  }
  if (priced.total < received(ledger)) {
    throw problem('total-below-received', `The new total ${formatMoney(priced.total, priced.units)} is less than the ${formatMoney(received(ledger), ledger.units)} received; refund the difference first.`, [
      { pointer: pointer(changed[0]!), message: 'would bring the total below the amount received' },
    ])
  }
  ledger.total = priced.total
  ledger.units = priced.units
  Object.assign(changes, pricedColumns(priced))
  if (patch.currency !== undefined) changes.currency = patch.currency
  // A new currency rewrites the lines too: their amounts are written with its minor units.
  return changed.includes('items') || changed.includes('currency') ? priced.lines : undefined
}

/**
 * Records a payment (pending orders, at most the outstanding amount; covering it makes the order
 * paid) or a refund (at most what was received and not refunded; on a settled order the status
 * becomes partially_refunded, or refunded once everything received went back; on a pending order
 * it reverses a partial payment and the order owes that amount again).
 */
export async function recordPayment(db: DbExecutor, id: string, body: OrderPaymentCreateBody, expectedVersion?: number): Promise<OrderPaymentRow> {
  const current = await repo.orders.lockForWrite(db, id, expectedVersion)
  const ledger = ledgerOf(current)
  const tooPrecise = minorUnitsError(body.amount, current.currency, pointer('amount'))
  if (tooPrecise) throw problem('too-many-decimals', `The amount has more decimals than the order's currency ${current.currency} has.`, [tooPrecise])
  const amount = parseMoney(body.amount, ledger.units)
  const money = (minor: bigint) => formatMoney(minor, ledger.units)
  if (amount <= 0n) throw problem('validation-failed', 'The amount must be more than zero.', [{ pointer: pointer('amount'), message: 'must be more than zero' }])
  const kind = body.kind ?? 'payment'
  if (kind === 'payment') {
    if (ledger.status !== 'pending') {
      throw problem('payment-not-accepted', `A ${ledger.status} order takes no more payments.`, [{ pointer: pointer('kind'), message: 'payments are recorded against pending orders' }])
    }
    const due = outstanding(ledger)
    if (amount > due) throw problem('payment-exceeds-due', `The payment exceeds the outstanding ${money(due)}.`, [{ pointer: pointer('amount'), message: `must be at most ${money(due)}` }])
    ledger.paid += amount
    settleIfCovered(ledger)
  } else {
    if (!REFUNDABLE.includes(ledger.status)) {
      throw problem('payment-not-accepted', `A ${ledger.status} order takes no refunds.`, [{ pointer: pointer('kind'), message: `refunds are recorded against ${REFUNDABLE.join(', ')} orders` }])
    }
    const refundable = received(ledger)
    if (amount > refundable) throw problem('refund-exceeds-received', `The refund exceeds the ${money(refundable)} received.`, [{ pointer: pointer('amount'), message: `must be at most ${money(refundable)}` }])
    ledger.refunded += amount
    if (ledger.status !== 'pending') {
      const to: OrderStatus = received(ledger) === 0n ? 'refunded' : 'partially_refunded'
      assertTransition(ledger.status, to)
      ledger.status = to
    }
  }
  await repo.updateOrder(db, id, {
    status: ledger.status,
    amount_paid: money(ledger.paid),
    amount_refunded: money(ledger.refunded),
  }, false)
  const [payment] = await repo.insertPayments(db, id, [{
    kind, amount: money(amount), method: body.method ?? current.payment_method ?? 'other', reference: body.reference ?? null,
    ...(body.paid_at ? { paid_at: body.paid_at } : {}),
  }])
  return payment!
}

export async function customerReceivables(db: DbExecutor, customerId: string): Promise<CustomerReceivablesDto> {
  if (!(await customerExists(db, customerId))) throw notFound('customer')
  const { as_of, rows } = await repo.receivables(db, customerId)
  return { customer_id: customerId, as_of, overdue: rows.some((r) => r.overdue_orders > 0), currencies: rows }
}

// Output -------------------------------------------------------------------------------------------------

export function toPaymentDto(p: OrderPaymentRow): OrderPaymentDto {
  return {
    id: p.id, order_id: p.order_id, kind: p.kind as OrderPaymentDto['kind'], amount: p.amount, method: p.method as PaymentMethod,
    paid_at: p.paid_at, reference: p.reference, created_at: p.created_at,
  }
}

const toItemDto = (i: OrderItemRow): OrderItemDto => ({
  id: i.id, sku: i.sku, product_name: i.product_name, category: i.category, quantity: i.quantity,
  unit_price: i.unit_price, discount: i.discount, line_total: i.line_total,
})

export function toOrderDto(row: repo.OrderRecord, items: OrderItemRow[], payments: OrderPaymentRow[]): OrderDto {
  return {
    id: row.id, external_ref: row.external_ref, order_number: row.order_number, customer_id: row.customer_id,
    status: row.status as OrderStatus, channel: row.channel as OrderDto['channel'], payment_method: row.payment_method as PaymentMethod | null,
    currency: row.currency, tax_rate: row.tax_rate, subtotal: row.subtotal, discount_total: row.discount_total, tax_total: row.tax_total,
    shipping_total: row.shipping_total, total: row.total, amount_paid: row.amount_paid, amount_refunded: row.amount_refunded,
    amount_outstanding: row.amount_outstanding, overdue: row.overdue, due_date: row.due_date, ordered_at: row.ordered_at, notes: row.notes,
    items: items.map(toItemDto), payments: payments.map(toPaymentDto),
    version: row.version, created_at: row.created_at, updated_at: row.updated_at, archived_at: row.archived_at,
  }
}

/** Orders with their items and payments: three queries for any number of orders, none per order. */
export async function loadOrders(db: DbExecutor, rows: repo.OrderRecord[]): Promise<OrderDto[]> {
  const ids = rows.map((r) => r.id)
  const items = await repo.listItems(db, ids)
  const payments = await repo.listPayments(db, ids)
  const group = <T extends { order_id: string }>(list: T[]) => {
    const by = new Map<string, T[]>()
    for (const x of list) by.set(x.order_id, [...(by.get(x.order_id) ?? []), x])
    return by
  }
  const itemsBy = group(items)
  const paymentsBy = group(payments)
  return rows.map((r) => toOrderDto(r, itemsBy.get(r.id) ?? [], paymentsBy.get(r.id) ?? []))
}
