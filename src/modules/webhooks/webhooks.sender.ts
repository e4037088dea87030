import http from 'node:http'
import https from 'node:https'
import { isIP } from 'node:net'
import { guardedLookup, hostOf, refusedAddress, RefusedTargetError, type TargetPolicy } from './webhooks.ssrf.js'

/** What one HTTP attempt of a delivery came to. */
export interface AttemptOutcome {
  /** The receiver's status; null when it did not answer. */
  statusCode: number | null
  latencyMs: number
  /** The start of the answer's body (at most EXCERPT_CHARS characters). */
  excerpt: string | null
  /** Why there was no answer (timeout, connection refused, target refused). */
  error: string | null
}

export const EXCERPT_CHARS = 1000
const MAX_READ_BYTES = 16 * 1024

export interface SenderOptions {
  policy: TargetPolicy
  timeoutMs: number
  /** Connections per receiver origin (the worker's concurrency: each send in flight may use one). */
  maxSockets?: number
}

/**
 * POSTs one signed delivery. The connection goes to an address the SSRF guard judged at this
 * moment (the lookup hook resolves and checks; an IP literal is checked here, since node:net does
 * not look literals up). Redirects are not followed: a 3xx is a failed attempt like a 5xx (a
 * redirect could lead anywhere the guard would refuse). Keep-alive agents are per sender.
 */
export function createSender(opts: SenderOptions) {
  const lookup = guardedLookup(opts.policy)
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 }),
    'https:': new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 }),
  }

  function send(target: string, headers: Record<string, string>, body: string): Promise<AttemptOutcome> {
    const started = performance.now()
    const elapsed = () => Math.round(performance.now() - started)
    return new Promise<AttemptOutcome>((resolve) => {
      let settled = false
      const done = (outcome: Omit<AttemptOutcome, 'latencyMs'>) => {
        if (settled) return
        settled = true
        resolve({ ...outcome, latencyMs: elapsed() })
      }
      let url: URL
      try {
        url = new URL(target)
      } catch {
        return done({ statusCode: null, excerpt: null, error: 'the subscription URL is not a URL' })
      }
      const host = hostOf(url)
      if (isIP(host)) {
        const why = refusedAddress(host, opts.policy)
        if (why) return done({ statusCode: null, excerpt: null, error: new RefusedTargetError(`webhook target refused: ${why}`).message })
      }
      const client = url.protocol === 'https:' ? https : http
      const agent = agents[url.protocol as 'http:' | 'https:']
      if (!agent) return done({ statusCode: null, excerpt: null, error: `unsupported scheme ${url.protocol}` })
      const request = client.request(url, {
        method: 'POST',
        agent,
        lookup: lookup as unknown as http.RequestOptions['lookup'],
        timeout: opts.timeoutMs,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'crm-api-webhooks/1',
          ...headers,
        },
      }, (response) => {
        const chunks: Buffer[] = []
        let read = 0
        const finish = () => {
          const excerpt = Buffer.concat(chunks).toString('utf8').slice(0, EXCERPT_CHARS)
          done({ statusCode: response.statusCode ?? null, excerpt, error: null })
        }
        response.on('data', (chunk: Buffer) => {
          if (read >= MAX_READ_BYTES) return
          chunks.push(chunk)
          read += chunk.length
          if (read >= MAX_READ_BYTES) {
            finish()
            response.destroy()
          }
        })
        response.on('end', finish)
        response.on('error', finish)
        response.on('close', finish)
      })
      // A whole-attempt deadline as well: `timeout` only covers idle sockets.
      const deadline = setTimeout(() => request.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs)
      deadline.unref()
      request.on('timeout', () => request.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)))
      request.on('error', (err: NodeJS.ErrnoException) => done({ statusCode: null, excerpt: null, error: err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message }))
      request.on('close', () => clearTimeout(deadline))
      request.end(body)
    })
  }

  return {
    send,
    close() {
      agents['http:'].destroy()
      agents['https:'].destroy()
    },
  }
}

export type Sender = ReturnType<typeof createSender>
