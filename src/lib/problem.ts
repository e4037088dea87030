/**
 * RFC 9457 problem details. Every error the API answers is one of these; the errors plugin
 * turns anything else (validation, database, framework errors) into one.
 */
import { PROBLEM_TYPES, isProblemCode, problemPath, type ProblemCode } from './problem-types.js'

export type { ProblemCode } from './problem-types.js'

export interface FieldError {
  /** JSON Pointer (RFC 6901) to the offending value, from the root of the body, query or params. */
  pointer: string
  message: string
}

export interface ProblemInit {
  /** This occurrence: what happened here (the registry's title and description say what the type means). */
  detail?: string
  errors?: FieldError[]
  headers?: Record<string, string>
}

export class HttpProblem extends Error {
  readonly code: ProblemCode
  readonly status: number
  readonly title: string
  /** The type URI as a path (/problems/<code>); the errors plugin resolves it against PUBLIC_URL when set. */
  readonly type: string
  readonly detail: string | undefined
  readonly errors: FieldError[] | undefined
  readonly headers: Record<string, string>

  /** The code is one of the registry (src/lib/problem-types.ts): its status and title come from there. */
  constructor(code: ProblemCode, init: ProblemInit = {}) {
    // Only a cast gets an unregistered code this far.
    if (!isProblemCode(code)) throw new TypeError(`"${String(code)}" is not a registered problem code (src/lib/problem-types.ts)`)
    const registered = PROBLEM_TYPES[code]
    super(init.detail ?? registered.title)
    this.name = 'HttpProblem'
    this.code = code
    this.status = registered.status
    this.title = registered.title
    this.type = problemPath(code)
    this.detail = init.detail
    this.errors = init.errors
    this.headers = init.headers ?? {}
  }
}

/** The problem of a registered code, this occurrence's detail and field errors. */
export const problem = (code: ProblemCode, detail?: string, errors?: FieldError[], headers?: Record<string, string>) =>
  new HttpProblem(code, { ...(detail !== undefined ? { detail } : {}), ...(errors ? { errors } : {}), ...(headers ? { headers } : {}) })

/** Escapes one JSON Pointer reference token (RFC 6901 section 3). */
export function pointerToken(token: string | number): string {
  return String(token).replace(/~/g, '~0').replace(/\//g, '~1')
}

export function pointer(...tokens: Array<string | number>): string {
  return tokens.map((t) => '/' + pointerToken(t)).join('')
}

export const notFound = (what = 'resource') => problem('not-found', `No ${what} with that identifier.`)
export const versionMismatch = (detail = 'The resource was changed since you read it (If-Match does not match its ETag).') =>
  problem('version-mismatch', detail)
/** A 503 with Retry-After: every 503 tells the client when to come back. */
export const unavailable = (code: ProblemCode, detail: string, retryAfterSeconds = 2) =>
  problem(code, detail, undefined, { 'retry-after': String(retryAfterSeconds) })
