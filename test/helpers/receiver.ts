import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'

export interface Received {
  headers: IncomingHttpHeaders
  body: string
  at: number
}

/** What the receiver answers a request with: a status, a status after a delay, or 'hang' (never answer). */
export type Answer = number | 'hang' | { status: number; delayMs: number }

/**
 * A real HTTP server that receives webhooks: it records every request and answers what `answer`
 * says (default 204). Closed when the test file ends.
 */
export async function startReceiver(answer: (req: Received, index: number) => Answer = () => 204) {
  const received: Received[] = []
  const waiters: Array<() => void> = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() }
      const index = received.push(r) - 1
      for (const w of waiters.splice(0)) w()
      const a = answer(r, index)
      if (a === 'hang') return
      const [status, delayMs] = typeof a === 'number' ? [a, 0] : [a.status, a.delayMs]
      const reply = () => res.writeHead(status, { 'content-type': 'text/plain' }).end(status >= 200 && status < 300 ? '' : `failure ${status}`)
      if (delayMs > 0) setTimeout(reply, delayMs)
      else reply()
    })
  })
  server.keepAliveTimeout = 100
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const close = () => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
  t.teardown(close)
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    received,
    close,
    /** Resolves once `predicate` holds over what was received (checked on each arrival), or rejects after `ms`. */
    async until(predicate: (received: Received[]) => boolean, ms = 20_000): Promise<void> {
      const deadline = Date.now() + ms
      while (!predicate(received)) {
        if (Date.now() > deadline) throw new Error(`receiver: condition not met within ${ms} ms (${received.length} received)`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 100).unref()
        })
      }
    },
  }
}
