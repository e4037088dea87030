import fp from 'fastify-plugin'
import { badRequest } from '../lib/problem.js'
import { jsonDepthExceeds } from '../lib/validation.js'

export const MAX_JSON_DEPTH = 32

/**
 * The API speaks JSON only: every other media type answers 415. JSON Merge Patch
 * (application/merge-patch+json) is accepted too. Nesting deeper than 32 levels is a 400,
 * checked on the raw text before parsing; __proto__ and constructor keys are rejected.
 */
export default fp(
  async (app) => {
    const parse = app.getDefaultJsonParser('error', 'error')
    app.removeAllContentTypeParsers()
    app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, (request, body, done) => {
      const text = body as string
      if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) {
        done(badRequest(`JSON nested deeper than ${MAX_JSON_DEPTH} levels is not accepted.`), undefined)
        return
      }
      parse(request, text, (err, value) => {
        if (err) {
          const code = (err as { code?: string }).code
          done(code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? err : badRequest('The body is not valid JSON.'), undefined)
          return
        }
        done(null, value)
      })
    })
  },
  { name: 'json-body' },
)
