import type { FastifyRequest } from 'fastify'
import { toProblem } from '../../plugins/errors.js'
import { problem } from '../../lib/problem.js'
import { requireFinancial } from '../../plugins/auth.js'
import { checkFilter, type FilterAst } from './filter.parse.js'

/** Filter fields computed from purchases: they need the financial grant, as the orders conditions do. */
const PURCHASE_FIELDS = new Set(['order_count', 'first_order_at', 'last_order_at', 'recency_days', 'monetary', 'lifetime_value'])

/** Whether a filter reads purchase figures (an orders condition or a purchase metric). */
export function readsPurchases(ast: FilterAst | undefined): boolean {
  if (!ast) return false
  switch (ast.kind) {
    case 'and':
    case 'or':
      return ast.children.some(readsPurchases)
    case 'not':
      return readsPurchases(ast.child)
    case 'field':
      return PURCHASE_FIELDS.has(ast.field)
    default:
      return ast.kind === 'orders'
  }
}

/** Refuses a filter on purchase figures to a principal without the financial grant. */
export function requireFinancialFilter(request: FastifyRequest, ast: FilterAst | undefined): void {
  if (readsPurchases(ast)) requireFinancial(request.auth, 'A filter on orders or purchase figures')
}

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
  requireFinancialFilter(request, checked.ast)
  return checked.ast
}
