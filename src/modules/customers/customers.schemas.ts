import { Type, type Static, type TSchema } from 'typebox'
import { Currency, DateOnly, JsonMap, Money, Nullable, StringEnum, Timestamp, Uuid, ref, ArchivedQuery } from '../../lib/schema.js'
import { PageQuery, pageEnvelope, type SortFields } from '../../lib/pagination.js'
import { CustomerFilter } from '../filters/filter.schemas.js'

export const GENDERS = ['female', 'male', 'non_binary', 'other', 'unknown'] as const
export const MARITAL_STATUSES = ['single', 'married', 'divorced', 'widowed', 'separated', 'domestic_partnership', 'unknown'] as const
export const CHANNELS = ['email', 'phone', 'sms', 'chat', 'mail', 'in_person', 'social'] as const
export const SOURCES = ['organic', 'direct', 'referral', 'paid_search', 'paid_social', 'social', 'email', 'event', 'partner', 'store', 'call_center', 'import', 'other'] as const
export const LIFECYCLE_STAGES = ['lead', 'first_purchase', 'repeat', 'loyal', 'at_risk', 'churned'] as const
export const CONTACT_KINDS = ['phone', 'email', 'address', 'social'] as const
export const CONTACT_LABELS = ['home', 'work', 'mobile', 'billing', 'shipping', 'other'] as const
export const SOCIAL_NETWORKS = ['wechat', 'weibo', 'whatsapp', 'line', 'telegram', 'linkedin', 'x', 'facebook', 'instagram', 'tiktok', 'other'] as const
export const CUSTOMER_SORTS = { created_at: 'timestamp', updated_at: 'timestamp', name: 'text' } as const satisfies SortFields
export const CUSTOMER_INCLUDES = ['contact_points', 'metrics'] as const

const text = (maxLength: number, example: string, description?: string) =>
  Type.String({ minLength: 1, maxLength, example, ...(description ? { description } : {}) })

const Tag = Type.String({ minLength: 1, maxLength: 50, pattern: '^[^,]+$', description: 'No commas; stored trimmed and lower-case', example: 'vip' })

export const Address = Type.Object(
  {
    line1: text(200, '88 Century Avenue'),
    line2: Type.Optional(Type.String({ maxLength: 200 })),
    city: text(100, 'Shanghai'),
    region: Type.Optional(Type.String({ maxLength: 100, example: 'Shanghai' })),
    postal_code: Type.Optional(Type.String({ maxLength: 20, example: '200120' })),
    country: Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2', example: 'CN' }),
  },
  { $id: 'Address', additionalProperties: false, description: 'A postal address', example: { line1: '88 Century Avenue', city: 'Shanghai', postal_code: '200120', country: 'CN' } },
)

export const Consent = Type.Object(
  {
    email_marketing: Type.Optional(Type.Boolean()),
    sms_marketing: Type.Optional(Type.Boolean()),
    phone_marketing: Type.Optional(Type.Boolean()),
    postal_marketing: Type.Optional(Type.Boolean()),
    profiling: Type.Optional(Type.Boolean({ description: 'Use of the data for analytics and segmentation' })),
    data_sharing: Type.Optional(Type.Boolean({ description: 'Sharing with partners' })),
  },
  { $id: 'Consent', additionalProperties: false, description: 'Consent per purpose; absent means not asked', example: { email_marketing: true, sms_marketing: false } },
)

const contactPointFields = {
  kind: StringEnum(CONTACT_KINDS, { description: 'phone, email, address or social account' }),
  label: Type.Optional(Nullable(StringEnum(CONTACT_LABELS))),
  value: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: 'The phone number, email, or social handle; derived from `address` for addresses', example: 'li.na@example.com' })),
  network: Type.Optional(Nullable(StringEnum(SOCIAL_NETWORKS, { description: 'Required for social accounts' }))),
  address: Type.Optional(ref(Address)),
  is_primary: Type.Optional(Type.Boolean({ description: 'One primary per kind; setting it demotes the previous primary' })),
  verified: Type.Optional(Type.Boolean()),
}

export const ContactPointCreate = Type.Object(contactPointFields, {
  $id: 'ContactPointCreate',
  additionalProperties: false,
  description: 'A phone, email, address or social account to add to a customer',
  example: { kind: 'email', label: 'work', value: 'li.na@example.com', is_primary: true },
})

