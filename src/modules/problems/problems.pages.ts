import { createHash } from 'node:crypto'
import type { ProblemTypeDto } from './problems.schemas.js'

/**
 * The HTML pages of the problem types: plain documents, no script. The API's CSP allows nothing
 * (plugins/security.ts); the pages allow exactly their one inline style by its hash.
 */
const STYLE = [
  'body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;color:#1d232a}',
  'code,pre{font-family:ui-monospace,monospace}pre{background:#f3f4f6;padding:1rem;overflow-x:auto}',
  'table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}',
].join('')

export const PAGE_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; frame-ancestors 'none'`

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

/** Backticked words of the registry's prose as code. */
const prose = (text: string): string => escape(text).replace(/`([^`]+)`/g, '<code>$1</code>')

const page = (title: string, body: string): string =>
  `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
  `<title>${escape(title)} · crm-api</title><style>${STYLE}</style></head><body>${body}</body></html>\n`

/** The body a client receives for this type, as the example of its page. */
export function exampleProblem(entry: ProblemTypeDto): Record<string, unknown> {
  return {
    type: entry.type,
    code: entry.code,
    title: entry.title,
    status: entry.status,
    detail: entry.example.detail,
    instance: '/v1/…',
    request_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11',
    ...(entry.example.errors ? { errors: entry.example.errors } : {}),
  }
}

export function problemPage(entry: ProblemTypeDto, indexPath: string): string {
  return page(entry.title, [
    `<p><a href="${escape(indexPath)}">All problem types</a></p>`,
    `<h1>${escape(entry.title)}</h1>`,
    `<p>Code <code>${escape(entry.code)}</code> · HTTP status <strong>${entry.status}</strong> · type <code>${escape(entry.type)}</code></p>`,
    `<h2>When it happens</h2><p>${prose(entry.description)}</p>`,
    `<h2>What to do</h2><p>${prose(entry.action)}</p>`,
    `<h2>Example</h2><pre>${escape(`HTTP/1.1 ${entry.status}\nContent-Type: application/problem+json\n\n${JSON.stringify(exampleProblem(entry), null, 2)}`)}</pre>`,
    '<p>Branch on <code>code</code>, never on <code>title</code> or <code>detail</code>: titles and details may be reworded, codes never change.</p>',
  ].join('\n'))
}

export function problemIndexPage(entries: ProblemTypeDto[], pathOf: (code: string) => string): string {
  const rows = entries.map((e) =>
    `<tr><td><a href="${escape(pathOf(e.code))}"><code>${escape(e.code)}</code></a></td><td>${e.status}</td><td>${escape(e.title)}</td></tr>`)
  return page('Problem types', [
    '<h1>Problem types</h1>',
    '<p>Every error of the API is an RFC 9457 <code>application/problem+json</code> body whose <code>type</code> is one of these pages and whose <code>code</code> is the last segment of it.</p>',
    `<table><thead><tr><th>code</th><th>status</th><th>title</th></tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>`,
  ].join('\n'))
}

const OFFERED = ['text/html', 'application/json'] as const
export type PageFormat = (typeof OFFERED)[number]

/**
 * The representation an Accept header prefers (RFC 9110 section 12.5.1): the highest q, then the
 * most specific range. HTML when nothing is said, and when neither is acceptable (RFC 9110 lets a
 * server disregard Accept rather than answer 406; a browser or a human reads the page).
 */
export function negotiate(accept: string | undefined): PageFormat {
  if (!accept || !accept.trim()) return 'text/html'
  const ranges = accept.split(',').map((part) => {
    const [range = '', ...params] = part.trim().toLowerCase().split(';').map((p) => p.trim())
    const q = params.find((p) => p.startsWith('q='))
    const weight = q ? Number(q.slice(2)) : 1
    return { range, q: Number.isFinite(weight) ? weight : 0 }
  })
  let best: { format: PageFormat; q: number } | undefined
  for (const format of OFFERED) {
    const [type] = format.split('/')
    // application/problem+json asks for the registry entry as JSON too.
    const match = (r: string) => r === format || (format === 'application/json' && r === 'application/problem+json') ? 3 : r === `${type}/*` ? 2 : r === '*/*' ? 1 : 0
    const hit = ranges.map((r) => ({ s: match(r.range), q: r.q })).filter((r) => r.s > 0).sort((a, b) => b.s - a.s)[0]
    if (hit && hit.q > 0 && (!best || hit.q > best.q)) best = { format, q: hit.q }
  }
  return best?.format ?? 'text/html'
}
