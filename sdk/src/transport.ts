import { retryAfterSeconds } from './problem.js'

export type TokenProvider = () => string | Promise<string>

export interface RetryOptions {
  /** Retries after the first try (default 3): 429, 503, and network errors. */
  retries?: number
  /** First back-off when the server names no Retry-After, doubled each retry, with jitter (default 250 ms). */
  baseDelayMs?: number
  /** The longest wait the client accepts (default 30 s): a longer Retry-After is answered at once. */
  maxDelayMs?: number
}

export interface TransportOptions {
  token: TokenProvider
  fetch?: typeof fetch
  retry?: RetryOptions | false
  /** How many resources' ETags are remembered for If-Match (default 1000, least recently used dropped). */
  etagCacheSize?: number
}

/** What one request may turn off (streamed uploads cannot be replayed, so they are never retried). */
export interface SendOptions {
  retry?: boolean
  idempotencyKey?: boolean
}

const RETRY_STATUSES = new Set([429, 503])
const UPDATE_METHODS = new Set(['PATCH', 'PUT', 'DELETE'])

/**
 * The fetch every SDK call goes through: the bearer token (asked for on every try, so a refreshed
 * token is used), an Idempotency-Key on every POST that has none (the same key on each retry, so
 * the server replays instead of acting twice), If-Match from the last ETag seen for the resource on
 * PATCH/PUT/DELETE that set none, and bounded retries on 429, 503 and network errors honouring
 * Retry-After.
 */
export class Transport {
  readonly #token: TokenProvider
  readonly #fetch: typeof fetch
  readonly #retry: Required<RetryOptions>
  readonly #etags: EtagCache

  constructor(opts: TransportOptions) {
    this.#token = opts.token
    // Unbound, a browser's fetch throws "Illegal invocation".
    this.#fetch = opts.fetch ?? ((input, init) => globalThis.fetch(input, init))
    const retry = opts.retry === false ? { retries: 0 } : opts.retry ?? {}
    this.#retry = { retries: retry.retries ?? 3, baseDelayMs: retry.baseDelayMs ?? 250, maxDelayMs: retry.maxDelayMs ?? 30_000 }
    this.#etags = new EtagCache(opts.etagCacheSize ?? 1000)
  }

  /** The ETag last seen for a resource path ('/v1/customers/…'), if any. */
  etagOf(path: string): string | undefined {
    return this.#etags.get(normalizePath(path))
  }

  /** A fetch function for the generated client. */
  readonly fetch = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> =>
    this.send(input instanceof Request && !init ? input : new Request(input, init))

  async send(request: Request, opts: SendOptions = {}): Promise<Response> {
    const method = request.method.toUpperCase()
    const url = new URL(request.url)
    const headers = new Headers(request.headers)
    if (method === 'POST' && opts.idempotencyKey !== false && !headers.has('idempotency-key')) headers.set('idempotency-key', randomKey())
    if (UPDATE_METHODS.has(method) && !headers.has('if-match')) {
      const etag = this.#etags.get(normalizePath(url.pathname))
      if (etag) headers.set('if-match', etag)
    }
    const base = new Request(request, { headers })
    const retries = opts.retry === false ? 0 : this.#retry.retries

    for (let attempt = 0; ; attempt++) {
      const last = attempt >= retries
      // A clone per try keeps the body readable for the next one; the last try spends the original.
      const tryRequest = last ? base : base.clone()
      tryRequest.headers.set('authorization', `Bearer ${await this.#token()}`)
      let response: Response
      try {
        response = await this.#fetch(tryRequest)
      } catch (err) {
        if (last || request.signal.aborted) throw err
        await sleep(this.#backoff(attempt), request.signal)
        continue
      }
      const retryable = RETRY_STATUSES.has(response.status) || isKeyInFlight(response, headers)
      if (!retryable || last) {
        this.#remember(method, url, response)
        return response
      }
      const asked = retryAfterSeconds(response.headers.get('retry-after'))
      const delay = asked === undefined ? this.#backoff(attempt) : asked * 1000
      if (delay > this.#retry.maxDelayMs) return response
      await response.body?.cancel()
      await sleep(delay, request.signal)
    }
  }

  #backoff(attempt: number): number {
    const ceiling = Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** attempt)
    return ceiling / 2 + Math.random() * (ceiling / 2)
  }

  #remember(method: string, url: URL, response: Response): void {
    if (!response.ok) return
    const path = normalizePath(url.pathname)
    if (method === 'DELETE') {
      this.#etags.delete(path)
      return
    }
    const etag = response.headers.get('etag')
    if (!etag || etag.startsWith('W/')) return
    // A create (or an upsert) names its resource in Location; a read or an update is the resource itself.
    if (method === 'POST') {
      const location = response.headers.get('location')
      if (location) this.#etags.set(normalizePath(new URL(location, url).pathname), etag)
      return
    }
    this.#etags.set(path, etag)
  }
}

/** The server's answer to a key whose first request is still running: 409 with Retry-After. */
function isKeyInFlight(response: Response, sent: Headers): boolean {
  return response.status === 409 && sent.has('idempotency-key') && response.headers.has('retry-after')
}

function normalizePath(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}

function randomKey(): string {
  return globalThis.crypto.randomUUID()
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** A bounded map, least recently used first out. */
class EtagCache {
  readonly #map = new Map<string, string>()
  constructor(readonly size: number) {}
  get(key: string): string | undefined {
    const v = this.#map.get(key)
    if (v !== undefined) {
      this.#map.delete(key)
      this.#map.set(key, v)
    }
    return v
  }
  set(key: string, value: string): void {
    this.#map.delete(key)
    this.#map.set(key, value)
    while (this.#map.size > this.size) this.#map.delete(this.#map.keys().next().value!)
  }
  delete(key: string): void {
    this.#map.delete(key)
  }
}
