/**
 * # Personal data: the registry
 *
 * Every personal field of the API is declared here once, with its class. What follows from it:
 * - responses: plugins/pii.ts walks each route's response schema, finds the representations
 *   below, and masks their fields for a caller without `pii:read` (and sets `x-pii-masked`);
 *   a response that carries any personal field is `Cache-Control: no-store`;
 * - audit snapshots: `maskAuditSnapshot` masks every key named here, at any depth;
 * - logs: `PII_LOG_PATHS` feeds pino's `redact` (src/app.ts).
 * Later work (encryption at rest, erasure, access export) reads the same tables.
 *
 * A masked value keeps just enough shape to be recognisable in a UI (the first letter of an
 * email, the last two digits of a phone) and never the value itself.
 */
export const MASK = '***'

/**
 * Classes of personal data. `masked`: hidden from a caller without pii:read (API.md: phone,
 * email, address and birthday). `logged`: whether its values may reach a log line (false: pino
 * redacts every field of the class, by name).
 */
export const PII_CLASSES = {
  email: { masked: true, logged: false, description: 'An email address' },
  phone: { masked: true, logged: false, description: 'A phone number' },
  contact_value: { masked: true, logged: false, description: 'A contact point value: an email, phone, social handle or address line, by the record\'s kind' },
  address: { masked: true, logged: false, description: 'Postal address parts (the country is kept)' },
  birthday: { masked: true, logged: false, description: 'A date of birth' },
  snapshot: { masked: true, logged: false, description: 'A stored copy of a record (audit before/after): masked key by key' },
  // Names stay visible to customers:read (a CRM without names is of no use), and `name` is also
  // what errors and plugins call themselves in log lines; request bodies are never logged.
  name: { masked: false, logged: true, description: 'A person\'s name' },
  free_text: { masked: false, logged: false, description: 'Free text written about a customer (notes, complaints)' },
} as const

export type PiiClass = keyof typeof PII_CLASSES
type Fields = Readonly<Record<string, PiiClass>>

/** Personal columns per table. API fields carry their column's name (API.md § Shape). */
export const PII_FIELDS = {
  customers: { name: 'name', given_name: 'name', family_name: 'name', birthday: 'birthday' },
  contact_points: { value: 'contact_value', value_normalized: 'contact_value', address: 'address' },
  interactions: { subject: 'free_text', notes: 'free_text' },
  feedback: { subject: 'free_text', body: 'free_text', resolution_note: 'free_text' },
  orders: { notes: 'free_text' },
  audit_events: { before: 'snapshot', after: 'snapshot' },
  events: { changes: 'snapshot' },
} as const satisfies Record<string, Fields>

export type PiiTable = keyof typeof PII_FIELDS

/**
 * The API representations (schema $id) that carry personal data: the table each shows, and
 * fields that are not columns of it (`derived`).
 */
export const PII_REPRESENTATIONS: Readonly<Record<string, { table?: PiiTable; derived?: Fields }>> = {
  // The values of the customer's primary email and phone contact points.
  Customer: { table: 'customers', derived: { primary_email: 'email', primary_phone: 'phone' } },
  ContactPointEmail: { table: 'contact_points' },
  ContactPointPhone: { table: 'contact_points' },
  ContactPointAddress: { table: 'contact_points' },
  ContactPointSocial: { table: 'contact_points' },
  Interaction: { table: 'interactions' },
  Feedback: { table: 'feedback' },
  Order: { table: 'orders' },
  AuditEvent: { table: 'audit_events' },
  Event: { table: 'events' },
  // A timeline item's summary quotes an interaction's or a complaint's subject.
  TimelineInteraction: { derived: { summary: 'free_text' } },
  TimelineOrder: { derived: { summary: 'free_text' } },
  TimelineFeedback: { derived: { summary: 'free_text' } },
  TimelineProfileChange: { derived: { summary: 'free_text' } },
}

/**
 * Keys that hold personal data where a client writes free-form JSON (a customer's attributes
 * and preferences) or a row of a bulk import: masked in audit snapshots, redacted in logs.
 */
export const PII_FREE_FORM_KEYS = { email: 'email', phone: 'phone', address: 'address', birthday: 'birthday' } as const satisfies Fields

/**
 * Response fields that share a masked field's name but hold no personal data. Any other response
 * field named like a masked field (PII_KEYS) outside a representation stops the app from starting.
 */