export const ContactPointPatch = Type.Object(
  {
    label: contactPointFields.label,
    value: contactPointFields.value,
    network: contactPointFields.network,
    address: contactPointFields.address,
    is_primary: contactPointFields.is_primary,
    verified: contactPointFields.verified,
  },
  { $id: 'ContactPointPatch', additionalProperties: false, minProperties: 1, description: 'JSON Merge Patch of a contact point', example: { is_primary: true } },
)

const contactPointVariant = <K extends (typeof CONTACT_KINDS)[number]>(
  kind: K, $id: string, description: string, shape: { network: TSchema; address: TSchema; value: TSchema }, example: Record<string, unknown>,
) =>
  Type.Object(
    {
      id: Uuid(),
      customer_id: Uuid(),
      kind: StringEnum([kind] as const),
      label: Nullable(StringEnum(CONTACT_LABELS)),
      value: shape.value,
      network: shape.network,
      address: shape.address,
      is_primary: Type.Boolean(),
      verified: Type.Boolean(),
      version: Type.Integer(),
      created_at: Timestamp(),
      updated_at: Timestamp(),
    },
    {
      $id, description,
      example: {
        id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a12', customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', kind, label: null, network: null, address: null,
        is_primary: true, verified: false, version: 1, created_at: '2026-11-22T08:30:00.000Z', updated_at: '2026-11-22T08:30:00.000Z', ...example,
      },
    },
  )

const maskedValue = (what: string) => Type.String({ description: `${what}; masked unless the token has pii:read` })
const none = (why: string) => Type.Null({ description: why })

export const ContactPointEmail = contactPointVariant('email', 'ContactPointEmail', 'An email address', {
  value: maskedValue('The address'), network: none('Only social accounts have a network'), address: none('Only addresses have parts'),
}, { label: 'work', value: 'li.na@example.com' })
export const ContactPointPhone = contactPointVariant('phone', 'ContactPointPhone', 'A phone number', {
  value: maskedValue('The number'), network: none('Only social accounts have a network'), address: none('Only addresses have parts'),
}, { label: 'mobile', value: '+8613912345678' })
export const ContactPointAddress = contactPointVariant('address', 'ContactPointAddress', 'A postal address', {
  value: maskedValue('The address on one line, derived from its parts'), network: none('Only social accounts have a network'),
  address: ref(Address),
}, { value: '88 Century Avenue, 200120 Shanghai, CN', address: { line1: '88 Century Avenue', city: 'Shanghai', postal_code: '200120', country: 'CN' } })
export const ContactPointSocial = contactPointVariant('social', 'ContactPointSocial', 'A social account', {
  value: maskedValue('The handle'), network: StringEnum(SOCIAL_NETWORKS), address: none('Only addresses have parts'),
}, { value: 'lina_sh', network: 'wechat' })
/** Registered wherever ContactPoint is (segments answer customers too). */
export const CONTACT_POINT_VARIANTS = [ContactPointEmail, ContactPointPhone, ContactPointAddress, ContactPointSocial]
const CONTACT_POINT_IDS: Record<(typeof CONTACT_KINDS)[number], string> = {
  email: 'ContactPointEmail', phone: 'ContactPointPhone', address: 'ContactPointAddress', social: 'ContactPointSocial',
}

/** A way to reach a customer: `kind` decides which of network and address it has. */
export const ContactPoint = Type.Unsafe<Static<typeof ContactPointEmail> | Static<typeof ContactPointPhone> | Static<typeof ContactPointAddress> | Static<typeof ContactPointSocial>>({
  $id: 'ContactPoint',
  description: 'A way to reach a customer; `kind` decides its shape: a social account has a network, an address its parts',
  oneOf: Object.values(CONTACT_POINT_IDS).map((id) => ({ $ref: `${id}#` })),
  discriminator: { propertyName: 'kind', mapping: Object.fromEntries(Object.entries(CONTACT_POINT_IDS).map(([kind, id]) => [kind, `#/components/schemas/${id}`])) },
  example: {
    id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a12', customer_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', kind: 'email', label: 'work',
    value: 'li.na@example.com', network: null, address: null, is_primary: true, verified: false, version: 1,
    created_at: '2026-11-22T08:30:00.000Z', updated_at: '2026-11-22T08:30:00.000Z',
  },
})

