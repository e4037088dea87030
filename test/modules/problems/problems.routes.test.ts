import t from 'tap'
import fp from 'fastify-plugin'
import { buildTestApp, setup } from '../../helpers/app.js'
import { HttpProblem } from '../../../src/lib/problem.js'
import { PROBLEM_CODES, PROBLEM_TYPES, type ProblemCode } from '../../../src/lib/problem-types.js'
import { negotiate } from '../../../src/modules/problems/problems.pages.js'

/** Routes that answer what no real route should: a problem outside the registry, an unmapped framework 4xx. */
const rogue = fp(async (app) => {
  app.get('/test/unregistered', { config: { scope: 'public' } }, async () => {
    throw new HttpProblem('teapot' as ProblemCode)
  })
  app.get('/test/unmapped-4xx', { config: { scope: 'public' } }, async () => {
    throw Object.assign(new Error('I am a teapot'), { statusCode: 418, code: 'FST_ERR_SOMETHING_NEW' })
  })
})

const ctx = await setup({ plugins: [rogue] })
const json = { accept: 'application/json' }

t.test('every registered code has its page: HTML with title, status, description, what to do and an example', async (t) => {
  t.ok(PROBLEM_CODES.length >= 50, `${PROBLEM_CODES.length} codes`)
  for (const code of PROBLEM_CODES) {
    const entry = PROBLEM_TYPES[code]
    const res = await ctx.app.inject({ url: `/problems/${code}` })
    t.equal(res.statusCode, 200, code)
    t.match(res.headers['content-type'], /^text\/html; charset=utf-8/)
    t.match(res.headers['cache-control'], /public/)
    t.notOk(res.headers['cache-control']?.toString().includes('no-store'))
    const html = res.body
    for (const text of [`<h1>${escapeHtml(entry.title)}</h1>`, `<code>${code}</code>`, `<strong>${entry.status}</strong>`, escapeHtml(`"detail": ${JSON.stringify(entry.example.detail)}`)]) {
      t.ok(html.includes(text), `${code}: the page shows ${text.slice(0, 40)}`)
    }
    t.ok(html.includes('When it happens') && html.includes('What to do') && html.includes('Example'), code)
    t.notOk(/<script/i.test(html), 'no script')
    t.ok(entry.description.length > 20 && entry.action.length > 10, `${code}: described`)
  }
})

