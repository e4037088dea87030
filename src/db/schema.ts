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
  consent: Json<Record<string, unknown>>
  credit_limit: string | null
  credit_currency: string | null
  payment_terms_days: number | null
  loyalty_points: Generated<number>
  version: ServerOwned<number>
  created_at: Generated<string>
  updated_at: ServerOwned<string>
  archived_at: Timestamp | null
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
  route: string | null
  action: string
  entity: string
  entity_id: string
  before: Json<Record<string, unknown>> | null
  after: Json<Record<string, unknown>> | null
  txid: ColumnType<string, never, never>
}

export interface Database {
  customers: CustomersTable
  contact_points: ContactPointsTable
  audit_events: AuditEventsTable
}

export type CustomerRow = Selectable<CustomersTable>
export type NewCustomerRow = Insertable<CustomersTable>
export type CustomerUpdate = Updateable<CustomersTable>
export type ContactPointRow = Selectable<ContactPointsTable>
export type AuditEventRow = Selectable<AuditEventsTable>
