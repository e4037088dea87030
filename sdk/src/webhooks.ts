import type { Event } from './generated/types.gen.js'

/** What a webhook delivery's body is: the Standard Webhooks envelope around the event as the change feed shows it (personal data masked). */
export interface WebhookPayload {
  type: string
  timestamp: string
  data: Event
}

/** A delivery's headers: a fetch `Headers`, or a plain object with any case of names (Node's `req.headers`). */
export type WebhookHeaders = Headers | Readonly<Record<string, string | readonly string[] | undefined>>

export interface VerifyWebhookOptions {
  /** The subscription's signing secret (`whsec_<base64>`); during a rotation both the new and the old one. */
  secrets: string | readonly string[]
  headers: WebhookHeaders
  /** The body exactly as received (bytes or text), never a re-serialised object: the signature is over these bytes. */
  body: string | Uint8Array | ArrayBuffer
  /** How far webhook-timestamp may be from now, either way (default 300 s), so that a captured delivery cannot be replayed later. */
  toleranceSeconds?: number
  /** The time to check the timestamp against (default: now). */
  now?: Date | number
}

export type WebhookVerificationReason =
  | 'missing-header'
  | 'invalid-timestamp'
  | 'timestamp-too-old'
  | 'timestamp-too-new'
  | 'invalid-signature'
  | 'invalid-payload'

/** A delivery that does not verify: answer it with a 4xx and do not act on it. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError'
  readonly reason: WebhookVerificationReason

  constructor(reason: WebhookVerificationReason, message: string) {
    super(message)
    this.reason = reason
  }
}

const DEFAULT_TOLERANCE_S = 300
const SECRET_PREFIX = 'whsec_'
const MAC_BYTES = 32

/**
 * Verifies a webhook delivery per the Standard Webhooks specification and answers its parsed
 * body: the HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" under one of `secrets` must
 * equal one of the `v1,<base64>` signatures in webhook-signature (space-separated: one per secret
 * the sender holds during a rotation), compared in constant time, and webhook-timestamp must be
 * within `toleranceSeconds` of now. Throws a WebhookVerificationError (`reason`) otherwise; a
 * malformed secret is a TypeError (configuration, not an attack). WebCrypto only, so it runs in
 * browsers, workers, Deno, Bun and Node 20+. Deduplicate on webhook-id: a retry repeats it.
 */
export async function verifyWebhook<T = WebhookPayload>(opts: VerifyWebhookOptions): Promise<T> {
  const secrets = typeof opts.secrets === 'string' ? [opts.secrets] : opts.secrets
  if (secrets.length === 0) throw new TypeError('verifyWebhook: no secret given')
  const keys = await Promise.all(secrets.map(hmacKey))

  const id = header(opts.headers, 'webhook-id')
  const timestampText = header(opts.headers, 'webhook-timestamp')
  const signatures = header(opts.headers, 'webhook-signature')
  if (!id || !timestampText || !signatures) {
    throw new WebhookVerificationError('missing-header', 'webhook-id, webhook-timestamp and webhook-signature are required')
  }
  const timestamp = checkTimestamp(timestampText, opts)

  const body = toBytes(opts.body)
  const signed = concat(utf8(`${id}.${timestamp}.`), body)
  const candidates = signatures.split(' ').flatMap((s) => (s.startsWith('v1,') ? [fromBase64(s.slice(3))] : []))
  let valid = false
  for (const key of keys) {
    const expected = new Uint8Array(await subtle().sign('HMAC', key, signed))
    for (const candidate of candidates) if (candidate && timingSafeEqual(candidate, expected)) valid = true
  }
  if (!valid) throw new WebhookVerificationError('invalid-signature', 'no webhook-signature matches the body under the given secrets')

  try {
    return JSON.parse(new TextDecoder().decode(body)) as T
  } catch {
    throw new WebhookVerificationError('invalid-payload', 'the signed body is not JSON')
  }
}

function checkTimestamp(text: string, opts: VerifyWebhookOptions): number {
  if (!/^\d{1,15}$/.test(text)) throw new WebhookVerificationError('invalid-timestamp', 'webhook-timestamp is not a number of seconds')
  const timestamp = Number(text)
  const now = Math.floor((opts.now === undefined ? Date.now() : Number(opts.now)) / 1000)
  const tolerance = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_S
  if (now - timestamp > tolerance) throw new WebhookVerificationError('timestamp-too-old', `webhook-timestamp is more than ${tolerance} s old`)
  if (timestamp - now > tolerance) throw new WebhookVerificationError('timestamp-too-new', `webhook-timestamp is more than ${tolerance} s ahead`)
  return timestamp
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name || value === undefined) continue
    return typeof value === 'string' ? value : value.join(' ')
  }
  return undefined
}

/** Imported keys by secret: a receiver verifies every delivery with the same one or two. */
const keyCache = new Map<string, Promise<CryptoKey>>()

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret)
  if (!key) {
    const raw = fromBase64(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret)
    if (!raw || raw.length === 0) throw new TypeError('verifyWebhook: a secret is not whsec_<base64>')
    key = subtle().importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    if (keyCache.size >= 100) keyCache.clear()
    keyCache.set(secret, key)
  }
  return key
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle
  // Browsers offer WebCrypto only in secure contexts (https, localhost).
  if (!s) throw new Error('verifyWebhook needs WebCrypto (globalThis.crypto.subtle): Node 20+, or a browser page served over https')
  return s
}

/** Compares every byte whatever the first difference, so the time taken says nothing about where it is. */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== MAC_BYTES || b.length !== MAC_BYTES) return false
  let diff = 0
  for (let i = 0; i < MAC_BYTES; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  try {
    const binary = atob(text)
    const out = new Uint8Array(binary.length)
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
    return out
  } catch {
    return undefined
  }
}

function toBytes(body: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof body === 'string') return utf8(body)
  return body instanceof Uint8Array ? body : new Uint8Array(body)
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