/** The profile fields of a customer as clients send them (bulk imports reuse them). */
export const profileFields = {
  external_ref: Type.Optional(Nullable(text(200, 'shop-000123', 'Id in the source system; POST with a known external_ref updates that customer'))),
  name: text(200, '李娜 Li Na', 'Display name, any script'),
  given_name: Type.Optional(Nullable(text(100, 'Na'))),
  family_name: Type.Optional(Nullable(text(100, 'Li'))),
  gender: Type.Optional(Nullable(StringEnum(GENDERS))),
  birthday: Type.Optional(Nullable(DateOnly({ description: 'Masked (null) unless the token has pii:read' }))),
  occupation: Type.Optional(Nullable(text(100, 'Engineer'))),
  marital_status: Type.Optional(Nullable(StringEnum(MARITAL_STATUSES))),
  company: Type.Optional(Nullable(text(200, 'Acme Trading Co.'))),
  job_title: Type.Optional(Nullable(text(100, 'Purchasing manager'))),
  preferred_channel: Type.Optional(Nullable(StringEnum(CHANNELS))),
  acquisition_source: Type.Optional(Nullable(StringEnum(SOURCES))),
  tags: Type.Optional(Type.Array(Tag, { maxItems: 50, uniqueItems: false, example: ['vip', 'newsletter'] })),
  interests: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 50, example: ['running', 'tea'] })),
  preferences: Type.Optional(JsonMap(50, { description: 'Preferences (snake_case keys, up to 50)', example: { newsletter_frequency: 'weekly' } })),
  attributes: Type.Optional(JsonMap(100, { description: 'Custom attributes (snake_case keys, up to 100)', example: { shoe_size: 38 } })),
  lifecycle_stage: Type.Optional(Nullable(StringEnum(LIFECYCLE_STAGES, { description: 'Setting it pins the stage by hand; null (in a PATCH) hands it back to the derived rules' }))),
  consent: Type.Optional(ref(Consent)),
  credit_limit: Type.Optional(Nullable(Money({ description: 'Credit limit for credit sales; needs credit_currency' }))),
  credit_currency: Type.Optional(Nullable(Currency())),
  payment_terms_days: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 365, example: 30 }))),
  loyalty_points: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_000_000_000, example: 1200 })),
}

export const CustomerCreate = Type.Object(
  {
    ...profileFields,
    contact_points: Type.Optional(Type.Array(ref(ContactPointCreate), { maxItems: 50 })),
  },
  {
    $id: 'CustomerCreate',
    additionalProperties: false,
    description: 'A new customer, optionally with contact points. With a known external_ref it updates that customer instead.',
    example: {
      external_ref: 'shop-000123', name: '李娜 Li Na', given_name: 'Na', family_name: 'Li', gender: 'female', birthday: '1990-05-17',
      preferred_channel: 'email', acquisition_source: 'referral', tags: ['vip'], attributes: { shoe_size: 38 },
      consent: { email_marketing: true }, contact_points: [{ kind: 'email', value: 'li.na@example.com', is_primary: true }],
    },
  },
)

const { name: _name, ...optionalProfile } = profileFields
export const CustomerPatch = Type.Object(
  { ...optionalProfile, name: Type.Optional(profileFields.name) },
  {
    $id: 'CustomerPatch',
    additionalProperties: false,
    minProperties: 1,
    description: 'JSON Merge Patch (RFC 7396): null clears a field, absent fields are untouched, objects merge key by key',
    example: { job_title: 'Head of purchasing', attributes: { shoe_size: null, vip_since: '2026-01-01' } },
  },
)

export const CustomerMetrics = Type.Object(
  {
    order_count: Type.Integer({ description: 'Purchases: orders paid, fulfilled or partially refunded, not archived' }),
    first_order_at: Nullable(Timestamp()),
    last_order_at: Nullable(Timestamp()),
    days_since_last_order: Nullable(Type.Integer()),
    spend: Type.Array(
      Type.Object({
        currency: Type.String({ example: 'CNY' }),
        order_count: Type.Integer(),
        total_spent: Type.String({ description: 'Order totals minus refunds', example: '1290.00' }),
        average_order_value: Type.String({ example: '129.00' }),
      }),
      { description: 'Per currency: no exchange rate is assumed' },
    ),
    interaction_count: Type.Integer(),
    last_interaction_at: Nullable(Timestamp()),
    open_complaints: Type.Integer({ description: 'Complaints open or in progress' }),
    latest_csat: Nullable(Type.Integer({ minimum: 1, maximum: 5 })),
    latest_nps: Nullable(Type.Integer({ minimum: 0, maximum: 10 })),
  },
  {
    $id: 'CustomerMetrics',
    description: 'Figures kept exact by the database as orders, interactions and feedback change',
    example: {
      order_count: 3, first_order_at: '2026-01-05T10:00:00Z', last_order_at: '2026-11-01T09:00:00Z', days_since_last_order: 21,
      spend: [{ currency: 'CNY', order_count: 3, total_spent: '387.00', average_order_value: '129.00' }],
      interaction_count: 4, last_interaction_at: '2026-11-20T08:00:00Z', open_complaints: 0, latest_csat: 5, latest_nps: 9,
    },
  },
)

