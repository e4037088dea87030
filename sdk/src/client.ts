import { createClient, createConfig, type Client } from './generated/client/index.js'
import { CrmApi } from './generated/sdk.gen.js'
import type { Customer, CustomerImportRow, ImportJob } from './generated/types.gen.js'
import { CrmEvents } from './events.js'
import { CrmProblem } from './problem.js'
import { MEDIA_TYPES, parseCsv, parseNdjson, toByteStream, type RecordFormat, type UploadSource } from './records.js'
import { Transport, type RetryOptions, type TokenProvider } from './transport.js'

export interface CrmClientOptions {
  /** Where the API is, e.g. 'https://crm.example.com' (the operations' paths start with /v1). */
  baseUrl: string
  /** Called before every request (and retry): return a current access token. */
  token: TokenProvider
  /** Bounded retries on 429, 503 and network errors, honouring Retry-After; false: none. */
  retry?: RetryOptions | false
  /** Another fetch (a test double, a proxy agent); default: the global one. */
  fetch?: typeof fetch
  /** Headers sent with every request (e.g. X-Correlation-Id). */
  headers?: Record<string, string>
}

/** One page of any list operation. */
export interface Page<T> {
  data: T[]
  next_cursor?: string | null
}

export interface ImportOptions {
  format: RecordFormat
  /** Wait for the job to finish (default true); false answers the job as accepted (status receiving or merging). */
  wait?: boolean
  /** Polling interval while waiting (default 250 ms) and the longest wait (default 10 minutes). */
  pollIntervalMs?: number
  timeoutMs?: number
  signal?: AbortSignal
}

const FINISHED: ReadonlyArray<ImportJob['status']> = ['succeeded', 'failed']

/**
 * The crm-api client: every operation of the contract as a method (generated: listCustomers,
 * createCustomer, updateCustomer, ...), each answering { data, response } or throwing a CrmProblem,
 * plus pagination, the change feed, streaming imports and exports.
 */
export class CrmClient extends CrmApi {
  readonly transport: Transport
  /** The change feed: `events.read()` one page, `events.follow()` every event as it commits. */
  readonly events: CrmEvents
  readonly #baseUrl: string

  constructor(opts: CrmClientOptions) {
    const transport = new Transport({ token: opts.token, fetch: opts.fetch, retry: opts.retry })
    const client = createClient(createConfig({ baseUrl: opts.baseUrl, fetch: transport.fetch, throwOnError: true, headers: opts.headers }))
    client.interceptors.error.use(toProblem)
    super({ client })
    this.transport = transport
    this.events = new CrmEvents(this)
    this.#baseUrl = opts.baseUrl.replace(/\/+$/, '')
  }

  /** The generated client underneath (its interceptors, buildUrl). */
  get http(): Client {
    return this.client
  }

  /** The ETag last seen for a resource path (sent as If-Match on its next update unless you set one). */
  etagOf(path: string): string | undefined {
    return this.transport.etagOf(path)
  }

  /**
   * Every item of a cursor-paginated list, page after page, fetched as you iterate:
   * `for await (const c of crm.paginate((cursor) => crm.listCustomers({ query: { cursor, limit: 200 } })))`.
   */
  async *paginate<T>(page: (cursor: string | undefined) => Promise<{ data: Page<T> }>): AsyncGenerator<T, void, undefined> {
    let cursor: string | undefined
    do {
      const { data } = await page(cursor)
      yield* data.data
      cursor = data.next_cursor ?? undefined
    } while (cursor)
  }

  /**
   * Streams an upload into POST /v1/imports (CSV with a header line, or NDJSON: one
   * CustomerImportRow per line; records given as objects are written as NDJSON) and, unless
   * wait is false, polls the job until it has finished. Uploads are not retried (a stream cannot
   * be replayed; re-importing rows with an external_ref changes nothing twice).
   */
  async importCustomers(source: UploadSource<CustomerImportRow>, opts: ImportOptions): Promise<ImportJob> {
    const body = source instanceof Blob ? source : await streamBody(toByteStream(source, opts.format))
    const request = new Request(`${this.#baseUrl}/v1/imports?kind=customers`, {
      method: 'POST',
      headers: { 'content-type': MEDIA_TYPES[opts.format], accept: 'application/json' },
      body,
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
      signal: opts.signal ?? null,
    } as RequestInit)
    const response = await this.transport.send(request, { retry: false, idempotencyKey: false })
    const job = (await json(response)) as ImportJob
    return opts.wait === false ? job : this.waitForImport(job.id, opts)
  }

