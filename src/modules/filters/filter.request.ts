import type { FastifyRequest } from 'fastify'
import { toProblem } from '../../plugins/errors.js'
import { problem } from '../../lib/problem.js'
import { checkFilter, type FilterAst } from './filter.parse.js'

/**
 * Routes that take a filter in their body register with `attachValidation: true`: the schema
 * (the OpenAPI contract) still validates the whole body, but for the filter itself the parser's
 * errors are answered instead of Ajv's, because Ajv can only say that none of the anyOf branches
 * of a node matched, while the parser points at the bad node or value and says why.
 */
export function filterFromBody(request: FastifyRequest, raw: unknown, at = '/filter'): FilterAst | undefined {
  const failed = request.validationError as (Error & { validationContext?: string }) | undefined
  if (failed && failed.validationContext && failed.validationContext !== 'body') throw failed
  const checked = raw === undefined ? { errors: [] } : checkFilter(raw, at)
  const schemaErrors = failed ? toProblem(failed).errors ?? [{ pointer: '', message: 'is invalid' }] : []
  const inFilter = (pointer: string) => pointer === at || pointer.startsWith(at + '/')
  const errors = [
    ...schemaErrors.filter((e) => !inFilter(e.pointer)),
    ...(checked.errors.length ? checked.errors : schemaErrors.filter((e) => inFilter(e.pointer))),
  ]
  if (errors.length > 0) throw problem('validation-failed', 'The request body is invalid.', errors)
  return checked.ast
}
