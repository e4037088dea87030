import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely'

/** Columns the database fills in (defaults, triggers) and the API never writes. */
type ServerOwned<T> = ColumnType<T, never, never>
/** timestamptz arrives as an RFC 3339 string with the database's full (microsecond) precision. */
type Timestamp = ColumnType<string, string | undefined, string>
type Json<T = unknown> = ColumnType<T, string | T | undefined, string | T>

export interface CustomersTable {
  id: Generated<string>
  external_ref: string | null
  name: string
  given_name: string | null
  family_name: string | null
  gender: string | null
  birthday: string | null
  occupation: string | null
  marital_status: string | null
  company: string | null
  job_title: string | null
  preferred_channel: string | null
  acquisition_source: string | null
  tags: ColumnType<string[], string[] | undefined, string[]>
  interests: ColumnType<string[], string[] | undefined, string[]>
  preferences: Json<Record<string, unknown>>
  attributes: Json<Record<string, unknown>>
  lifecycle_stage: Generated<string>
  /** True when a client set the stage by hand; false lets the metrics derive it. */
  lifecycle_stage_manual: Generated<boolean>
  consent: Json<Record<string, unknown>>
  credit_limit: string | null
  credit_currency: string | null
  payment_terms_days: number | null
  loyalty_points: Generated<number>
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
  archived_at: Timestamp | null
  /** Set when this customer was merged into another as a duplicate (it is then archived too). */
  merged_into_id: Generated<string | null>
}

export interface ContactPointsTable {
  id: Generated<string>
  customer_id: string
  kind: string
  label: string | null
  value: string
  value_normalized: string
  network: string | null
  address: Json<Record<string, unknown>> | null
  is_primary: Generated<boolean>
  verified: Generated<boolean>
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
}

export interface AuditEventsTable {
  id: Generated<string>
  occurred_at: Generated<string>
  actor: string
  request_id: string | null
  /** Filled from the transaction context by the column's default; never written by the API. */
  correlation_id: ColumnType<string | null, never, never>
  route: string | null
  action: string
  entity: string
  entity_id: string
  before: Json<Record<string, unknown>> | null
  after: Json<Record<string, unknown>> | null
  txid: ColumnType<string, never, never>
}

/** One position of the audit hash chain, written only by crm_audit_seal(). */
export interface AuditChainTable {
  seq: ColumnType<number, never, never>
  audit_event_id: ColumnType<string, never, never>
  hash: ColumnType<Buffer, never, never>
  seal_id: ColumnType<number, never, never>
}

/** One sealing batch: the chain positions it appended and the horizon it reached. */
export interface AuditSealsTable {
  id: ColumnType<number, never, never>
  sealed_at: ColumnType<string, never, never>
  first_seq: ColumnType<number, never, never>
  last_seq: ColumnType<number, never, never>
  horizon_txid: ColumnType<number, never, never>
}

export interface OrdersTable {
  id: Generated<string>
  external_ref: string | null
  order_number: Generated<string>
  customer_id: string
  status: Generated<string>
  channel: Generated<string>
  payment_method: string | null
  currency: string
  /** Percent, numeric(7,4) as a string. */
  tax_rate: Generated<string>
  subtotal: Generated<string>
  discount_total: Generated<string>
  tax_total: Generated<string>
  shipping_total: Generated<string>
  total: Generated<string>
  amount_paid: Generated<string>
  amount_refunded: Generated<string>
  due_date: string | null
  ordered_at: Generated<string>
  notes: string | null
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
  archived_at: Timestamp | null
}

export interface OrderItemsTable {
  id: Generated<string>
  order_id: string
  position: number
  sku: string | null
  product_name: string
  category: string | null
  quantity: number
  unit_price: string
  discount: Generated<string>
  line_total: string
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
}

export interface OrderPaymentsTable {
  id: Generated<string>
  order_id: string
  kind: Generated<string>
  amount: string
  method: Generated<string>
  paid_at: Generated<string>
  reference: string | null
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
}

export interface CustomerMetricsTable {
  customer_id: string
  order_count: number
  first_order_at: string | null
  last_order_at: string | null
  interaction_count: number
  last_interaction_at: string | null
  open_complaints: number
  latest_csat: number | null
  latest_nps: number | null
  refreshed_at: string
}

export interface CustomerSpendTable {
  customer_id: string
  currency: string
  order_count: number
  total_spent: string
}

