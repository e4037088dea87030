import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { notFound } from '../../lib/problem.js'
import { PROBLEM_CODES, PROBLEM_TYPES, PROBLEMS_PATH, isProblemCode, problemPath, type ProblemCode } from '../../lib/problem-types.js'
import { problemResponses, ref } from '../../lib/schema.js'
import { PAGE_CSP, negotiate, problemIndexPage, problemPage } from './problems.pages.js'
import { ProblemCodeParams, ProblemType, ProblemTypeList, problemSchemas, type ProblemTypeDto } from './problems.schemas.js'

const tags = ['problems']
const Html = Type.String({ description: 'The page as HTML', example: '<!doctype html>…' })
/** Both representations of a page: HTML for people (the default), JSON for tools. */
const negotiated = (json: ReturnType<typeof ref>) => ({
  description: 'text/html unless Accept prefers application/json (or application/problem+json)',
  content: { 'text/html': { schema: Html }, 'application/json': { schema: json } },
})
/** The registry changes only with a release. */
const CACHE = 'public, max-age=3600'

/**
 * The pages problem `type` URIs resolve to: GET /problems (the index) and GET /problems/{code}.
 * Public, outside /v1 like the other documentation: a client that meets a problem can read
 * what it means without a token.
 */
const problemRoutes: FastifyPluginAsyncTypebox = async (app) => {
  for (const schema of problemSchemas) app.addSchema(schema)
  const base = app.problemBase
  const entry = (code: ProblemCode): ProblemTypeDto => {
    const { status, title, description, action, example } = PROBLEM_TYPES[code]
    return { code, type: base + problemPath(code), status, title, description, action, example: { detail: example.detail, ...('errors' in example ? { errors: [...example.errors] } : {}) } }
  }
  const entries = PROBLEM_CODES.map(entry)

  app.get(PROBLEMS_PATH, {
    config: { scope: 'public' },
    schema: {
      operationId: 'listProblemTypes', tags, security: [], summary: 'Every problem type the API answers',
      description: 'The registry of problem codes: each error response\'s `code` is one of them and its `type` resolves to the code\'s page.',
      response: { 200: negotiated(ref(ProblemTypeList)) },
    },
  }, async (request, reply) => {
    reply.header('cache-control', CACHE).header('vary', 'accept')
    if (negotiate(request.headers.accept) === 'application/json') return reply.type('application/json').send({ data: entries, next_cursor: null })
    return reply.type('text/html; charset=utf-8').header('content-security-policy', PAGE_CSP).send(problemIndexPage(entries, (code) => base + PROBLEMS_PATH + '/' + code))
  })

  app.get(`${PROBLEMS_PATH}/:code`, {
    config: { scope: 'public' },
    schema: {
      operationId: 'getProblemType', tags, security: [], summary: 'One problem type: when it happens and what to do',
      params: ProblemCodeParams,
      response: { 200: negotiated(ref(ProblemType)), ...problemResponses(400, 404) },
    },
  }, async (request, reply) => {
    const { code } = request.params
    if (!isProblemCode(code)) throw notFound('problem type')
    const found = entries.find((e) => e.code === code)!
    reply.header('cache-control', CACHE).header('vary', 'accept')
    if (negotiate(request.headers.accept) === 'application/json') return reply.type('application/json').send(found)
    return reply.type('text/html; charset=utf-8').header('content-security-policy', PAGE_CSP).send(problemPage(found, base + PROBLEMS_PATH))
  })
}

export default problemRoutes
