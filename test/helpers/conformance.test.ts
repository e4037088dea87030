import t from 'tap'
import { contractChecker, type ResponseRecord } from './conformance.js'
import type { OpenApiDoc } from './openapi.js'

/**
 * The conformance checker itself, on a small document: it must catch an undeclared status, a wrong
 * content type, an invalid body and a missing header, and pass a response that conforms.
 */
const doc: OpenApiDoc = {
  paths: {
    '/v1/things/{id}': {
      get: {
        operationId: 'getThing',
        responses: {
          200: {
            description: 'A thing',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } },
            headers: { ETag: { $ref: '#/components/headers/ETag' }, 'X-PII-Masked': { schema: { type: 'string', enum: ['true'] } } },
          },
          304: { description: 'Not modified', headers: { ETag: { $ref: '#/components/headers/ETag' } } },
          404: { description: 'Not found', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
        },
      },
    },
  },
  components: {
    schemas: {
      Thing: {
        type: 'object', additionalProperties: false, required: ['id', 'name', 'note'],
        properties: { id: { type: 'string', format: 'uuid' }, name: { type: 'string', maxLength: 5 }, note: { type: ['string', 'null'] } },
      },
      Problem: { type: 'object', required: ['type', 'title', 'status', 'code'], properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, code: { type: 'string' } } },
    },
    headers: { ETag: { required: true, schema: { type: 'string', pattern: '^"[0-9]+"$' } } },
  },
}

const check = contractChecker(doc)
const ID = '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11'
const ok: ResponseRecord = {
  method: 'GET', route: '/v1/things/:id', url: `/v1/things/${ID}`, status: 200,
  headers: { 'content-type': 'application/json; charset=utf-8', etag: '"3"' },
  body: JSON.stringify({ id: ID, name: 'tea', note: null }),
}
const problem = JSON.stringify({ type: 'https://crm-api.dev/problems/not-found', title: 'Not Found', status: 404, code: 'not-found' })

t.test('a conforming response passes (3.1 null types, a 304 without body, a declared problem)', async (t) => {
  t.same(check(ok), [])
  t.same(check({ ...ok, status: 304, headers: { etag: '"3"' }, body: '' }), [])
  t.same(check({ ...ok, status: 404, headers: { 'content-type': 'application/problem+json; charset=utf-8' }, body: problem }), [])
})

t.test('an undeclared status is caught', async (t) => {
  t.match(check({ ...ok, status: 409, headers: { 'content-type': 'application/problem+json' }, body: problem.replace('404', '409') }), [/status 409 is not declared/])
})

t.test('a wrong content type is caught', async (t) => {
  t.match(check({ ...ok, status: 404, headers: { 'content-type': 'application/json' }, body: problem }), [/content type application\/json is not declared/])
  t.match(check({ ...ok, headers: { ...ok.headers, 'content-type': 'text/plain' } }), [/content type text\/plain is not declared/])
})

t.test('an invalid body is caught', async (t) => {
  t.match(check({ ...ok, body: JSON.stringify({ id: 'not-a-uuid', name: 'tea', note: null }) }), [/body does not match.*format/])
  t.match(check({ ...ok, body: JSON.stringify({ id: ID, name: 'oolong tea', note: null, extra: 1 }) }), [/body does not match/])
  t.match(check({ ...ok, body: '{"id":' }), [/not JSON/])
})

t.test('a missing required header, or a declared header with a bad value, is caught', async (t) => {
  t.match(check({ ...ok, headers: { 'content-type': 'application/json' } }), [/required header ETag is missing/])
  t.match(check({ ...ok, headers: { ...ok.headers, etag: 'W/"3"' } }), [/header ETag/])
  t.match(check({ ...ok, headers: { ...ok.headers, 'x-pii-masked': 'yes' } }), [/header X-PII-Masked/])
  t.same(check({ ...ok, headers: { ...ok.headers, 'x-pii-masked': 'true' } }), [], 'an optional header may be sent when valid')
})

t.test('a response no operation matches must still be a problem when it is an error', async (t) => {
  t.same(check({ method: 'GET', url: '/nowhere', status: 404, headers: { 'content-type': 'application/problem+json' }, body: problem }), [])
  t.match(check({ method: 'GET', url: '/nowhere', status: 404, headers: { 'content-type': 'text/html' }, body: '<p>no</p>' }), [/is not application\/problem\+json/])
  t.match(check({ method: 'GET', url: '/nowhere', status: 404, headers: { 'content-type': 'application/problem+json' }, body: '{"title":"x"}' }), [/body/])
})
