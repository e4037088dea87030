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
