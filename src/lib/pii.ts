/**
 * Masking of personal data for callers without the `pii:read` scope. A masked value keeps
 * just enough shape to be recognisable in a UI (the first letter of an email, the last two
 * digits of a phone) and never the value itself.
 */
export const MASK = '***'

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

/** Keys of an audit snapshot (a row as JSON) that hold personal data, at any depth. */
const SNAPSHOT_PII_KEYS = new Set(['email', 'phone', 'address', 'birthday', 'value', 'value_normalized'])

/**
 * An audit snapshot with its personal data masked. Keys are matched by name at any depth, so
 * every audited table is covered without a list per table; `value` is masked by the row's `kind`.
 */
export function maskAuditSnapshot(snapshot: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!snapshot) return snapshot
  const kind = typeof snapshot.kind === 'string' ? snapshot.kind : ''
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(snapshot)) {
    out[key] = SNAPSHOT_PII_KEYS.has(key) ? maskSnapshotValue(key, value, kind) : maskNested(value)
  }
  return out
}

function maskNested(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskNested)
  if (value && typeof value === 'object') return maskAuditSnapshot(value as Record<string, unknown>)
  return value
}

function maskSnapshotValue(key: string, value: unknown, kind: string): unknown {
  if (value === null) return null
  if (key === 'address' && typeof value === 'object' && !Array.isArray(value)) return maskAddress(value as Record<string, unknown>)
  if (typeof value !== 'string') return MASK
  if (key === 'email') return maskEmail(value)
  if (key === 'phone') return maskPhone(value)
  if (key === 'value' || key === 'value_normalized') return maskContactValue(kind, value)
  return MASK
}
