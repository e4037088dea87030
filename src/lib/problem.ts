/**
 * RFC 9457 problem details. Every error the API answers is one of these; the errors plugin
 * turns anything else (validation, database, framework errors) into one.
 */
export interface FieldError {
  /** JSON Pointer (RFC 6901) to the offending value, from the root of the body, query or params. */
  pointer: string
  message: string
}

export interface ProblemInit {
  status: number
  title: string
  detail?: string
  /** The stable code clients branch on; default: the title as a slug ('Bad Request' → bad-request). */
  code?: string
  type?: string
  errors?: FieldError[]
  headers?: Record<string, string>
}

export const PROBLEM_BASE = 'https://crm-api.dev/problems/'

export class HttpProblem extends Error {
  readonly status: number
  readonly title: string
  readonly code: string
  readonly type: string
  readonly detail: string | undefined
  readonly errors: FieldError[] | undefined
  readonly headers: Record<string, string>

  constructor(init: ProblemInit) {
    super(init.detail ?? init.title)
    this.name = 'HttpProblem'
    this.status = init.status
    this.title = init.title
    this.code = init.code ?? slug(init.title)
    this.type = init.type ?? PROBLEM_BASE + this.code
    this.detail = init.detail
    this.errors = init.errors
    this.headers = init.headers ?? {}
  }
}

function slug(title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/(^-|-$)/g, '')
}

/** Escapes one JSON Pointer reference token (RFC 6901 section 3). */
export function pointerToken(token: string | number): string {
  return String(token).replace(/~/g, '~0').replace(/\//g, '~1')
}

export function pointer(...tokens: Array<string | number>): string {
  return tokens.map((t) => '/' + pointerToken(t)).join('')
}

export const badRequest = (detail: string, errors?: FieldError[]) =>
  new HttpProblem({ status: 400, title: 'Bad Request', detail, ...(errors ? { errors } : {}) })
export const notFound = (what = 'resource') =>
  new HttpProblem({ status: 404, title: 'Not Found', detail: `No ${what} with that identifier.` })
export const conflict = (detail: string, errors?: FieldError[]) =>
  new HttpProblem({ status: 409, title: 'Conflict', detail, ...(errors ? { errors } : {}) })
export const preconditionFailed = (detail = 'The resource was changed since you read it (If-Match does not match its ETag).') =>
  new HttpProblem({ status: 412, title: 'Precondition Failed', detail })
export const unprocessable = (detail: string, errors?: FieldError[]) =>
  new HttpProblem({ status: 422, title: 'Unprocessable Content', detail, ...(errors ? { errors } : {}) })
export const serviceUnavailable = (detail: string, retryAfterSeconds = 2) =>
  new HttpProblem({ status: 503, title: 'Service Unavailable', detail, headers: { 'retry-after': String(retryAfterSeconds) } })
