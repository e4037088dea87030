/**
 * The contract as Swagger UI at /docs receives it (GET /docs/json): the same operations and
 * schemas as /openapi.json, changed only where the UI would mislead an operator.
 *
 * Swagger UI's "Try it out" pre-fills every parameter from its example (the parameter's `examples`
 * or `example`, then its schema's `example`, then the schema's `default`). A filter pre-filled with
 * an example (`customer_id=0193a7d0-…`, `created_after=created_before=…`) makes the list come back
 * empty, and a pre-filled `Idempotency-Key` or `If-Match` replays or refuses the request. So the UI
 * pre-fills parameters only with their defaults (which the server applies anyway when the
 * parameter is absent), and each example moves into the parameter's description, where it is read,
 * not sent. Request bodies keep their examples: a body is edited before it is sent.
 */

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Keywords whose value is data, not a schema; and keywords whose keys are names, not keywords. */
const VALUE_KEYWORDS = new Set(['default', 'enum', 'const', 'examples'])
const NAMED_SCHEMAS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'])
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

export const TOKEN_NOTE = [
  '### Getting a token',
  'Click **Authorize** and paste a bearer token (a JWT from the identity provider this server trusts); it stays authorized across reloads of this page (kept in this browser\'s local storage).',
  'On a development server, `npm start` prints a ready admin token in its start banner, and `npm run token -- --scope "customers:read orders:read"` mints one with other scopes (`--sub`, `--ttl`).',
  'Operations list the scopes they need; a token without `pii:read` sees personal fields masked.',
].join('\n\n')

/** Transforms a copy of the document for the UI; the caller owns `doc` (it is changed in place). */
export function uiDocument(doc: Json): Json {
  const schemas = isObject(doc.components) && isObject(doc.components.schemas) ? doc.components.schemas : {}
  const parameters = (list: unknown) => {
    if (Array.isArray(list)) for (const p of list) if (isObject(p)) withoutPrefill(p, schemas)
  }
  const usedTags = new Set<string>()
  for (const item of Object.values(isObject(doc.paths) ? doc.paths : {})) {
    if (!isObject(item)) continue
    parameters(item.parameters)
    for (const method of METHODS) {
      const op = item[method]
      if (!isObject(op)) continue
      parameters(op.parameters)
      if (Array.isArray(op.tags)) for (const tag of op.tags) usedTags.add(String(tag))
    }
  }
  if (isObject(doc.components) && isObject(doc.components.parameters)) {
    for (const p of Object.values(doc.components.parameters)) if (isObject(p)) withoutPrefill(p, schemas)
  }
  // A declared tag with no operation yet would be an empty section.
  if (Array.isArray(doc.tags)) doc.tags = doc.tags.filter((t) => isObject(t) && usedTags.has(String(t.name)))
  // Try it out calls the first server: the one serving this page, wherever the contract's servers point.
  const servers = Array.isArray(doc.servers) ? doc.servers.filter((s) => !(isObject(s) && s.url === '/')) : []
  doc.servers = [{ url: '/', description: 'This server (the one serving these docs)' }, ...servers]
  if (isObject(doc.info)) doc.info.description = [doc.info.description, TOKEN_NOTE].filter(Boolean).join('\n\n')
  return doc
}

/** A parameter Swagger UI will not pre-fill with an example: its examples go to its description. */
function withoutPrefill(param: Json, schemas: Json): void {
  if ('$ref' in param) return // a components.parameters entry, handled on its own
  const shown: unknown[] = []
  if (param.example !== undefined) shown.push(param.example)
  if (isObject(param.examples)) for (const e of Object.values(param.examples)) if (isObject(e) && e.value !== undefined) shown.push(e.value)
  delete param.example
  delete param.examples
  if (isObject(param.content)) {
    for (const media of Object.values(param.content)) {
      if (!isObject(media)) continue
      if (media.example !== undefined) shown.push(media.example)
      delete media.example
      delete media.examples
      if (media.schema !== undefined) media.schema = schemaWithoutExamples(media.schema, schemas, shown, new Set())
    }
  }
  if (param.schema !== undefined) param.schema = schemaWithoutExamples(param.schema, schemas, shown, new Set())
  if (shown.length > 0) {
    const example = `Example: ${shown.slice(0, 1).map((v) => '`' + (typeof v === 'string' ? v : JSON.stringify(v)) + '`').join('')}`
    param.description = [param.description, example].filter(Boolean).join('\n\n')
  }
}

/**
 * A copy of a parameter's schema without `example` anywhere in it: local `$ref`s are inlined (the
 * UI would take a referenced component's example too), except a reference back into itself.
 */
function schemaWithoutExamples(schema: unknown, schemas: Json, shown: unknown[], seen: Set<string>): unknown {
  if (Array.isArray(schema)) return schema.map((s) => schemaWithoutExamples(s, schemas, shown, seen))
  if (!isObject(schema)) return schema
  const ref = typeof schema.$ref === 'string' ? schema.$ref : undefined
  const name = ref?.startsWith('#/components/schemas/') ? decodeURIComponent(ref.slice('#/components/schemas/'.length)).replace(/~1/g, '/').replace(/~0/g, '~') : undefined
  if (name !== undefined && isObject(schemas[name]) && !seen.has(name)) {
    const { $ref: _ref, ...siblings } = schema
    const target = schemaWithoutExamples(schemas[name], schemas, shown, new Set([...seen, name])) as Json
    return { ...target, ...(schemaWithoutExamples(siblings, schemas, shown, seen) as Json) }
  }
  const out: Json = {}
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'example') {
      shown.push(value)
      continue
    }
    if (VALUE_KEYWORDS.has(key)) out[key] = value
    else if (NAMED_SCHEMAS.has(key) && isObject(value)) out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, schemaWithoutExamples(v, schemas, shown, seen)]))
    else out[key] = schemaWithoutExamples(value, schemas, shown, seen)
  }
  return out
}
