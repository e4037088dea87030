import { randomBytes } from 'node:crypto'
import { Webhook } from 'standardwebhooks'

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com), made by the specification's
 * reference library: `webhook-signature` is `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`,
 * one per secret, separated by spaces. During a rotation's overlap a delivery carries a signature
 * with the new and with the old secret, so a receiver that still has either verifies it.
 */
export const newSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`

const signers = new Map<string, Webhook>()
const signerFor = (secret: string) => {
  let signer = signers.get(secret)
  if (!signer) {
    if (signers.size > 10_000) signers.clear()
    signer = new Webhook(secret)
    signers.set(secret, signer)
  }
  return signer
}

export interface SignedHeaders {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

export function signedHeaders(id: string, at: Date, body: string, secrets: readonly string[]): SignedHeaders {
  if (secrets.length === 0) throw new Error(`webhook ${id}: no signing secret`)
  // Seconds: the library signs the truncated timestamp, which is what the header carries.
  const timestamp = new Date(Math.floor(at.getTime() / 1000) * 1000)
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp.getTime() / 1000),
    'webhook-signature': secrets.map((secret) => signerFor(secret).sign(id, timestamp, body)).join(' '),
  }
}
