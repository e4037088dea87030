import { Type, type Static } from 'typebox'
import { batchBody, batchResult } from '../../lib/batch.js'
import { PageQuery, pageEnvelope, type SortFields } from '../../lib/pagination.js'
import { Currency, DateOnly, Money, MoneySum, Nullable, StringEnum, Timestamp, Uuid, ref, ArchivedQuery } from '../../lib/schema.js'

export const ORDER_STATUSES = ['pending', 'paid', 'fulfilled', 'cancelled', 'refunded', 'partially_refunded'] as const
export const ORDER_CHANNELS = ['online', 'store', 'phone', 'partner', 'marketplace', 'social', 'other'] as const
export const PAYMENT_METHODS = ['card', 'cash', 'bank_transfer', 'wallet', 'credit', 'cod', 'other'] as const
export const PAYMENT_KINDS = ['payment', 'refund'] as const
export const ORDER_SORTS = { ordered_at: 'timestamp', total: 'decimal', created_at: 'timestamp' } as const satisfies SortFields

export type OrderStatus = (typeof ORDER_STATUSES)[number]
export type PaymentMethod = (typeof PAYMENT_METHODS)[number]

const text = (maxLength: number, example: string, description?: string) =>
  Type.String({ minLength: 1, maxLength, example, ...(description ? { description } : {}) })

/** Amounts a client sends are never negative, and have at most the order currency's decimals (JPY 0, CNY 2, KWD 3). */
const Amount = (description: string, example = '129.90') =>
  Money({ pattern: '^[0-9]{1,12}$|^[0-9]{1,12}\\.[0-9]{1,3}$', maxLength: 16, description: `${description}; at most the currency's decimals (JPY 0, CNY 2, KWD 3)`, example })

const Rate = Type.String({
  pattern: '^[0-9]{1,3}$|^[0-9]{1,3}\\.[0-9]{1,4}$',
  maxLength: 8,
  description: 'Tax rate in percent (0 to 100, up to four decimals), applied to subtotal - discount_total and rounded half up to the currency minor unit',
  example: '13',
})

export const OrderItemInput = Type.Object(
  {
    sku: Type.Optional(Nullable(text(100, 'TEA-OOLONG-250'))),
    product_name: text(300, 'Tieguanyin oolong 250 g'),
    category: Type.Optional(Nullable(text(100, 'tea'))),
    quantity: Type.Integer({ minimum: 1, maximum: 1_000_000, example: 3 }),
    unit_price: Amount('Price of one unit', '33.33'),
    discount: Type.Optional(Amount('Amount off this line (not per unit); at most quantity × unit_price', '0.00')),
  },
  {
    $id: 'OrderItemInput',
    additionalProperties: false,
    description: 'A line item as a client sends it; the server computes its line_total',
    example: { sku: 'TEA-OOLONG-250', product_name: 'Tieguanyin oolong 250 g', category: 'tea', quantity: 3, unit_price: '33.33', discount: '0.99' },
  },
)

const orderFields = {
  external_ref: Type.Optional(Nullable(text(200, 'shop-order-100045', 'Id in the source system; POST with a known external_ref updates that order'))),
  order_number: Type.Optional(text(64, 'ORD-00000042', 'Unique; assigned by the server (ORD-nnnnnnnn) when absent')),
  status: Type.Optional(StringEnum(ORDER_STATUSES, {
    description: 'On create: pending (default), paid, fulfilled or cancelled. On update: a legal transition (see updateOrder)',
  })),
  channel: Type.Optional(StringEnum(ORDER_CHANNELS, { description: 'Where the order was placed; default other' })),
  payment_method: Type.Optional(Nullable(StringEnum(PAYMENT_METHODS, { description: 'credit marks a credit sale (see due_date)' }))),
  currency: Currency(),
  items: Type.Array(ref(OrderItemInput), { minItems: 1, maxItems: 500, description: 'The line items; totals are computed from them' }),
  tax_rate: Type.Optional(Rate),
  shipping: Type.Optional(Amount('Shipping charge, added to the total as shipping_total', '10.00')),
  due_date: Type.Optional(Nullable(DateOnly({
    description: 'When a credit sale must be paid. A credit order without one gets ordered_at + the customer\'s payment_terms_days',
    example: '2026-12-22',
  }))),
  ordered_at: Type.Optional(Timestamp({ description: 'When the order was placed; default now' })),
  notes: Type.Optional(Nullable(Type.String({ maxLength: 4000, example: 'Gift wrap, please' }))),
}

const CREATE_EXAMPLE = {
  external_ref: 'shop-order-100045', customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', channel: 'online', payment_method: 'card', currency: 'CNY',
  items: [{ sku: 'TEA-OOLONG-250', product_name: 'Tieguanyin oolong 250 g', category: 'tea', quantity: 3, unit_price: '33.33' }],
  tax_rate: '13', shipping: '10.00', status: 'paid', ordered_at: '2026-11-22T08:30:00.000Z',
}

