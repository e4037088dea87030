import { randomBytes } from 'node:crypto'

/**
 * A UUID v7 (RFC 9562: 48-bit unix milliseconds, version 7, variant 10, random bits), the same
 * layout as the database's crm_uuid_v7(), for ids the application must know before it inserts
 * (rows staged by a bulk import).
 */
export function uuidv7(now = Date.now()): string {
  const b = randomBytes(16)
  b.writeUIntBE(now, 0, 6)
  b[6] = (b[6]! & 0x0f) | 0x70
  b[8] = (b[8]! & 0x3f) | 0x80
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}
