import fp from 'fastify-plugin'
import { badRequest, HttpProblem, pointer, type FieldError } from '../lib/problem.js'
import { jsonDepthExceeds } from '../lib/validation.js'

export const MAX_JSON_DEPTH = 32

/**
 * The API speaks JSON only: every other media type answers 415. JSON Merge Patch
 * (application/merge-patch+json) is accepted too. Nesting deeper than 32 levels is a 400,
 * checked on the raw text before parsing; __proto__ and constructor keys are rejected. A number
 * beyond a double's range (1e309) is a 400 naming it: JSON.parse makes it Infinity, which would
 * be stored as null.
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
        const outOfRange = OVERFLOW_CANDIDATE.test(text) ? nonFiniteNumbers(value) : []
        if (outOfRange.length > 0) {
          done(new HttpProblem({
            status: 400,
            title: 'Bad Request',
            code: 'number-out-of-range',
            detail: 'A number in the body is beyond the range of a 64-bit floating-point number.',
            errors: outOfRange.map((at) => ({ pointer: at, message: 'is a number too large to represent' })),
          }), undefined)
          return
        }
        done(null, value)
      })
    })
  },
  { name: 'json-body' },
)

/** Text that may hold a number JSON.parse turns into ±Infinity: a 3-digit exponent or 309 digits in a row. */
const OVERFLOW_CANDIDATE = /[eE]\+?\d{3}|\d{309}/

/** Pointers to the ±Infinity values of a parsed body (at most 20). */
function nonFiniteNumbers(value: unknown, at: Array<string | number> = [], found: FieldError['pointer'][] = []): string[] {
  if (found.length >= 20) return found
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) found.push(pointer(...at))
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => nonFiniteNumbers(v, [...at, i], found))
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) nonFiniteNumbers(v, [...at, k], found)
  }
  return found
}
