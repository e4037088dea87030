/**
 * Streaming record formats of the API's bulk routes: NDJSON (one JSON value per line) and CSV
 * (RFC 4180: a header row, quoted fields may hold commas, quotes and line breaks). Both directions
 * work a chunk at a time, so neither an upload nor an export is ever held whole in memory.
 */

export type RecordFormat = 'csv' | 'ndjson'

export const MEDIA_TYPES: Record<RecordFormat, string> = { csv: 'text/csv', ndjson: 'application/x-ndjson' }

/** What an upload may be given as: bytes or text (already in the format), or records (NDJSON only). */
export type UploadSource<TRecord> =
  | Blob
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string | TRecord>
  | Iterable<Uint8Array | string | TRecord>

/** The upload as a byte stream; records become NDJSON lines. */
export function toByteStream<TRecord>(source: Exclude<UploadSource<TRecord>, Blob>, format: RecordFormat): ReadableStream<Uint8Array> {
  if (source instanceof ReadableStream) return source
  const encoder = new TextEncoder()
  const iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : toAsync(source[Symbol.iterator]())
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await iterator.next()
      if (done) return controller.close()
      if (value instanceof Uint8Array) controller.enqueue(value)
      else if (typeof value === 'string') controller.enqueue(encoder.encode(value))
      else if (format === 'ndjson') controller.enqueue(encoder.encode(JSON.stringify(value) + '\n'))
      else controller.error(new TypeError('A CSV upload takes text or bytes; records can be uploaded as NDJSON'))
    },
    async cancel(reason) {
      await iterator.return?.(reason)
    },
  })
}

async function* toAsync<T>(it: Iterator<T>): AsyncGenerator<T> {
  for (let r = it.next(); !r.done; r = it.next()) yield r.value
}

/** The lines of a byte stream (LF or CRLF), decoded as UTF-8, the last one even without a newline. */
export async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = ''
  for await (const text of decode(body)) {
    rest += text
    let nl: number
    while ((nl = rest.indexOf('\n')) >= 0) {
      yield rest.slice(0, nl).replace(/\r$/, '')
      rest = rest.slice(nl + 1)
    }
  }
  if (rest) yield rest.replace(/\r$/, '')
}

/** NDJSON: one parsed value per non-empty line. */
export async function* parseNdjson<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<T> {
  let n = 0
  for await (const line of lines(body)) {
    n++
    if (line.trim() === '') continue
    try {
      yield JSON.parse(line) as T
    } catch (err) {
      throw new SyntaxError(`NDJSON line ${n} is not JSON: ${(err as Error).message}`)
    }
  }
}

/** CSV with a header row: one object per data row, keyed by the header's column names. */
export async function* parseCsv(body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, string>> {
  let header: string[] | undefined
  for await (const row of csvRows(decode(body))) {
    if (!header) {
      header = row
      continue
    }
    if (row.length === 1 && row[0] === '' && header.length > 1) continue
    const record: Record<string, string> = {}
    header.forEach((name, i) => {
      record[name] = row[i] ?? ''
    })
    yield record
  }
}

/** RFC 4180 rows from text chunks: a field may be quoted ("" is a quote) and then hold commas and line breaks. */
export async function* csvRows(chunks: AsyncIterable<string>): AsyncGenerator<string[]> {
  let row: string[] = []
  let field = ''
  let quoted = false
  let afterQuote = false
  let pendingCr = false
  for await (const chunk of chunks) {
    for (const ch of chunk) {
      if (quoted) {
        if (ch === '"') {
          quoted = false
          afterQuote = true
        } else field += ch
        continue
      }
      if (pendingCr) {
        pendingCr = false
        if (ch === '\n') continue
      }
      if (ch === '"') {
        // "" inside a quoted field: the quote closed a moment ago reopens with a literal quote.
        if (afterQuote) field += '"'
        quoted = true
        afterQuote = false
      } else if (ch === ',') {
        row.push(field)
        field = ''
        afterQuote = false
      } else if (ch === '\n' || ch === '\r') {
        row.push(field)
        yield row
        row = []
        field = ''
        afterQuote = false
        pendingCr = ch === '\r'
      } else {
        field += ch
        afterQuote = false
      }
    }
  }
  if (quoted) throw new SyntaxError('CSV ends inside a quoted field')
  if (field !== '' || row.length) {
    row.push(field)
    yield row
  }
}

/** One CSV line (with its line break) for these values, quoting where needed. */
export function csvLine(values: ReadonlyArray<string | number | boolean | null | undefined>): string {
  return values.map((v) => (v === null || v === undefined ? '' : /[",\r\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v))).join(',') + '\n'
}

async function* decode(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  const reader = body.getReader()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      yield decoder.decode(value, { stream: true })
    }
    const tail = decoder.decode()
    if (tail) yield tail
  } finally {
    reader.releaseLock()
    // An iteration left early (break, throw) stops the download too.
    await body.cancel().catch(() => {})
  }
}
