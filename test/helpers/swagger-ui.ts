/**
 * What Swagger UI's "Try it out" form holds before anyone types: the value it pre-fills for each
 * parameter, by the precedence of swagger-ui 5's ParameterRow.setDefaultValue for OpenAPI 3.x:
 * the active (first) entry of the parameter's `examples`, its content's `example`, its `example`,
 * then its schema's `example`, then the schema's `default` (the schema's first oneOf/anyOf branch
 * merged in, as `composeJsonSchema` does), then the parameter's own `default`. Local $refs are
 * followed as the UI resolves them.
 */
type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

export interface UiParameter { name: string; in: string; required: boolean; prefilled: unknown }
export interface UiOperation { method: string; path: string; operationId: string; parameters: UiParameter[] }

export function resolve(doc: Json, value: unknown, seen = new Set<string>()): unknown {
  if (!isObject(value) || typeof value.$ref !== 'string' || !value.$ref.startsWith('#/')) return value
  if (seen.has(value.$ref)) return value
  let target: unknown = doc
  for (const part of value.$ref.slice(2).split('/')) target = isObject(target) ? target[decodeURIComponent(part).replace(/~1/g, '/').replace(/~0/g, '~')] : undefined
  const { $ref: _ref, ...siblings } = value
  return { ...(resolve(doc, target, new Set([...seen, value.$ref])) as Json), ...siblings }
}

function prefill(doc: Json, raw: Json): unknown {
  const param = resolve(doc, raw) as Json
  if (isObject(param.examples)) {
    const first = resolve(doc, Object.values(param.examples)[0])
    if (isObject(first) && first.value !== undefined) return first.value
  }
  if (isObject(param.content)) {
    const media = Object.values(param.content)[0]
    if (isObject(media) && media.example !== undefined) return media.example
  }
  if (param.example !== undefined) return param.example
  let schema = resolve(doc, param.schema)
  if (isObject(schema)) {
    const branch = Array.isArray(schema.oneOf) ? schema.oneOf[0] : Array.isArray(schema.anyOf) ? schema.anyOf[0] : undefined
    if (branch !== undefined) schema = { ...schema, ...(resolve(doc, branch) as Json) }
  }
  if (isObject(schema) && schema.example !== undefined) return schema.example
  if (isObject(schema) && schema.default !== undefined) return schema.default
  return param.default
}

export function uiOperations(doc: Json): UiOperation[] {
  const out: UiOperation[] = []
  for (const [path, rawItem] of Object.entries(isObject(doc.paths) ? doc.paths : {})) {
    const item = resolve(doc, rawItem) as Json
    for (const method of ['get', 'put', 'post', 'delete', 'patch']) {
      const op = item[method]
      if (!isObject(op)) continue
      const params = [...(Array.isArray(item.parameters) ? item.parameters : []), ...(Array.isArray(op.parameters) ? op.parameters : [])]
      out.push({
        method: method.toUpperCase(), path, operationId: String(op.operationId),
        parameters: params.map((p) => {
          const r = resolve(doc, p) as Json
          return { name: String(r.name), in: String(r.in), required: r.required === true, prefilled: prefill(doc, p as Json) }
        }),
      })
    }
  }
  return out
}

/** The query string the form sends with its pre-filled values (arrays as repeated form parameters). */
export function prefilledQuery(op: UiOperation): string {
  const q = new URLSearchParams()
  for (const p of op.parameters) {
    if (p.in !== 'query' || p.prefilled === undefined || p.prefilled === '') continue
    const values = Array.isArray(p.prefilled) ? p.prefilled : [p.prefilled]
    for (const v of values) q.append(p.name, typeof v === 'string' ? v : JSON.stringify(v))
  }
  return q.toString()
}