export const Customer = Type.Object(
  {
    id: Uuid(),
    external_ref: Nullable(Type.String()),
    name: Type.String(),
    given_name: Nullable(Type.String()),
    family_name: Nullable(Type.String()),
    gender: Nullable(StringEnum(GENDERS)),
    birthday: Nullable(Type.String({ format: 'date' })),
    occupation: Nullable(Type.String()),
    marital_status: Nullable(StringEnum(MARITAL_STATUSES)),
    company: Nullable(Type.String()),
    job_title: Nullable(Type.String()),
    preferred_channel: Nullable(StringEnum(CHANNELS)),
    acquisition_source: Nullable(StringEnum(SOURCES)),
    tags: Type.Array(Type.String()),
    interests: Type.Array(Type.String()),
    preferences: JsonMap(50, { description: 'Preferences (snake_case keys), as sent' }),
    attributes: JsonMap(100, { description: 'Custom attributes (snake_case keys), as sent' }),
    lifecycle_stage: StringEnum(LIFECYCLE_STAGES),
    lifecycle_stage_manual: Type.Boolean({ description: 'true when the stage was set by hand; false when derived from the metrics' }),
    consent: ref(Consent),
    credit_limit: Nullable(Type.String({ example: '5000.00' })),
    credit_currency: Nullable(Type.String()),
    payment_terms_days: Nullable(Type.Integer()),
    loyalty_points: Type.Integer(),
    primary_email: Nullable(Type.String({ description: 'The primary email contact point (masked unless pii:read)' })),
    primary_phone: Nullable(Type.String({ description: 'The primary phone contact point (masked unless pii:read)' })),
    contact_points: Type.Optional(Type.Array(ref(ContactPoint), { description: 'With ?include=contact_points' })),
    metrics: Type.Optional(ref(CustomerMetrics)),
    version: Type.Integer({ description: 'Optimistic concurrency version; also the ETag' }),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    archived_at: Nullable(Timestamp()),
    merged_into_id: Nullable(Uuid({ description: 'Set when this customer was merged into another as a duplicate (it is archived too): the customer that holds its data now' })),
    owner_user_id: Nullable(Uuid({ description: 'The user who owns the customer: the creating user, or null (created by a service); changed by transferCustomer' })),
    owning_team_id: Nullable(Uuid({ description: 'The team the customer belongs to: the creating user\'s primary team, or null; who sees the customer follows from it and the owner (see the roles in README)' })),
  },
  {
    $id: 'Customer',
    description: 'A customer profile',
    example: {
      id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', external_ref: 'shop-000123', name: '李娜 Li Na', given_name: 'Na', family_name: 'Li',
      gender: 'female', birthday: '1990-05-17', occupation: null, marital_status: null, company: 'Acme Trading Co.', job_title: null,
      preferred_channel: 'email', acquisition_source: 'referral', tags: ['vip'], interests: [], preferences: {}, attributes: { shoe_size: 38 },
      lifecycle_stage: 'lead', lifecycle_stage_manual: false, consent: { email_marketing: true }, credit_limit: null, credit_currency: null, payment_terms_days: null,
      loyalty_points: 0, primary_email: 'li.na@example.com', primary_phone: null, version: 1,
      created_at: '2026-11-22T08:30:00.000Z', updated_at: '2026-11-22T08:30:00.000Z', archived_at: null, merged_into_id: null,
      owner_user_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0b01', owning_team_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a01',
    },
  },
)

export const CustomerMerge = Type.Object(
  {
    duplicate_id: Uuid({ description: 'The duplicate customer: its data moves to this one, and it is archived with merged_into_id' }),
    prefer: Type.Optional(StringEnum(['target', 'duplicate'] as const, {
      description: 'Whose profile value wins where both customers have one set (default target); nulls are always filled from the other side',
      default: 'target',
    })),
  },
  {
    $id: 'CustomerMerge',
    additionalProperties: false,
    description: 'Which duplicate to merge into the customer of the path, and whose profile values win',
    example: { duplicate_id: '0193a7d0-7a2b-7c3a-9b1e-2f4c8d9e0a12', prefer: 'target' },
  },
)

