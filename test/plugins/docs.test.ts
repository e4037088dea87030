import t from 'tap'
import { setup } from '../helpers/app.js'
import { TAGS } from '../../src/plugins/openapi-tags.js'
import { uiDocument } from '../../src/plugins/docs-document.js'

/** The tags and the document Swagger UI shows (the browser itself: docs.browser.test.ts). */
const ctx = await setup()
type Doc = { tags: Array<{ name: string; description?: string }>; paths: Record<string, Record<string, { tags?: string[]; operationId: string }>>; info: { description: string }; servers: Array<{ url: string }> }
const contract = (await ctx.app.inject({ method: 'GET', url: '/openapi.json' })).json() as Doc
const ui = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json() as Doc
const used = new Set(Object.values(contract.paths).flatMap((item) => Object.values(item).flatMap((op) => op.tags ?? [])))

t.test('every tag an operation uses is declared, described, in the domain order of plugins/openapi-tags.ts', async (t) => {
  const declared = contract.tags.map((tag) => tag.name)
  for (const tag of used) t.ok(declared.includes(tag), `tag "${tag}" is declared (src/plugins/openapi-tags.ts)`)
  for (const tag of contract.tags) t.ok((tag.description ?? '').length > 10, `tag "${tag.name}" has a description`)
  t.same(declared, TAGS.map((tag) => tag.name), 'the contract keeps the order')
  t.same(ui.tags.map((tag) => tag.name), declared.filter((name) => used.has(name)), 'the UI shows the used ones, in that order')
})

t.test('the UI document: a note on tokens, this server first, the same operations', async (t) => {
  t.match(ui.info.description, /npm run token/)
  t.match(ui.info.description, /start banner/)
  t.equal(ui.servers[0]!.url, '/')
  t.same(Object.keys(ui.paths), Object.keys(contract.paths))
  t.equal(contract.info.description.includes('npm run token'), false, 'the contract itself is not changed')
})

t.test('uiDocument: examples leave parameters (also through $ref) for their descriptions; defaults stay', async (t) => {
  const doc = uiDocument({
    info: { description: 'x' },
    tags: [{ name: 'a', description: 'A things' }, { name: 'b', description: 'unused' }],
    servers: [{ url: 'https://api.example.com' }],
    components: {
      schemas: { Stage: { type: 'string', enum: ['lead', 'loyal'], example: 'loyal' } },
      parameters: { IfMatch: { in: 'header', name: 'If-Match', schema: { type: 'string' }, example: '"3"' } },
    },
    paths: {
      '/a': {
        get: {
          tags: ['a'],
          parameters: [
            { in: 'query', name: 'stage', schema: { $ref: '#/components/schemas/Stage' } },
            { in: 'query', name: 'since', schema: { type: 'string', format: 'date-time', example: '2026-11-22T08:30:00Z' } },
            { in: 'query', name: 'limit', schema: { type: 'integer', default: 50, example: 10 } },
            { in: 'query', name: 'q', examples: { one: { value: 'zhang' } }, schema: { anyOf: [{ type: 'string', example: 'li' }] } },
            { $ref: '#/components/parameters/IfMatch' },
          ],
        },
      },
    },
  }) as any
  const [stage, since, limit, q] = doc.paths['/a'].get.parameters
  t.same(stage.schema, { type: 'string', enum: ['lead', 'loyal'] }, 'the referenced enum is inlined without its example')
  t.match(stage.description, /Example: `loyal`/)
  t.notOk('example' in since.schema)
  t.match(since.description, /2026-11-22T08:30:00Z/)
  t.same(limit.schema, { type: 'integer', default: 50 }, 'the default stays')
  t.notOk('examples' in q)
  t.notOk('example' in q.schema.anyOf[0])
  t.notOk('example' in doc.components.parameters.IfMatch, 'shared parameters too')
  t.same(doc.tags.map((x: { name: string }) => x.name), ['a'])
  t.same(doc.servers.map((s: { url: string }) => s.url), ['/', 'https://api.example.com'])
})
