import fp from 'fastify-plugin'
import { problem } from '../lib/problem.js'
import { MAYBE_UNSTORABLE, jsonDepthExceeds, unstorable, unstorableValues } from '../lib/validation.js'

export const MAX_JSON_DEPTH = 32

/**
 * The API speaks JSON only: every other media type answers 415. JSON Merge Patch
 * (application/merge-patch+json) is accepted too. Nesting deeper than 32 levels is a 400,
 * checked on the raw text before parsing; __proto__ and constructor keys are rejected. A value
 * that cannot be stored as sent is a 400 naming it: a number beyond a double (1e309, which
 * JSON.parse makes Infinity and would be stored as null), or a NUL character (PostgreSQL text
 * cannot hold one), in the body or the query string.
 */
export default fp(
  async (app) => {
    const parse = app.getDefaultJsonParser('error', 'error')
    // Only routes that read a query string (declare its schema) use its values.
    app.addHook('preValidation', (request, _reply, done) => {
      if (!request.routeOptions.schema?.querystring) return done()
      const query = request.query as Record<string, unknown> | undefined
      const found = query && typeof query === 'object' && Object.values(query).some(hasNul) ? unstorableValues(query) : []
      done(found.length ? unstorable(found, 'query string') : undefined)
    })
    app.removeAllContentTypeParsers()
    app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, (request, body, done) => {
      const text = body as string
      if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
        done(problem('json-too-deep', `JSON nested deeper than ${MAX_JSON_DEPTH} levels is not accepted.`), undefined)
        return
      }
      parse(request, text, (err, value) => {
        if (err) {
          const code = (err as { code?: string }).code
          done(code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? err : problem('malformed-json', 'The body is not valid JSON.'), undefined)
          return
        }
        const unstorableFound = MAYBE_UNSTORABLE.test(text) ? unstorableValues(value) : []
        if (unstorableFound.length > 0) {
          done(unstorable(unstorableFound), undefined)
          return
        }
        done(null, value)
      })
    })
  },
  { name: 'json-body' },
)

const hasNul = (v: unknown): boolean => (typeof v === 'string' ? v.includes('\u0000') : Array.isArray(v) && v.some(hasNul))