export const CustomerList = Type.Object(pageEnvelope(ref(Customer), 'A page of customers').properties, {
  $id: 'CustomerList',
  description: 'A page of customers',
  example: { data: [], next_cursor: null },
})

export const ContactPointList = Type.Object(pageEnvelope(ref(ContactPoint), 'A page of contact points').properties, {
  $id: 'ContactPointList',
  description: 'A page of a customer\'s contact points',
  example: { data: [], next_cursor: null },
})

export const IncludeQuery = Type.Optional(
  Type.String({ pattern: '^[a-z_,]+$', maxLength: 200, description: `Comma-separated: ${CUSTOMER_INCLUDES.join(', ')}`, example: 'contact_points' }),
)

export const CustomerListQuery = Type.Object(
  {
    ...PageQuery,
    sort: Type.Optional(Type.String({ maxLength: 100, description: `Comma-separated of ${Object.keys(CUSTOMER_SORTS).join(', ')}; prefix - for descending`, example: '-created_at' })),
    q: Type.Optional(Type.String({ minLength: 2, maxLength: 100, description: 'Matches name, email and phone (email and phone only with pii:read)' })),
    tag: Type.Optional(Type.Array(Tag, { maxItems: 10, description: 'Customers carrying all these tags (repeat the parameter)' })),
    lifecycle_stage: Type.Optional(StringEnum(LIFECYCLE_STAGES)),
    acquisition_source: Type.Optional(StringEnum(SOURCES)),
    created_after: Type.Optional(Timestamp()),
    created_before: Type.Optional(Timestamp()),
    archived: ArchivedQuery('customers'),
    include: IncludeQuery,
  },
  { additionalProperties: false },
)

export const CustomerSearch = Type.Object(
  {
    filter: Type.Optional(ref(CustomerFilter)),
    sort: Type.Optional(Type.String({ maxLength: 100, description: `Comma-separated of ${Object.keys(CUSTOMER_SORTS).join(', ')}; prefix - for descending`, example: '-created_at' })),
    limit: PageQuery.limit,
    cursor: PageQuery.cursor,
    include_total: Type.Optional(Type.Boolean({ description: 'Also count every match (one more query)', default: false })),
  },
  {
    $id: 'CustomerSearch',
    additionalProperties: false,
    description: 'A search over non-archived customers with the filter language; without a filter every customer matches',
    example: { filter: { and: [{ field: 'tags', op: 'has_any', value: ['vip'] }, { orders: { min_count: 3, since: { last_n_days: 90 } } }] }, sort: '-created_at', limit: 50, include_total: true },
  },
)

export const CustomerSearchResult = Type.Object(
  {
    ...pageEnvelope(ref(Customer), 'A page of customers').properties,
    total: Type.Optional(Type.Integer({ minimum: 0, description: 'Every match, with include_total=true' })),
  },
  { $id: 'CustomerSearchResult', description: 'A page of customers that match the filter', example: { data: [], next_cursor: null, total: 0 } },
)

export const CustomerGetQuery = Type.Object({ include: IncludeQuery }, { additionalProperties: false })
export const ContactPointParams = Type.Object({ id: Uuid(), contact_point_id: Uuid() }, { additionalProperties: false })

export type CustomerCreateBody = Static<typeof CustomerCreate>
export type CustomerPatchBody = Static<typeof CustomerPatch>
export type ContactPointCreateBody = Static<typeof ContactPointCreate>
export type ContactPointPatchBody = Static<typeof ContactPointPatch>
export type CustomerDto = Static<typeof Customer>
export type CustomerMergeBody = Static<typeof CustomerMerge>
export type CustomerMetricsDto = Static<typeof CustomerMetrics>
export type ContactPointDto = Static<typeof ContactPoint>
export type CustomerListQueryT = Static<typeof CustomerListQuery>

/** Named schemas of this domain, registered once by the routes plugin. */
export const customerSchemas = [Address, Consent, ContactPointCreate, ContactPointPatch, ...CONTACT_POINT_VARIANTS, ContactPoint, CustomerCreate, CustomerPatch, CustomerMetrics, Customer, CustomerMerge, CustomerList, ContactPointList, CustomerSearch, CustomerSearchResult]
