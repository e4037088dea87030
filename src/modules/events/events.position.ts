/**
 * A place in the change feed: the writing transaction's id (xid8, as decimal text) and the
 * event's sequence number. The feed's order is (txid, seq); why that order never lets a late
 * commit appear behind a reader is explained in migrations/20261204T211000_events.ts.
 *
 * Clients see an opaque string: base64url of "e1.<txid>.<seq>". The prefix versions the format.
 */
export interface Position {
  txid: string
  seq: number
}

/** Before every event. */
export const FEED_START: Position = { txid: '0', seq: 0 }

const PREFIX = 'e1.'
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/
const MAX_XID8 = 18446744073709551615n

export function encodePosition(p: Position): string {
  return Buffer.from(`${PREFIX}${p.txid}.${p.seq}`, 'utf8').toString('base64url')
}

/** The position a string encodes, or null when it is not one this server wrote. */
export function decodePosition(value: string): Position | null {
  if (value.length > 64 || !/^[A-Za-z0-9_-]+$/.test(value)) return null
  const text = Buffer.from(value, 'base64url').toString('utf8')
  if (!text.startsWith(PREFIX)) return null
  const [txid, seq, ...rest] = text.slice(PREFIX.length).split('.')
  if (rest.length || !txid || !seq || !DECIMAL.test(txid) || !DECIMAL.test(seq)) return null
  if (BigInt(txid) > MAX_XID8 || !Number.isSafeInteger(Number(seq))) return null
  return { txid, seq: Number(seq) }
}

/** a < b in feed order. */
export function positionBefore(a: Position, b: Position): boolean {
  const ta = BigInt(a.txid)
  const tb = BigInt(b.txid)
  return ta < tb || (ta === tb && a.seq < b.seq)
}
