import { fullFormats } from 'ajv-formats/dist/formats.js'
import type { DbExecutor } from '../../db/database.js'
import type { ContactPointRow, NewCustomerRow } from '../../db/rows.js'
import type { UpsertOptions } from '../../db/versioned.js'
import type { UpsertResult } from '../../lib/external-ref.js'
import { minorUnits } from '../../lib/currency.js'
import { formatMoney, minorUnitsError, moneyFromColumn } from '../../lib/money.js'
import { problem, type FieldError, notFound, pointer, versionMismatch } from '../../lib/problem.js'
import { constraintsAt } from '../../lib/constraints.js'
import * as repo from './customers.repository.js'
import * as contactPoints from './contact-points.repository.js'
import { refreshMetrics, type MetricsRows } from '../metrics/index.js'
import { refuseIfMerged } from './customers.merge.js'
import type { CustomerPredicate } from '../filters/filter.compile.js'
import { pageRequest, parseSort, toPage } from '../../lib/pagination.js'
import type { ContactPointCreateBody, ContactPointDto, ContactPointPatchBody, CustomerCreateBody, CustomerDto, CustomerMetricsDto, CustomerPatchBody } from './customers.schemas.js'
import { CUSTOMER_SORTS } from './customers.schemas.js'

const emailFormat = fullFormats.email as RegExp
const PHONE = /^\+?[0-9]{5,20}$/
const PHONE_NOISE = /[\s().\-/]/g

// Contact points -------------------------------------------------------------------------

/** The normalized form of an email (lower-case), or undefined when it is not an email address. */
export function normalizeEmail(value: string): string | undefined {
  return emailFormat.test(value) ? value.toLowerCase() : undefined
}

/** The normalized form of a phone number (digits and a leading +), or undefined when it is not one. */
export function normalizePhone(value: string): string | undefined {
  const normalized = value.replace(PHONE_NOISE, '')
  return PHONE.test(normalized) ? normalized : undefined
}

interface NormalizedContact {
  kind: string
  label: string | null
  value: string
  value_normalized: string
  network: string | null
  address: Record<string, unknown> | null
  is_primary: boolean | undefined
  verified: boolean
}

function formatAddress(a: Record<string, unknown>): string {
  const cityLine = [a.postal_code, a.city, a.region].filter(Boolean).join(' ')
  return [a.line1, a.line2, cityLine, a.country].filter(Boolean).join(', ')
}

/** Validates a contact point against its kind and derives the normalized value used for search and uniqueness. */
function normalizeContact(input: ContactPointCreateBody, at: string, errors: FieldError[]): NormalizedContact | undefined {
  const fail = (field: string, message: string) => {
    errors.push({ pointer: `${at}/${field}`, message })
    return undefined
  }
  const base = { kind: input.kind, label: input.label ?? null, verified: input.verified ?? false, is_primary: input.is_primary }
  if (input.kind === 'address') {
    if (!input.address) return fail('address', 'is required for an address')
    if (input.network) return fail('network', 'is only for social accounts')
    const value = formatAddress(input.address)
    return { ...base, value, value_normalized: value.toLowerCase(), network: null, address: input.address }
  }
  if (input.address) return fail('address', 'is only for addresses')
  const value = input.value?.trim()
  if (!value) return fail('value', 'is required')
  if (input.kind === 'email') {
    const normalized = normalizeEmail(value)
    if (!normalized) return fail('value', 'must be an email address')
    return { ...base, value, value_normalized: normalized, network: null, address: null }
  }
  if (input.kind === 'phone') {
    const normalized = normalizePhone(value)
    if (!normalized) return fail('value', 'must be a phone number: digits, optionally a leading +, 5 to 20 digits')
    return { ...base, value, value_normalized: normalized, network: null, address: null }
  }
  if (!input.network) return fail('network', 'is required for a social account')
  return { ...base, value, value_normalized: value.toLowerCase(), network: input.network, address: null }
}

/**
 * Adds a contact point, keeping one primary per kind: a new primary demotes the old one, and the
 * first of a kind becomes primary by itself. Another customer's primary email is a 409.
 */