t.test('the JSON representation is the registry entry; the index lists every code in registry order', async (t) => {
  for (const code of PROBLEM_CODES) {
    const res = await ctx.app.inject({ url: `/problems/${code}`, headers: json })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    const { status, title, description, action } = PROBLEM_TYPES[code]
    t.match(res.json(), { code, type: `/problems/${code}`, status, title, description, action })
  }
  const index = await ctx.app.inject({ url: '/problems', headers: json })
  t.equal(index.statusCode, 200)
  t.same(index.json().data.map((e: { code: string }) => e.code), PROBLEM_CODES)
  t.equal(index.json().next_cursor, null)
  const html = await ctx.app.inject({ url: '/problems' })
  t.match(html.headers['content-type'], /^text\/html/)
  for (const code of PROBLEM_CODES) t.ok(html.body.includes(`href="/problems/${code}"`), `the index links ${code}`)
  t.match(html.headers['content-security-policy'], /style-src 'sha256-/, 'the page allows its own style, nothing else')
  t.match(html.headers['content-security-policy'], /default-src 'none'/)
})

t.test('the type URI of a problem a route answers resolves to its page', async (t) => {
  const missing = await ctx.app.inject({ url: '/v1/customers/0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', headers: await ctx.auth() })
  t.equal(missing.statusCode, 404)
  const problem = missing.json()
  t.match(problem, { code: 'not-found', type: '/problems/not-found' })
  const page = await ctx.app.inject({ url: new URL(problem.type, 'http://localhost/v1/customers/x').pathname, headers: json })
  t.equal(page.statusCode, 200)
  t.equal(page.json().code, problem.code)
  t.equal(page.json().status, problem.status)
  t.equal(page.json().title, problem.title, 'the title is the type\'s, the same on every occurrence')
})

t.test('the pages are public, and unknown codes are problems themselves', async (t) => {
  const unknown = await ctx.app.inject({ url: '/problems/no-such-code', headers: json })
  t.equal(unknown.statusCode, 404)
  t.match(unknown.headers['content-type'], /^application\/problem\+json/)
  t.equal(unknown.json().code, 'not-found')
  const bad = await ctx.app.inject({ url: '/problems/Not_A_Code' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'validation-failed')
  const proto = await ctx.app.inject({ url: '/problems/constructor' })
  t.equal(proto.statusCode, 404, 'an Object.prototype name is no code')
})

t.test('content negotiation: HTML unless JSON is preferred', async (t) => {
  t.equal(negotiate(undefined), 'text/html')
  t.equal(negotiate('*/*'), 'text/html')
  t.equal(negotiate('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), 'text/html', 'a browser')
  t.equal(negotiate('application/json'), 'application/json')
  t.equal(negotiate('application/problem+json'), 'application/json')
  t.equal(negotiate('text/html;q=0.5, application/json'), 'application/json')
  t.equal(negotiate('application/*'), 'application/json')
  t.equal(negotiate('text/html, application/json;q=0'), 'text/html')
  t.equal(negotiate('image/png'), 'text/html', 'nothing acceptable: the page, not a 406')
})

t.test('a problem outside the registry never reaches a client: strict (tests) and not', async (t) => {
  const unregistered = await ctx.app.inject({ url: '/test/unregistered' })
  t.equal(unregistered.statusCode, 500)
  t.equal(unregistered.json().code, 'internal-server-error')
  t.notOk(unregistered.body.includes('teapot'))
  const unmapped = await ctx.app.inject({ url: '/test/unmapped-4xx' })
  t.equal(unmapped.statusCode, 500, 'strict: an unmapped framework error is a gap the test must see')

  const lenient = await buildTestApp(ctx.db, { plugins: [rogue], app: { strictProblems: false } })
  t.teardown(() => lenient.close())
  await lenient.ready()
  const served = await lenient.inject({ url: '/test/unmapped-4xx' })
  t.equal(served.statusCode, 400)
  t.match(served.json(), { code: 'request-rejected', type: '/problems/request-rejected' })
  t.notOk(served.body.includes('teapot') || served.body.includes('FST_'))
  t.equal((await lenient.inject({ url: '/test/unregistered' })).statusCode, 500, 'an unregistered code is a 500 in production too')
})

t.test('with a public URL, type URIs are absolute and resolve to the pages', async (t) => {
  const app = await buildTestApp(ctx.db, { app: { publicUrl: 'https://crm.example.com/api/' } })
  t.teardown(() => app.close())
  await app.ready()
  const res = await app.inject({ url: '/v1/nothing-here' })
  t.match(res.json(), { code: 'route-not-found', type: 'https://crm.example.com/api/problems/route-not-found' })
  const entry = await app.inject({ url: '/problems/route-not-found', headers: json })
  t.equal(entry.json().type, res.json().type)
  t.ok((await app.inject({ url: '/problems' })).body.includes('href="https://crm.example.com/api/problems/route-not-found"'))
})

t.test('the contract declares the pages and lists every code in Problem.code', async (t) => {
  const doc = (await ctx.app.inject({ url: '/openapi.json' })).json()
  t.equal(doc.paths['/problems']?.get?.operationId, 'listProblemTypes')
  t.equal(doc.paths['/problems/{code}']?.get?.operationId, 'getProblemType')
  for (const path of ['/problems', '/problems/{code}']) {
    t.same(Object.keys(doc.paths[path].get.responses['200'].content).sort(), ['application/json', 'text/html'])
    t.same(doc.paths[path].get.security, [], `${path} needs no token`)
  }
  t.same(doc.components.schemas.Problem.properties.code.enum, PROBLEM_CODES)
})

t.test('titles and codes are one-to-one, codes are URL-safe, statuses are errors', async (t) => {
  const titles = new Set<string>()
  for (const code of PROBLEM_CODES) {
    const { status, title } = PROBLEM_TYPES[code]
    t.match(code, /^[a-z0-9]+(-[a-z0-9]+)*$/)
    t.ok(status >= 400 && status <= 599, `${code}: ${status}`)
    t.notOk(titles.has(title), `${code}: its own title`)
    titles.add(title)
    t.equal(new HttpProblem(code).status, status)
  }
  // @ts-expect-error a code outside the registry is a type error
  t.throws(() => new HttpProblem('bad-request'))
})

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}
