/** One field an error is about: a JSON Pointer into the request (body, query, path or headers) and why. */
export interface CrmFieldError {
  pointer: string
  message: string
}

/**
 * An RFC 9457 problem the API answered (every 4xx and 5xx), thrown by every SDK call.
 * Branch on `code` (stable: 'version-mismatch', 'primary-email-taken', ...), never on title or detail.
 */
export class CrmProblem extends Error {
  override readonly name = 'CrmProblem'
  /** HTTP status. */
  readonly status: number
  /** Stable code of the cause: the problem's `code`, else the last segment of its `type`. */
  readonly code: string
  /** URI of the problem type. */
  readonly type: string
  readonly title: string
  readonly detail: string | undefined
  /** The request path the problem is about. */
  readonly instance: string | undefined
  /** The server's id of the request (also its X-Request-Id header): quote it to support. */
  readonly requestId: string | undefined
  /** One entry per offending field, with a JSON Pointer to it. */
  readonly errors: CrmFieldError[]
  /** Seconds the server asked to wait (Retry-After), when it did. */
  readonly retryAfter: number | undefined
  /** The whole problem document as sent. */
  readonly body: Readonly<Record<string, unknown>>

  constructor(status: number, body: unknown, headers?: Headers) {
    const doc = isObject(body) ? body : {}
    const type = typeof doc.type === 'string' ? doc.type : 'about:blank'
    const title = typeof doc.title === 'string' ? doc.title : `HTTP ${status}`
    const detail = typeof doc.detail === 'string' ? doc.detail : typeof body === 'string' && body ? body.slice(0, 500) : undefined
    super(detail ? `${status} ${title}: ${detail}` : `${status} ${title}`)
    this.status = typeof doc.status === 'number' ? doc.status : status
    this.type = type
    this.title = title
    this.detail = detail
    this.code = typeof doc.code === 'string' ? doc.code : type !== 'about:blank' ? type.slice(type.lastIndexOf('/') + 1) : `http-${status}`
    this.instance = typeof doc.instance === 'string' ? doc.instance : undefined
    this.requestId = typeof doc.request_id === 'string' ? doc.request_id : headers?.get('x-request-id') ?? undefined
    this.errors = Array.isArray(doc.errors)
      ? doc.errors.filter(isObject).map((e) => ({ pointer: String(e.pointer ?? ''), message: String(e.message ?? '') }))
      : []
    this.retryAfter = headers ? retryAfterSeconds(headers.get('retry-after')) : undefined
    this.body = doc
  }

  /** The messages for one field (by JSON Pointer), e.g. problem.errorsAt('/email'). */
  errorsAt(pointer: string): string[] {
    return this.errors.filter((e) => e.pointer === pointer).map((e) => e.message)
  }
}

export function isCrmProblem(err: unknown, code?: string): err is CrmProblem {
  return err instanceof CrmProblem && (code === undefined || err.code === code)
}

/** Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function retryAfterSeconds(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim())
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000))
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