async function addContact(db: DbExecutor, customerId: string, c: NormalizedContact, at: string): Promise<ContactPointRow> {
  const existing = await contactPoints.findContactPointByValue(db, customerId, c.kind, c.value_normalized)
  const primary = c.is_primary ?? (existing?.is_primary || !(await contactPoints.hasPrimary(db, customerId, c.kind)))
  if (primary) await contactPoints.demotePrimary(db, customerId, c.kind, existing?.id)
  // The pointers of a taken primary email lead to this contact point of the body.
  return constraintsAt(at, async () => {
    if (existing) {
      const { is_primary: _p, ...rest } = c
      return (await contactPoints.updateContactPoint(db, existing.id, { ...rest, is_primary: primary }))!
    }
    return contactPoints.insertContactPoint(db, { ...c, customer_id: customerId, is_primary: primary })
  })
}

/** A single contact point body (pointers relative to the body itself). */
function normalizeOne(input: ContactPointCreateBody): NormalizedContact {
  const errors: FieldError[] = []
  const c = normalizeContact(input, '', errors)
  if (!c) throw problem('validation-failed', 'The contact point is invalid.', errors)
  return c
}

function normalizeAll(inputs: ContactPointCreateBody[], at: string): NormalizedContact[] {
  const errors: FieldError[] = []
  const out: NormalizedContact[] = []
  const primaries = new Map<string, number>()
  inputs.forEach((input, i) => {
    const c = normalizeContact(input, `${at}/${i}`, errors)
    if (!c) return
    if (c.is_primary) {
      if (primaries.has(c.kind)) errors.push({ pointer: `${at}/${i}/is_primary`, message: `only one ${c.kind} can be primary` })
      primaries.set(c.kind, i)
    }
    out.push(c)
  })
  if (errors.length) throw problem('validation-failed', 'Some contact points are invalid.', errors)
  return out
}

// Customers ------------------------------------------------------------------------------

function normalizeTags(tags: string[] | undefined): string[] | undefined {
  return tags && [...new Set(tags.map((t) => t.trim().toLowerCase()).filter(Boolean))]
}

/**
 * Checks the credit terms a write leaves (the limit and its currency go together; the limit has
 * at most the currency's decimals) and returns the limit as stored: written with the currency's
 * minor units ("5000" in CNY is "5000.00"). `limitSent` says whether the client sent the limit
 * (a bad one is pointed at) or it is the stored one that a new currency cannot hold.
 */
function checkCredit(terms: { credit_limit?: string | null; credit_currency?: string | null }, limitSent: boolean): string | null {
  const limit = terms.credit_limit ?? null
  const currency = terms.credit_currency ?? null
  if (limit !== null && currency === null) throw problem('validation-failed', 'A credit limit needs its currency.', [{ pointer: pointer('credit_currency'), message: 'is required with credit_limit' }])
  if (currency !== null && limit === null) throw problem('validation-failed', 'A credit currency needs a limit.', [{ pointer: pointer('credit_limit'), message: 'is required with credit_currency' }])
  if (limit === null || currency === null) return null
  if (limit.startsWith('-')) throw problem('validation-failed', 'Credit limits are not negative.', [{ pointer: pointer('credit_limit'), message: 'must be zero or more' }])
  const tooPrecise = minorUnitsError(limit, currency, pointer(limitSent ? 'credit_limit' : 'credit_currency'), limitSent ? 'as-sent' : 'stored')
  if (tooPrecise) throw problem('too-many-decimals', `The credit limit has more decimals than ${currency} has.`, [tooPrecise])
  const units = minorUnits(currency)
  return formatMoney(moneyFromColumn(limit, units), units)
}