/** The stored response of a POST sent with an Idempotency-Key (see plugins/idempotency.ts). */
export interface IdempotencyKeysTable {
  actor: string
  route: string
  key: string
  /** sha256 (hex) of the canonical JSON of the request: body, path params and query. */
  fingerprint: string
  status: number
  headers: Json<Record<string, string>>
  /** The response body exactly as sent, or null for none. */
  body: string | null
  created_at: Generated<string>
  expires_at: string
}

export interface InteractionsTable {
  id: Generated<string>
  external_ref: string | null
  customer_id: string
  channel: string
  direction: Generated<string>
  subject: string | null
  notes: string | null
  occurred_at: Generated<string>
  duration_seconds: number | null
  outcome: string | null
  agent: string | null
  follow_up_on: string | null
  follow_up_done: Generated<boolean>
  order_id: string | null
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
  archived_at: Timestamp | null
}

export interface FeedbackTable {
  id: Generated<string>
  external_ref: string | null
  customer_id: string
  kind: string
  /** csat or nps, for surveys only. */
  survey_type: string | null
  score: number | null
  subject: string | null
  body: string | null
  channel: string | null
  order_id: string | null
  interaction_id: string | null
  /** Complaint workflow status (open, in_progress, resolved, closed); null for other kinds. */
  status: string | null
  priority: string | null
  assignee: string | null
  sla_due_at: Timestamp | null
  resolution_note: string | null
  resolved_at: Timestamp | null
  submitted_at: Generated<string>
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
  archived_at: Timestamp | null
}

export interface ImportsTable {
  id: Generated<string>
  kind: string
  format: string
  status: Generated<string>
  rows_received: Generated<number>
  rows_imported: Generated<number>
  rows_created: Generated<number>
  rows_updated: Generated<number>
  rows_rejected: Generated<number>
  errors: ColumnType<Array<{ line: number; pointer: string; message: string }>, string | undefined, string>
  failure: string | null
  actor: string
  request_id: string | null
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
  finished_at: Timestamp | null
}

/** Staging rows of customer imports (unlogged; filled by COPY, emptied when the job ends). */
export interface ImportCustomerRowsTable {
  import_id: string
  line: number
}

export interface SegmentsTable {
  id: Generated<string>
  name: string
  description: string | null
  kind: string
  filter: Json<unknown> | null
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
  archived_at: Timestamp | null
}

export interface SegmentMembersTable {
  id: Generated<string>
  segment_id: string
  customer_id: string
  added_at: Generated<string>
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
}

export interface SegmentSnapshotsTable {
  id: Generated<string>
  segment_id: string
  customer_id: string
  entered_at: Generated<string>
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
}

export interface SegmentMembershipEventsTable {
  id: Generated<string>
  segment_id: string
  customer_id: string
  event: string
  occurred_at: Generated<string>
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
}

export interface Database {
  customers: CustomersTable
  contact_points: ContactPointsTable
  audit_events: AuditEventsTable
  audit_chain: AuditChainTable
  audit_seals: AuditSealsTable
  customer_metrics: CustomerMetricsTable
  customer_spend: CustomerSpendTable
  orders: OrdersTable
  order_items: OrderItemsTable
  order_payments: OrderPaymentsTable
  idempotency_keys: IdempotencyKeysTable
  interactions: InteractionsTable
  feedback: FeedbackTable
  imports: ImportsTable
  import_customer_rows: ImportCustomerRowsTable
  segments: SegmentsTable
  segment_members: SegmentMembersTable
  segment_snapshots: SegmentSnapshotsTable
  segment_membership_events: SegmentMembershipEventsTable
}

export type CustomerRow = Selectable<CustomersTable>
export type NewCustomerRow = Insertable<CustomersTable>
export type CustomerUpdate = Updateable<CustomersTable>
export type ContactPointRow = Selectable<ContactPointsTable>
export type AuditEventRow = Selectable<AuditEventsTable>
export type OrderRow = Selectable<OrdersTable>
export type OrderItemRow = Selectable<OrderItemsTable>
export type OrderPaymentRow = Selectable<OrderPaymentsTable>
export type InteractionRow = Selectable<InteractionsTable>
export type FeedbackRow = Selectable<FeedbackTable>
export type SegmentRow = Selectable<SegmentsTable>
export type SegmentEventRow = Selectable<SegmentMembershipEventsTable>
