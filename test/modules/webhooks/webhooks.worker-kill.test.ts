import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { setup } from '../../helpers/app.js'
import { startReceiver, type Answer } from '../../helpers/receiver.js'

/**
 * `npm run worker` processes on one database: a worker killed (SIGKILL) in the middle of a
 * delivery loses its lease when it lapses, and a restarted worker delivers the event (same
 * webhook-id: at least once). SIGTERM drains: the delivery in flight finishes and is recorded
 * before the process exits.
 */
const ctx = await setup({ app: { webhooks: { allowedHosts: '127.0.0.0/8' } } })
const admin = await ctx.auth()

function startWorker(): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/worker.ts'], {
    env: {
      ...process.env, DATABASE_URL: ctx.url, LOG_LEVEL: 'warn', WEBHOOK_ALLOWED_HOSTS: '127.0.0.0/8',
      WEBHOOK_POLL_MS: '50', WEBHOOK_TIMEOUT_MS: '1500', WEBHOOK_LEASE_MS: '2500', WEBHOOK_BACKOFF_BASE_MS: '50', SHUTDOWN_GRACE_MS: '5000',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return child
}
const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode })
    else child.once('exit', (code, signal) => resolve({ code, signal }))
  })

let answer: (index: number) => Answer = () => 204
const receiver = await startReceiver((_r, i) => answer(i))
const sub = (await ctx.app.inject({ method: 'POST', url: '/v1/webhook-subscriptions', headers: admin, payload: { url: receiver.url, event_types: ['customer.created'] } })).json()
const createCustomer = async (name: string) => (await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name } })).json().id as string
const delivery = async (entityId: string) =>
  (await ctx.ownerDb.selectFrom('webhook_deliveries').selectAll().where('entity_id', '=', entityId).executeTakeFirst())!

t.test('a worker killed mid-delivery: the event is delivered after a restart', async (t) => {
  answer = (i) => (i === 0 ? 'hang' : 204)
  const first = startWorker()
  const id = await createCustomer('Killed Mid-Delivery')
  await receiver.until((r) => r.length >= 1, 30_000)
  first.kill('SIGKILL')
  t.equal((await exited(first)).signal, 'SIGKILL')
  t.equal((await delivery(id)).status, 'pending', 'the killed worker recorded nothing')

  const second = startWorker()
  await receiver.until((r) => r.length >= 2, 30_000)
  t.equal(receiver.received[1]!.headers['webhook-id'], receiver.received[0]!.headers['webhook-id'], 'the same delivery, the same webhook-id')
  for (let i = 0; i < 100 && (await delivery(id)).status !== 'succeeded'; i++) await new Promise((r) => setTimeout(r, 50))
  t.match(await delivery(id), { status: 'succeeded', attempts: 1, last_status_code: 204 })

  // SIGTERM while a delivery is in flight: it finishes and is recorded, then the process exits.
  answer = () => ({ status: 204, delayMs: 500 })
  const before = receiver.received.length
  const drained = await createCustomer('Drained On Shutdown')
  await receiver.until((r) => r.length > before, 30_000)
  second.kill('SIGTERM')
  t.match(await exited(second), { code: 0 }, 'the worker exits cleanly')
  t.match(await delivery(drained), { status: 'succeeded', attempts: 1, lease_owner: null }, 'the in-flight delivery was recorded before exit')
})