/** Profile fields of a create or patch body as column values. */
function toColumns(body: Partial<CustomerPatchBody>): Record<string, unknown> {
  const cols: Record<string, unknown> = { ...body }
  // A stage set by hand is pinned; null hands it back to the derived rules.
  if (body.lifecycle_stage === null) {
    delete cols.lifecycle_stage
    cols.lifecycle_stage_manual = false
  } else if (body.lifecycle_stage !== undefined) {
    cols.lifecycle_stage_manual = true
  }
  if (body.tags) cols.tags = normalizeTags(body.tags)
  if (body.interests) cols.interests = [...new Set(body.interests.map((t) => t.trim()))]
  return cols
}

export async function createCustomer(db: DbExecutor, body: CustomerCreateBody, opts: UpsertOptions = {}): Promise<UpsertResult> {
  const { contact_points: contactInputs = [], ...profile } = body
  const creditLimit = checkCredit(profile, true)
  if (profile.credit_limit != null) profile.credit_limit = creditLimit
  const contacts = normalizeAll(contactInputs, '/contact_points')
  const columns = toColumns(profile) as NewCustomerRow
  const { external_ref: _ref, ...changes } = columns
  const result = profile.external_ref
    ? await repo.customers.upsert(db, profile.external_ref, {
      insert: () => repo.customers.insert(db, columns),
      update: async (existing) => {
        await repo.updateCustomer(db, existing.id, changes)
      },
      // A merged duplicate keeps its external_ref; writes by it go to the customer it was merged into.
      follow: async (existing) => (existing.merged_into_id ? repo.customers.lockForWrite(db, existing.merged_into_id) : existing),
    }, opts)
    : { id: await repo.insertCustomer(db, columns), created: true }
  for (const [i, c] of contacts.entries()) await addContact(db, result.id, c, `/contact_points/${i}`)
  return result
}

export async function patchCustomer(db: DbExecutor, id: string, body: CustomerPatchBody, expectedVersion?: number): Promise<void> {
  if (body.name === null) throw problem('validation-failed', 'name cannot be cleared.', [{ pointer: pointer('name'), message: 'must be a string' }])
  const current = await repo.findCustomer(db, id)
  if (!current) throw notFound('customer')
  refuseIfMerged(current)
  const creditLimit = checkCredit({
    credit_limit: body.credit_limit !== undefined ? body.credit_limit : current.credit_limit,
    credit_currency: body.credit_currency !== undefined ? body.credit_currency : current.credit_currency,
  }, body.credit_limit !== undefined)
  const columns = toColumns(body)
  if (body.credit_limit !== undefined || creditLimit !== current.credit_limit) columns.credit_limit = creditLimit
  const updated = await repo.updateCustomer(db, id, columns, expectedVersion)
  if (!updated) throw versionMismatch()
  if (body.lifecycle_stage === null) await refreshMetrics(db, id)
}

/** Restores an archived customer; a customer merged into another stays archived (422): merges are not undone. */
export async function restoreCustomer(db: DbExecutor, id: string, expectedVersion?: number): Promise<void> {
  await repo.customers.restore(db, id, expectedVersion, refuseIfMerged)
}

export async function addContactPoint(db: DbExecutor, customerId: string, body: ContactPointCreateBody): Promise<ContactPointRow> {
  const [customer] = await repo.lockCustomers(db, [customerId])
  if (!customer) throw notFound('customer')
  refuseIfMerged(customer)
  return addContact(db, customerId, normalizeOne(body), '')
}

export async function patchContactPoint(db: DbExecutor, customerId: string, id: string, body: ContactPointPatchBody, expectedVersion?: number): Promise<ContactPointRow> {
  const current = await contactPoints.findContactPoint(db, customerId, id)
  if (!current) throw notFound('contact point')
  const merged: ContactPointCreateBody = {
    kind: current.kind as ContactPointCreateBody['kind'],
    label: body.label !== undefined ? body.label : (current.label as ContactPointCreateBody['label']),
    value: body.value ?? current.value,
    network: body.network !== undefined ? body.network : (current.network as ContactPointCreateBody['network']),
    ...(body.address !== undefined ? { address: body.address } : current.address ? { address: current.address as never } : {}),
    verified: body.verified ?? current.verified,
  }
  const c = normalizeOne(merged)
  const wantsPrimary = body.is_primary ?? current.is_primary
  if (body.is_primary === false && current.is_primary) {
    throw problem('primary-contact-point-required', 'Make another contact point primary instead of unsetting this one.', [{ pointer: pointer('is_primary'), message: 'a kind keeps one primary while it has contact points' }])
  }
  if (wantsPrimary && !current.is_primary) await contactPoints.demotePrimary(db, customerId, current.kind, id)
  const { is_primary: _p, ...changes } = c
  const row = await contactPoints.updateContactPoint(db, id, { ...changes, is_primary: wantsPrimary }, expectedVersion)
  if (!row) throw versionMismatch()
  return row
}

