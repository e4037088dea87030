import { connect } from 'node:net'
import { checkReceived } from './conformance.js'

export interface RawResponse {
  status: number
  /** Lower-case names. */
  headers: Record<string, string>
  body: string
}

export interface RawConnection {
  /** Writes one raw HTTP/1.1 request (its request line says what the answer is checked as). */
  send(request: string): void
  /** Ends the writing side (the server answers what it has and closes). */
  end(): void
  /**
   * The answers, in order (framed by Content-Length), once `count` have arrived or the server has
   * closed the connection; each checked against the contract as the request that asked for it.
   */
  responses(count?: number): Promise<RawResponse[]>
}

/**
 * One connection for raw HTTP: requests written when the test chooses (on a connection that is
 * already open, or pipelined), or bytes no client would send. Every answer read goes through the
 * contract checks (helpers/conformance.ts), as those of fetch do (conformingFetch).
 */
export function rawConnection(port: number): RawConnection {
  const socket = connect(port, '127.0.0.1')
  const sent: string[] = []
  let raw = ''
  let closed = false
  let error: Error | undefined
  const waiters = new Set<() => void>()
  const wake = () => waiters.forEach((w) => w())
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => {
    raw += chunk
    wake()
  })
  socket.on('error', (err) => (error = err))
  socket.on('close', () => {
    closed = true
    wake()
  })
  let checked = 0
  const parsed: RawResponse[] = []
  const parse = () => {
    for (;;) {
      const end = raw.indexOf('\r\n\r\n')
      if (end < 0) return
      const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const i = line.indexOf(':')
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
      }
      const framed = headers['transfer-encoding'] === 'chunked' ? dechunk(raw.slice(end + 4)) : undefined
      if (framed === null) return
      const length = framed?.length ?? (headers['content-length'] === undefined ? (closed ? raw.length - end - 4 : Infinity) : Number(headers['content-length']))
      if (raw.length < end + 4 + length) return
      const body = framed?.body ?? raw.slice(end + 4, end + 4 + length)
      parsed.push({ status: Number(statusLine.split(' ')[1]), headers, body: Buffer.from(body, 'latin1').toString('utf8') })
      raw = raw.slice(end + 4 + length)
    }
  }
  return {
    send(request) {
      sent.push(request)
      socket.write(request)
    },
    end: () => socket.end(),
    async responses(count = Infinity) {
      for (;;) {
        parse()
        if (parsed.length >= count || closed) break
        await new Promise<void>((resolve) => {
          const w = () => {
            waiters.delete(w)
            resolve()
          }
          waiters.add(w)
        })
      }
      if (parsed.length === 0 && error) throw error
      for (; checked < parsed.length; checked++) {
        const [method = '', target = ''] = (sent[checked] ?? '').split('\r\n')[0]!.split(' ')
        const res = parsed[checked]!
        checkReceived({ method, url: target, status: res.status, headers: res.headers, body: res.body })
      }
      return parsed.slice(0, Math.min(parsed.length, count))
    },
  }
}

/** A chunked body (RFC 9112 section 7.1, no trailers): its bytes and how much of the input it took; null while incomplete. */
function dechunk(input: string): { body: string; length: number } | null {
  let body = ''
  let at = 0
  for (;;) {
    const eol = input.indexOf('\r\n', at)
    if (eol < 0) return null
    const size = parseInt(input.slice(at, eol), 16)
    if (Number.isNaN(size)) return { body, length: input.length }
    if (size === 0) return input.length >= eol + 4 ? { body, length: eol + 4 } : null
    if (input.length < eol + 2 + size + 2) return null
    body += input.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
}

/** Writes the requests to one connection at once, ends it, and answers every response. */
export async function rawExchange(port: number, requests: string[]): Promise<RawResponse[]> {
  const connection = rawConnection(port)
  for (const request of requests) connection.send(request)
  connection.end()
  return connection.responses()
}

/** Whether the server still accepts connections (a closed listener refuses them). */
export function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