export const OrderCreate = Type.Object(
  { ...orderFields, customer_id: Uuid({ description: 'The customer who placed the order' }) },
  {
    $id: 'OrderCreate',
    additionalProperties: false,
    description: 'A new order. Totals are computed by the server and cannot be sent. With a known external_ref it updates that order instead (same rules as updateOrder).',
    example: CREATE_EXAMPLE,
  },
)

export const OrderPatch = Type.Object(
  {
    ...orderFields,
    currency: Type.Optional(orderFields.currency),
    items: Type.Optional(orderFields.items),
  },
  {
    $id: 'OrderPatch',
    additionalProperties: false,
    minProperties: 1,
    description: 'JSON Merge Patch of an order. items (replaced as a whole), tax_rate, shipping and currency change only while pending.',
    example: { status: 'fulfilled', notes: null },
  },
)

const ITEM_EXAMPLE = {
  id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a31', sku: 'TEA-OOLONG-250', product_name: 'Tieguanyin oolong 250 g', category: 'tea',
  quantity: 3, unit_price: '33.33', discount: '0.00', line_total: '99.99',
}

export const OrderItem = Type.Object(
  {
    id: Uuid(),
    sku: Nullable(Type.String()),
    product_name: Type.String(),
    category: Nullable(Type.String()),
    quantity: Type.Integer(),
    unit_price: Money(),
    discount: Money({ example: '0.00' }),
    line_total: Money({ description: 'quantity × unit_price - discount', example: '99.99' }),
  },
  {
    $id: 'OrderItem',
    description: 'A line item of an order',
    example: ITEM_EXAMPLE,
  },
)

const PAYMENT_EXAMPLE = {
  id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a41', order_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a21', kind: 'payment', amount: '50.00',
  method: 'bank_transfer', paid_at: '2026-11-30T10:00:00.000Z', reference: 'TXN-88231', created_at: '2026-11-30T10:00:01.000Z',
}

export const OrderPayment = Type.Object(
  {
    id: Uuid(),
    order_id: Uuid(),
    kind: StringEnum(PAYMENT_KINDS),
    amount: Money(),
    method: StringEnum(PAYMENT_METHODS),
    paid_at: Timestamp(),
    reference: Nullable(Type.String()),
    created_at: Timestamp(),
  },
  {
    $id: 'OrderPayment',
    description: 'Money received for an order (payment) or given back (refund)',
    example: PAYMENT_EXAMPLE,
  },
)

const ORDER_EXAMPLE = {
  id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a21', external_ref: 'shop-order-100045', order_number: 'ORD-00000042',
  customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', status: 'paid', channel: 'online', payment_method: 'card', currency: 'CNY',
  tax_rate: '13.0000', subtotal: '99.99', discount_total: '0.00', tax_total: '13.00', shipping_total: '10.00', total: '122.99',
  amount_paid: '122.99', amount_refunded: '0.00', amount_outstanding: '0.00', overdue: false, due_date: null,
  ordered_at: '2026-11-22T08:30:00.000Z', notes: null, items: [ITEM_EXAMPLE], payments: [], version: 2,
  created_at: '2026-11-22T08:30:01.000Z', updated_at: '2026-11-22T08:30:01.000Z', archived_at: null,
}

export const Order = Type.Object(
  {
    id: Uuid(),
    external_ref: Nullable(Type.String()),
    order_number: Type.String(),
    customer_id: Uuid(),
    status: StringEnum(ORDER_STATUSES),
    channel: StringEnum(ORDER_CHANNELS),
    payment_method: Nullable(StringEnum(PAYMENT_METHODS)),
    currency: Type.String({ example: 'CNY' }),
    tax_rate: Type.String({ description: 'Percent', example: '13.0000' }),
    subtotal: Money({ description: 'Σ quantity × unit_price' }),
    discount_total: Money({ description: 'Σ line discounts' }),
    tax_total: Money({ description: 'tax_rate % of subtotal - discount_total, rounded half up' }),
    shipping_total: Money(),
    total: Money({ description: 'subtotal - discount_total + tax_total + shipping_total' }),
    amount_paid: Money({ description: 'Σ payments' }),
    amount_refunded: Money({ description: 'Σ refunds' }),
    amount_outstanding: Money({ description: 'While pending: total - amount_paid + amount_refunded; otherwise 0' }),
    overdue: Type.Boolean({ description: 'due_date is before today (UTC) and something is outstanding' }),
    due_date: Nullable(Type.String({ format: 'date' })),
    ordered_at: Timestamp(),
    notes: Nullable(Type.String()),
    items: Type.Array(ref(OrderItem)),
    payments: Type.Array(ref(OrderPayment), { description: 'Payments and refunds, oldest first' }),
    version: Type.Integer({ description: 'Optimistic concurrency version; also the ETag' }),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    archived_at: Nullable(Timestamp()),
  },
  { $id: 'Order', description: 'An order with its line items and payments; money is exact decimal strings', example: ORDER_EXAMPLE },
)

export const OrderList = Type.Object(pageEnvelope(ref(Order), 'A page of orders').properties, {
  $id: 'OrderList',
  description: 'A page of orders',
  example: { data: [ORDER_EXAMPLE], next_cursor: null },
})