export const NOT_PERSONAL: Readonly<Record<string, readonly string[]>> = {
  // A filter's literal and date bound: filters cannot name contact values or birthdays (modules/filters/filter.parse.ts).
  FilterCondition: ['value'],
  FilterOrders: ['before'],
  FilterInteractions: ['before'],
  FilterFeedback: ['before'],
}

/** The personal fields of a representation, by name. */
export function representationFields(schemaId: string): Fields | undefined {
  const r = PII_REPRESENTATIONS[schemaId]
  if (!r) return undefined
  return { ...(r.table ? PII_FIELDS[r.table] : {}), ...r.derived }
}

/** Every field name the registry declares, with its class; a name has one class wherever it appears. */
export const PII_KEYS: Readonly<Record<string, PiiClass>> = (() => {
  const all: Record<string, PiiClass> = {}
  const sources: Fields[] = [...Object.values(PII_FIELDS), ...Object.values(PII_REPRESENTATIONS).map((r) => r.derived ?? {}), PII_FREE_FORM_KEYS]
  for (const fields of sources) {
    for (const [name, cls] of Object.entries(fields)) {
      if (all[name] && all[name] !== cls) throw new Error(`PII registry: ${name} is both ${all[name]} and ${cls}`)
      all[name] = cls
    }
  }
  return all
})()

/** pino `redact` paths: every personal key that may not be logged, at the top level and one level down. */
export const PII_LOG_PATHS: readonly string[] = Object.entries(PII_KEYS)
  .filter(([, cls]) => !PII_CLASSES[cls].logged)
  .flatMap(([name]) => [name, `*.${name}`])

// Maskers ----------------------------------------------------------------------------------

export function maskEmail(email: string): string {
  const at = email.indexOf('@')
  return at > 0 ? `${email[0]}${MASK}@${MASK}` : MASK
}

export function maskPhone(phone: string): string {
  const digits = phone.replace(/\D/g, '')
  return digits.length > 4 ? `${MASK}${digits.slice(-2)}` : MASK
}

/** A contact point value by its kind. */
export function maskContactValue(kind: string, value: string): string {
  if (kind === 'email') return maskEmail(value)
  if (kind === 'phone') return maskPhone(value)
  return MASK
}

/** Address parts: only the country is kept. */
export function maskAddress(address: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!address) return address
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(address)) out[k] = k === 'country' ? v : MASK
  return out
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A JSON object as parsed or built by code: not a stream, buffer, date or reply. */
function isPlainRecord(v: unknown): v is Record<string, unknown> {
  if (!isRecord(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

/**
 * One personal value as a caller without pii:read sees it; `record` is the object holding it
 * (a contact point's value is masked by its kind). `typed`: the value sits in a response whose
 * schema types it, so the mask must keep the type (a birthday, typed as a date, becomes null).
 * Values of unmasked classes are returned as they are; a value of an unexpected type is MASK.
 */
export function maskValue(cls: PiiClass, value: unknown, record: Record<string, unknown>, typed = false): unknown {
  if (value === null || value === undefined || !PII_CLASSES[cls].masked) return value
  switch (cls) {
    case 'email': return typeof value === 'string' ? maskEmail(value) : MASK
    case 'phone': return typeof value === 'string' ? maskPhone(value) : MASK
    case 'contact_value': return typeof value === 'string' ? maskContactValue(typeof record.kind === 'string' ? record.kind : '', value) : MASK
    case 'address': return isRecord(value) ? maskAddress(value) : MASK
    case 'birthday': return typed ? null : MASK
    case 'snapshot': return isRecord(value) ? maskAuditSnapshot(value) : MASK
    default: return value
  }
}

/**
 * An audit snapshot (a row as JSON) with its personal data masked. Keys are matched by name
 * (PII_KEYS) at any depth, so every audited table and the free-form maps inside it are covered
 * without a list per table.
 */
export function maskAuditSnapshot(snapshot: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!snapshot) return snapshot
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(snapshot)) {
    const cls = PII_KEYS[key]
    // A snapshot holds no snapshot: `before` there is a filter's date bound, not an audit event's.
    out[key] = cls && cls !== 'snapshot' && PII_CLASSES[cls].masked ? maskValue(cls, value, snapshot) : maskNested(value)
  }
  return out
}

function maskNested(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskNested)
  if (isRecord(value)) return maskAuditSnapshot(value)
  return value
}

// Response plans ---------------------------------------------------------------------------