  /** Polls an import job until it has succeeded or failed. */
  async waitForImport(id: string, opts: Pick<ImportOptions, 'pollIntervalMs' | 'timeoutMs' | 'signal'> = {}): Promise<ImportJob> {
    const deadline = Date.now() + (opts.timeoutMs ?? 600_000)
    for (;;) {
      const { data: job } = await this.getImport({ path: { id }, signal: opts.signal ?? null })
      if (FINISHED.includes(job.status)) return job
      if (Date.now() > deadline) throw new Error(`import ${id} is still ${job.status} after ${opts.timeoutMs ?? 600_000} ms`)
      await new Promise((r) => setTimeout(r, opts.pollIntervalMs ?? 250))
    }
  }

  /**
   * The customers in a segment, streamed (GET /v1/segments/{id}/export) and parsed as they
   * arrive: NDJSON gives Customer records, CSV one object per row keyed by the header's columns.
   */
  exportSegment(id: string, opts: { format: 'ndjson'; signal?: AbortSignal }): AsyncGenerator<Customer, void, undefined>
  exportSegment(id: string, opts: { format: 'csv'; signal?: AbortSignal }): AsyncGenerator<Record<string, string>, void, undefined>
  async *exportSegment(id: string, opts: { format: RecordFormat; signal?: AbortSignal }): AsyncGenerator<Customer | Record<string, string>, void, undefined> {
    const url = `${this.#baseUrl}/v1/segments/${encodeURIComponent(id)}/export?format=${opts.format}`
    const response = await this.transport.send(new Request(url, { headers: { accept: MEDIA_TYPES[opts.format] }, signal: opts.signal ?? null }))
    if (!response.ok) throw await problemOf(response)
    if (!response.body) return
    yield* opts.format === 'ndjson' ? parseNdjson<Customer>(response.body) : parseCsv(response.body)
  }
}

/** A client for one API and one token provider. */
export function createCrmClient(opts: CrmClientOptions): CrmClient {
  return new CrmClient(opts)
}

/** The If-Match header for a record you hold (its version), for an update that must not overwrite a newer one. */
export function ifMatch(record: { version: number }): { 'If-Match': string } {
  return { 'If-Match': `"${record.version}"` }
}

/** Error interceptor of the generated client: an HTTP error becomes a CrmProblem; a network error stays as it is. */
function toProblem(error: unknown, response: Response | undefined): unknown {
  return response && !response.ok ? new CrmProblem(response.status, error, response.headers) : error
}

async function problemOf(response: Response): Promise<CrmProblem> {
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON: the text is the detail
  }
  return new CrmProblem(response.status, body, response.headers)
}

async function json(response: Response): Promise<unknown> {
  if (!response.ok) throw await problemOf(response)
  return response.json()
}

/**
 * Fetch streams a request body only where the platform can (Node, Deno, Chromium over HTTP/2);
 * elsewhere the upload is collected into a Blob first, so it still works, in memory.
 */
async function streamBody(stream: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array> | Blob> {
  return supportsRequestStreams() ? stream : new Response(stream).blob()
}

let requestStreams: boolean | undefined
function supportsRequestStreams(): boolean {
  if (requestStreams === undefined) {
    let duplexAccessed = false
    try {
      const hasContentType = new Request('http://localhost/', {
        body: new ReadableStream(),
        method: 'POST',
        get duplex() {
          duplexAccessed = true
          return 'half'
        },
      } as RequestInit).headers.has('Content-Type')
      requestStreams = duplexAccessed && !hasContentType
    } catch {
      requestStreams = false
    }
  }
  return requestStreams
}
