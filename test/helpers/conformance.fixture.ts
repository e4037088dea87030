/**
 * Run by conformance.test.ts as a test file of its own, which must FAIL: a server answering outside
 * the committed contract, reached by conformingFetch and by rawExchange. Not a test of the suite
 * (its name does not end in .test.ts).
 */
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { conformingFetch } from './conformance.js'
import { rawExchange } from './raw-http.js'

// GET /healthz is declared 200 with a Health body ({ status: string }) and X-Request-Id required.
const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"state":1}'))
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
const port = (server.address() as AddressInfo).port

t.test('fetch', async (t) => {
  t.equal((await conformingFetch(`http://127.0.0.1:${port}/healthz`)).status, 200)
})

t.test('raw', async (t) => {
  const [res] = await rawExchange(port, ['GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'])
  t.equal(res?.status, 200)
})
