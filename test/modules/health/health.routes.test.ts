import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()

t.test('healthz and readyz answer ok on a migrated database', async (t) => {
  const live = await ctx.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(live.statusCode, 200)
  t.same(live.json(), { status: 'ok' })
  const ready = await ctx.app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.ok(ready.headers['x-request-id'])
})

t.test('unknown route is a 404 problem, known path with another method a 405', async (t) => {
  const nf = await ctx.app.inject({ method: 'GET', url: '/nope' })
  t.equal(nf.statusCode, 404)
  t.match(nf.headers['content-type'], /application\/problem\+json/)
  t.match(nf.json(), { status: 404, title: 'Not Found', instance: '/nope' })
  const na = await ctx.app.inject({ method: 'DELETE', url: '/healthz' })
  t.equal(na.statusCode, 405)
  t.equal(na.headers.allow, 'GET')
})