/**
 * Where the personal fields of a response are, read from its JSON schema: the fields of this
 * object by class, the properties below it that hold some, and the items of an array.
 */
export interface PiiPlan {
  fields?: Record<string, PiiClass>
  props?: Record<string, PiiPlan>
  items?: PiiPlan
}

interface SchemaNode {
  $ref?: string
  $id?: string
  properties?: Record<string, SchemaNode>
  items?: SchemaNode
  anyOf?: SchemaNode[]
  oneOf?: SchemaNode[]
  allOf?: SchemaNode[]
}

/**
 * The plan of a response schema; `resolve` looks a `$ref` ("Customer#") up among the shared
 * schemas. Undefined when the response carries no personal field. Throws for a field named like
 * a masked one in a schema the registry does not know (see NOT_PERSONAL): declare it either way.
 */
export function planOf(schema: unknown, resolve: (id: string) => unknown): PiiPlan | undefined {
  const byId = new Map<string, PiiPlan | undefined>()
  // `owner`: the $id of the nearest named schema around the node.
  const walk = (node: SchemaNode | undefined, owner = '(inline)'): PiiPlan | undefined => {
    if (!node || typeof node !== 'object') return undefined
    if (node.$ref) {
      const match = /^([^#/]+)#$/.exec(node.$ref)
      if (!match) throw new Error(`PII plan: cannot follow $ref ${node.$ref}`)
      const id = match[1]!
      // A schema that refers to itself (JsonValue, the filter language) is walked once.
      if (byId.has(id)) return byId.get(id)
      byId.set(id, undefined)
      const target = resolve(id)
      if (!target) throw new Error(`PII plan: unknown schema ${node.$ref}`)
      const plan = walk({ ...(target as SchemaNode), $id: id }, id)
      byId.set(id, plan)
      return plan
    }
    let plan: PiiPlan | undefined
    const fields = node.$id ? representationFields(node.$id) : undefined
    if (fields) {
      const present = Object.entries(fields).filter(([name]) => node.properties?.[name])
      if (present.length) plan = { fields: Object.fromEntries(present) }
    }
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const cls = PII_KEYS[name]
      if (!fields && cls && PII_CLASSES[cls].masked && !NOT_PERSONAL[owner]?.includes(name)) {
        throw new Error(`PII registry: ${owner} has a field "${name}" (${cls}): add ${owner} to PII_REPRESENTATIONS, or to NOT_PERSONAL`)
      }
      const sub = walk(child, owner)
      if (sub) plan = merge(plan, { props: { [name]: sub } })
    }
    const items = walk(node.items, owner)
    if (items) plan = merge(plan, { items })
    for (const branch of [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])]) plan = merge(plan, walk(branch, owner))
    return plan
  }
  return walk(schema as SchemaNode)
}

function merge(a: PiiPlan | undefined, b: PiiPlan | undefined): PiiPlan | undefined {
  if (!a || !b) return a ?? b
  const props: Record<string, PiiPlan> = { ...a.props }
  for (const [name, p] of Object.entries(b.props ?? {})) props[name] = merge(props[name], p)!
  const items = merge(a.items, b.items)
  return {
    ...(a.fields || b.fields ? { fields: { ...a.fields, ...b.fields } } : {}),
    ...(Object.keys(props).length ? { props } : {}),
    ...(items ? { items } : {}),
  }
}

/** Whether a plan holds a field for which `test` holds. */
export function planHas(plan: PiiPlan | undefined, test: (cls: PiiClass) => boolean): boolean {
  if (!plan) return false
  return Object.values(plan.fields ?? {}).some(test) || Object.values(plan.props ?? {}).some((p) => planHas(p, test)) || planHas(plan.items, test)
}

/** The value with the plan's masked fields masked: a copy wherever something changes; the input is not modified. */
export function applyPlan(plan: PiiPlan, value: unknown): unknown {
  if (Array.isArray(value)) return plan.items ? value.map((v) => applyPlan(plan.items!, v)) : value
  if (!isPlainRecord(value)) return value
  const out: Record<string, unknown> = { ...value }
  for (const [name, cls] of Object.entries(plan.fields ?? {})) {
    if (name in value && PII_CLASSES[cls].masked) out[name] = maskValue(cls, value[name], value, true)
  }
  for (const [name, sub] of Object.entries(plan.props ?? {})) {
    if (name in value) out[name] = applyPlan(sub, value[name])
  }
  return out
}