export async function removeContactPoint(db: DbExecutor, customerId: string, id: string, expectedVersion?: number): Promise<void> {
  const current = await contactPoints.findContactPoint(db, customerId, id)
  if (!current) throw notFound('contact point')
  const removed = await contactPoints.deleteContactPoint(db, id, expectedVersion)
  if (!removed) throw versionMismatch()
  if (removed.is_primary) await contactPoints.promoteOldest(db, customerId, removed.kind)
}

// Output -----------------------------------------------------------------------------------

export function toContactPointDto(row: ContactPointRow): ContactPointDto {
  return {
    id: row.id,
    customer_id: row.customer_id,
    kind: row.kind as ContactPointDto['kind'],
    label: row.label as ContactPointDto['label'],
    value: row.value,
    network: row.network as ContactPointDto['network'],
    address: row.address as ContactPointDto['address'],
    is_primary: row.is_primary,
    verified: row.verified,
    version: row.version,
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}


/** Metrics of one customer; a customer with no activity yet has no row and gets zeros. */
export function toMetricsDto(customerId: string, rows: MetricsRows, now = Date.now()): CustomerMetricsDto {
  const m = rows.metrics.find((r) => r.customer_id === customerId)
  const last = m?.last_order_at ?? null
  return {
    order_count: m?.order_count ?? 0,
    first_order_at: m?.first_order_at ?? null,
    last_order_at: last,
    days_since_last_order: last ? Math.floor((now - Date.parse(last)) / 86_400_000) : null,
    spend: rows.spend
      .filter((s) => s.customer_id === customerId)
      .map((s) => ({ currency: s.currency, order_count: s.order_count, total_spent: s.total_spent, average_order_value: s.average_order_value })),
    interaction_count: m?.interaction_count ?? 0,
    last_interaction_at: m?.last_interaction_at ?? null,
    open_complaints: m?.open_complaints ?? 0,
    latest_csat: m?.latest_csat ?? null,
    latest_nps: m?.latest_nps ?? null,
  }
}

/**
 * A customer row as the API shows it (plugins/pii.ts masks it for callers without pii:read).
 * The row itself becomes the DTO (contact_points and metrics added) instead of a copy: rows come fresh from the database and
 * their callers only read sort keys and ids afterwards, and a list page skips copying 50 objects
 * of 30 fields. Field order is the row's, as with a copy.
 */
export function toCustomerDto(row: repo.CustomerRecord, contactPoints?: ContactPointRow[], metrics?: MetricsRows): CustomerDto {
  const dto = row as unknown as CustomerDto & repo.CustomerRecord
  if (contactPoints) dto.contact_points = contactPoints.map((c) => toContactPointDto(c))
  if (metrics) dto.metrics = toMetricsDto(row.id, metrics)
  return dto
}

// Search ------------------------------------------------------------------------------------

export interface SearchPageOptions {
  sort?: string
  cursor?: string
  limit?: number
}

/**
 * One page of the non-archived customers that match a compiled filter. Search, segment members
 * and segment previews all page through here.
 */
export async function searchPage(db: DbExecutor, where: CustomerPredicate, opts: SearchPageOptions) {
  const page = pageRequest(opts, parseSort(opts.sort, CUSTOMER_SORTS, '-created_at'))
  return toPage(await repo.searchCustomers(db, where, page), page, (r) => toCustomerDto(r))
}