export const OrderPaymentCreate = Type.Object(
  {
    kind: Type.Optional(StringEnum(PAYMENT_KINDS, { description: 'payment (default) or refund' })),
    amount: Amount('More than zero; a payment at most the outstanding amount, a refund at most amount_paid - amount_refunded', '50.00'),
    method: Type.Optional(StringEnum(PAYMENT_METHODS, { description: 'Default: the order\'s payment_method, else other' })),
    paid_at: Type.Optional(Timestamp({ description: 'Default now' })),
    reference: Type.Optional(Nullable(text(200, 'TXN-88231', 'Bank or processor reference'))),
  },
  {
    $id: 'OrderPaymentCreate',
    additionalProperties: false,
    description: 'A payment received for, or a refund given on, an order',
    example: { kind: 'payment', amount: '50.00', method: 'bank_transfer', reference: 'TXN-88231' },
  },
)

export const OrderPaymentResult = Type.Object(
  { payment: ref(OrderPayment), order: ref(Order) },
  {
    $id: 'OrderPaymentResult',
    description: 'The recorded payment or refund and the order after it',
    example: { payment: PAYMENT_EXAMPLE, order: ORDER_EXAMPLE },
  },
)

export const CustomerReceivables = Type.Object(
  {
    customer_id: Uuid(),
    as_of: Type.String({ format: 'date', description: 'Today (UTC): overdue means due before this date', example: '2026-12-23' }),
    overdue: Type.Boolean({ description: 'Whether any open credit order is overdue' }),
    currencies: Type.Array(
      Type.Object({
        currency: Type.String({ example: 'CNY' }),
        outstanding: MoneySum({ description: 'Σ amount_outstanding of open credit orders', example: '1250.00' }),
        overdue_outstanding: MoneySum({ description: 'The part of it that is overdue', example: '250.00' }),
        open_orders: Type.Integer({ example: 3 }),
        overdue_orders: Type.Integer({ example: 1 }),
        oldest_due_date: Type.String({ format: 'date', example: '2026-12-01' }),
      }),
      { description: 'One entry per currency; amounts in different currencies are never added up' },
    ),
  },
  {
    $id: 'CustomerReceivables',
    description: 'A customer\'s open receivables: credit orders (with a due date) that still owe something, not archived',
    example: {
      customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', as_of: '2026-12-23', overdue: true,
      currencies: [{ currency: 'CNY', outstanding: '1250.00', overdue_outstanding: '250.00', open_orders: 3, overdue_orders: 1, oldest_due_date: '2026-12-01' }],
    },
  },
)

export const OrderBatch = batchBody(ref(OrderCreate), {
  $id: 'OrderBatch',
  description: 'Up to 1,000 orders to create or update (by external_ref), all or nothing',
  example: { items: [CREATE_EXAMPLE] },
})

export const OrderBatchResult = batchResult({
  $id: 'OrderBatchResult',
  description: 'One result per order, in request order: 201 created, 200 updated by external_ref',
  example: { items: [{ index: 0, status: 201, id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a21' }] },
})

const listFilters = {
  ...PageQuery,
  sort: Type.Optional(Type.String({ maxLength: 100, description: `Comma-separated of ${Object.keys(ORDER_SORTS).join(', ')}; prefix - for descending. Default -ordered_at`, example: '-ordered_at' })),
  status: Type.Optional(StringEnum(ORDER_STATUSES)),
  channel: Type.Optional(StringEnum(ORDER_CHANNELS)),
  ordered_after: Type.Optional(Timestamp({ description: 'ordered_at >= this' })),
  ordered_before: Type.Optional(Timestamp({ description: 'ordered_at < this' })),
  overdue: Type.Optional(Type.Boolean({ description: 'true: only overdue orders (due_date before today and outstanding); false: only the others' })),
  archived: ArchivedQuery('orders'),
}

export const OrderListQuery = Type.Object({ ...listFilters, customer_id: Type.Optional(Uuid()) }, { additionalProperties: false })
export const CustomerOrderListQuery = Type.Object(listFilters, { additionalProperties: false })

export type OrderCreateBody = Static<typeof OrderCreate>
export type OrderPatchBody = Static<typeof OrderPatch>
export type OrderItemInputBody = Static<typeof OrderItemInput>
export type OrderPaymentCreateBody = Static<typeof OrderPaymentCreate>
export type OrderDto = Static<typeof Order>
export type OrderItemDto = Static<typeof OrderItem>
export type OrderPaymentDto = Static<typeof OrderPayment>
export type CustomerReceivablesDto = Static<typeof CustomerReceivables>
export type OrderListQueryT = Static<typeof OrderListQuery>

/** Named schemas of this domain, registered once by the routes plugin. */
export const orderSchemas = [
  OrderItemInput, OrderCreate, OrderPatch, OrderItem, OrderPayment, Order, OrderList,
  OrderPaymentCreate, OrderPaymentResult, CustomerReceivables, OrderBatch, OrderBatchResult,
]
