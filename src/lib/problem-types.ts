import type { FieldError } from './problem.js'

/**
 * Every problem type the API answers, by its stable code. The one place a cause is named: the
 * HttpProblem constructor takes a code of this registry (its status and title come from here), the
 * errors plugin refuses anything else, GET /problems/{code} documents each entry and the README's
 * table is generated from it (`npm run -s problems:list`).
 *
 * A code is never renamed or given another status: clients branch on it. A new cause gets a new
 * code; a cause that is no longer answered keeps its entry (its page still resolves).
 */
export interface ProblemType {
  status: number
  /** Short and the same for every occurrence (RFC 9457 section 3.1.3); the detail is per occurrence. */
  title: string
  /** When the server answers it. */
  description: string
  /** What the client should do about it. */
  action: string
  example: { detail: string; errors?: FieldError[] }
}

const RETRY = 'Retry after the number of seconds in Retry-After, with the same Idempotency-Key for a POST.'

export const PROBLEM_TYPES = {
  // 400: the request cannot be read or breaks a rule of its fields.
  'validation-failed': {
    status: 400,
    title: 'Validation failed',
    description: 'The body, query string, path parameters or headers do not match the operation\'s schema, or a field breaks a rule of its own (a credit limit without its currency, an unknown include, a percentage over 100). Unknown and read-only body properties are refused here too.',
    action: 'Fix each field an `errors[]` entry points to (JSON Pointer from the root of the body, query string or parameters) and send the request again.',
    example: { detail: 'The request body is invalid.', errors: [{ pointer: '/name', message: 'must have required property \'name\'' }] },
  },
  'malformed-json': {
    status: 400,
    title: 'Malformed JSON',
    description: 'The body is declared JSON (application/json or application/merge-patch+json) but is empty or is not valid JSON.',
    action: 'Send a well-formed JSON document, or no Content-Type when there is no body.',
    example: { detail: 'The body is not valid JSON.' },
  },
  'json-too-deep': {
    status: 400,
    title: 'JSON nested too deeply',
    description: 'The JSON body nests objects and arrays deeper than the API reads (32 levels); no schema of the API comes near it.',
    action: 'Flatten the document; nothing the API accepts is this deep.',
    example: { detail: 'JSON nested deeper than 32 levels is not accepted.' },
  },
  'unstorable-value': {
    status: 400,
    title: 'Value cannot be stored',
    description: 'A value cannot be stored as sent: a JSON number beyond a 64-bit double (1e309), or a NUL character (U+0000) in the body or query string.',
    action: 'Send the value each pointer names within range and without NUL characters.',
    example: { detail: 'A value in the body cannot be stored as sent (a number beyond a 64-bit double, or a NUL character).', errors: [{ pointer: '/attributes/score', message: 'is a number too large to represent' }] },
  },
  'invalid-filter': {
    status: 400,
    title: 'Invalid filter',
    description: 'A filter of the customer filter language (search, dynamic segments) names an unknown field, an operator the field does not take, or a value of the wrong type.',
    action: 'Fix the filter at each pointer; the filter language is described with POST /v1/customers/search.',
    example: { detail: 'The filter is invalid.', errors: [{ pointer: '/filter/and/0/op', message: 'lifecycle_stage takes only: eq, ne, in, not_in, exists' }] },
  },
  'invalid-sort': {
    status: 400,
    title: 'Invalid sort',
    description: 'The sort parameter names a field the list does not sort by, more than three fields, or a sort that needs another filter (follow_up_on needs follow_up_due=true).',
    action: 'Sort by the fields the detail lists.',
    example: { detail: 'Cannot sort by "email". Sortable fields: created_at, updated_at, name.', errors: [{ pointer: '/sort', message: 'must be a comma-separated list of created_at, updated_at, name, each optionally prefixed with -' }] },
  },
  'invalid-cursor': {
    status: 400,
    title: 'Invalid cursor',
    description: 'The cursor was not issued by this list with this sort order (or was altered).',
    action: 'Start the list again without a cursor and follow next_cursor as it is answered.',
    example: { detail: 'The cursor is not valid for this list and sort order. Start again without a cursor.', errors: [{ pointer: '/cursor', message: 'is not a cursor issued for this list and sort' }] },
  },
  'invalid-date-range': {
    status: 400,
    title: 'Invalid date range',
    description: 'An analytics range whose from is after its to, or that spans more months than the report computes.',
    action: 'Send from before to and a span within the limit in the detail.',
    example: { detail: 'from is after to.', errors: [{ pointer: '/from', message: 'from must not be after to' }] },
  },
  'too-many-decimals': {
    status: 400,
    title: 'Too many decimals for the currency',
    description: 'An amount has more decimals than its currency\'s minor unit (JPY 0, CNY 2, KWD 3).',
    action: 'Round the amount at each pointer to the currency\'s minor unit.',
    example: { detail: 'An amount has more decimals than JPY has.', errors: [{ pointer: '/items/0/unit_price', message: 'must have at most 0 decimals for JPY' }] },
  },
  'primary-contact-point-required': {
    status: 400,
    title: 'A primary contact point is required',
    description: 'A PATCH would leave a kind of contact point (email, phone, ...) without a primary while the customer has contact points of that kind.',
    action: 'Make another contact point of the kind primary instead; the former primary becomes non-primary.',
    example: { detail: 'Make another contact point primary instead of unsetting this one.', errors: [{ pointer: '/is_primary', message: 'a kind keeps one primary while it has contact points' }] },
  },
  'invalid-if-match': {
    status: 400,
    title: 'Invalid If-Match',
    description: 'If-Match is not an ETag this API issues (a quoted version number such as "3").',
    action: 'Send the ETag header of the resource\'s last GET or write as it was answered.',
    example: { detail: 'If-Match must be an ETag from this API, such as "3".', errors: [{ pointer: '/headers/if-match', message: 'must be a quoted version number' }] },
  },
  'invalid-idempotency-key': {
    status: 400,
    title: 'Invalid Idempotency-Key',
    description: 'Idempotency-Key is not 1 to 255 printable ASCII characters.',
    action: 'Send a UUID (or another unique string of printable ASCII) per logical request.',
    example: { detail: 'Idempotency-Key must be 1 to 255 printable ASCII characters.', errors: [{ pointer: '/headers/idempotency-key', message: 'must be 1 to 255 printable ASCII characters' }] },
  },
  'malformed-csv': {
    status: 400,
    title: 'Malformed CSV',
    description: 'An import the CSV parser refused (an unclosed quote, a row with another number of fields than the header, a row over 64 KiB). The detail names line, column and rule, never the value. Nothing was imported.',
    action: 'Fix the file at the line the detail names and upload it again.',
    example: { detail: 'The upload could not be read as CSV at line 2, column email: a quote inside an unquoted field (quote the whole field and double the quotes inside it). Nothing was imported.' },
  },
  'invalid-csv-header': {
    status: 400,
    title: 'Invalid CSV header',
    description: 'The first line of a CSV import names a column a customer import does not have, names one twice, or has no name column. Nothing was imported.',
    action: 'Use the columns the messages list; the header line is required.',
    example: { detail: 'The CSV header is not valid; nothing was imported.', errors: [{ pointer: '/header', message: 'must have a name column' }] },
  },
  'invalid-position': {
    status: 400,
    title: 'Invalid feed position',
    description: 'The change feed\'s `after` is not a position this API issued.',
    action: 'Use an event\'s position or a next_position as answered, or leave `after` out to start from the oldest retained event.',
    example: { detail: 'The position is not one this API issued. Use an event\'s position or a next_position, or leave `after` out to start from the oldest retained event.', errors: [{ pointer: '/after', message: 'is not a feed position' }] },
  },
  'bad-url': {
    status: 400,
    title: 'Bad URL',
    description: 'The URL path is not valid: a malformed percent-encoding.',
    action: 'Percent-encode path segments (RFC 3986) once.',
    example: { detail: 'The URL path is not valid (bad percent-encoding).' },
  },
  'content-length-mismatch': {
    status: 400,
    title: 'Content-Length mismatch',
    description: 'The body is shorter or longer than its Content-Length header says.',
    action: 'Let the HTTP client compute Content-Length.',
    example: { detail: 'Content-Length does not match the body.' },
  },
  'malformed-request': {
    status: 400,
    title: 'Malformed HTTP request',
    description: 'Node\'s HTTP parser refused the request (a malformed request line or header) before any routing. The connection is closed after the answer.',
    action: 'Send well-formed HTTP/1.1; this is usually a broken client or proxy.',
    example: { detail: 'The request is not valid HTTP.' },
  },
  'request-rejected': {
    status: 400,
    title: 'Request rejected',
    description: 'The HTTP framework refused the request for a reason no other code names. The log names its error code; it is a gap in the server\'s mapping.',
    action: 'Check the request against the contract; report the request_id if it is well-formed.',
    example: { detail: 'The request cannot be served as sent.' },
  },
  // 401, 403: who is calling, and may they.
  'token-missing': {
    status: 401,
    title: 'Access token missing',
    description: 'The operation needs an access token and the request has no Authorization header.',
    action: 'Send Authorization: Bearer <token> with a token of the configured issuer.',
    example: { detail: 'Send an access token: Authorization: Bearer <token>.' },
  },
  'token-invalid': {
    status: 401,
    title: 'Access token invalid',
    description: 'The Authorization header is not "Bearer <JWT>", or the token\'s signature, algorithm, issuer, audience or subject is not accepted. WWW-Authenticate carries error="invalid_token" or "invalid_request".',
    action: 'Get a new token from the issuer the API is configured with; do not retry with the same token.',
    example: { detail: 'The token signature is not valid.' },
  },
  'token-expired': {
    status: 401,
    title: 'Access token expired',
    description: 'The token\'s exp has passed (beyond the configured clock tolerance).',
    action: 'Refresh the token and send the request again.',
    example: { detail: 'The token has expired.' },
  },
  'insufficient-scope': {
    status: 403,
    title: 'Insufficient scope',
    description: 'The token is valid but lacks the scope the operation needs (each operation names its scope in the contract).',
    action: 'Ask for a token with the scope the detail names; admin does not imply pii:read or financial data.',
    example: { detail: 'This operation needs the scope "orders:read".' },
  },
  // 404, 405: what is addressed.
  'not-found': {
    status: 404,
    title: 'Resource not found',
    description: 'No record with that id, or one the caller may not see (existence is never revealed).',
    action: 'Check the id; a list or search finds the records the caller can see.',
    example: { detail: 'No customer with that identifier.' },
  },
  'route-not-found': {
    status: 404,
    title: 'Route not found',
    description: 'No operation of the API has this path, whatever the method.',
    action: 'Check the path against the contract (GET /openapi.json); operations are under /v1.',
    example: { detail: 'No route GET /v1/nothing-here.' },
  },
  'method-not-allowed': {
    status: 405,
    title: 'Method not allowed',
    description: 'The path exists but not with this method. The Allow header lists the methods it takes.',
    action: 'Use one of the methods in Allow.',
    example: { detail: 'PUT is not allowed here. Allowed: GET, PATCH, DELETE.' },
  },
  'request-timeout': {
    status: 408,
    title: 'Request timeout',
    description: 'The request did not arrive completely within the server\'s request timeout. The connection is closed after the answer.',
    action: 'Send the request again, faster or smaller.',
    example: { detail: 'The request did not arrive in time.' },
  },
  // 409: conflicts with data the server holds.
  'external-ref-taken': {
    status: 409,
    title: 'external_ref taken',
    description: 'Another record of the resource already has this external_ref (a create or PATCH, or a race between two creates).',
    action: 'Create-or-update by external_ref is POST with the external_ref: the first request updates the record that holds it. Otherwise pick another external_ref.',
    example: { detail: 'Another customer already has this external_ref.', errors: [{ pointer: '/external_ref', message: 'is already taken by another customer' }] },
  },
  'external-ref-archived': {
    status: 409,
    title: 'external_ref held by an archived record',
    description: 'A create-or-update names the external_ref of an archived record.',
    action: 'Restore the record the detail names, or send restore_archived=true to restore and update it in one request.',
    example: { detail: 'The customer with this external_ref (0190f1c2-7a7b-7cc1-8d1e-2f3a4b5c6d7e) is archived. Restore it first, or send restore_archived=true to restore and update it.', errors: [{ pointer: '/external_ref', message: 'belongs to the archived customer 0190f1c2-7a7b-7cc1-8d1e-2f3a4b5c6d7e' }] },
  },
  'order-number-taken': {
    status: 409,
    title: 'order_number taken',
    description: 'Another order already has this order_number.',
    action: 'Pick another order_number, or omit it and let the server assign one.',
    example: { detail: 'Another order already has this order_number.', errors: [{ pointer: '/order_number', message: 'is already taken by another order' }] },
  },
  'primary-email-taken': {
    status: 409,
    title: 'Primary email taken',
    description: 'Another customer has this email as its primary email (normalized, case-insensitive).',
    action: 'Look the other customer up (search by email) and merge the two, or keep the email non-primary.',
    example: { detail: 'Another customer already has this primary email.', errors: [{ pointer: '/contact_points/0/value', message: 'is the primary email of another customer' }] },
  },
  'segment-name-taken': {
    status: 409,
    title: 'Segment name taken',
    description: 'A live (not archived) segment already has this name.',
    action: 'Pick another name, or archive the other segment first.',
    example: { detail: 'A live segment already has this name.', errors: [{ pointer: '/name', message: 'is already used by another segment' }] },
  },
  'idempotency-key-in-flight': {
    status: 409,
    title: 'Idempotency-Key in flight',
    description: 'A request with this Idempotency-Key (same caller, same route) is still being processed.',
    action: 'Retry after Retry-After with the same key: the answer will be the first request\'s.',
    example: { detail: 'A request with this Idempotency-Key is still being processed. Retry after it has finished.', errors: [{ pointer: '/headers/idempotency-key', message: 'is in use by a request in flight' }] },
  },
  // 410: gone for good.
  'position-expired': {
    status: 410,
    title: 'Feed position expired',
    description: 'A change feed position (`after`) older than the retention: the events after it were purged.',
    action: 'Start again without `after` (the oldest retained event) and reconcile from the resources themselves.',
    example: { detail: 'Events after this position are older than the retention (30 days) and were removed. Start again without `after` (the oldest retained event) and reconcile from the resources themselves.', errors: [{ pointer: '/after', message: 'is older than the retention' }] },
  },
  // 412: optimistic concurrency.
  'version-mismatch': {
    status: 412,
    title: 'Version mismatch',
    description: 'If-Match does not match the resource\'s current ETag: it was changed since the client read it (a weak ETag, W/"3", never matches).',
    action: 'GET the resource again, reapply the change to what it holds now, and send it with the new ETag.',
    example: { detail: 'The resource was changed since you read it (If-Match does not match its ETag).' },
  },
  'payload-too-large': {
    status: 413,
    title: 'Payload too large',
    description: 'The body is larger than the route accepts (BODY_LIMIT_BYTES for JSON, the import limit for uploads).',
    action: 'Send less per request: batch routes take up to 1,000 items, imports stream files up to the limit.',
    example: { detail: 'The request body is larger than this route accepts.' },
  },
  'uri-too-long': {
    status: 414,
    title: 'URI too long',
    description: 'A path parameter is longer than any identifier of the API (200 characters).',
    action: 'Check the path: ids are UUIDs.',
    example: { detail: 'A path parameter is longer than this API accepts.' },
  },
  'unsupported-media-type': {
    status: 415,
    title: 'Unsupported media type',
    description: 'The Content-Type is missing, malformed or not one the operation reads (application/json or application/merge-patch+json; text/csv or application/x-ndjson for imports).',
    action: 'Send the body with a Content-Type the operation declares in the contract.',
    example: { detail: 'Send the body as application/json.' },
  },
  // 422: well-formed requests that break a business rule.
  'webhook-target-refused': {
    status: 422,
    title: 'Webhook target refused',
    description: 'A webhook URL whose host is, or resolves to, a private, loopback, link-local or reserved address (the SSRF guard), unless allow-listed in WEBHOOK_ALLOWED_HOSTS.',
    action: 'Use a public https endpoint, or ask the operators to allow-list the host.',
    example: { detail: 'The webhook URL resolves to a private address. Private, loopback, link-local and reserved targets are refused unless allow-listed (WEBHOOK_ALLOWED_HOSTS).', errors: [{ pointer: '/url', message: 'resolves to a private address' }] },
  },
  'idempotency-key-reused': {
    status: 422,
    title: 'Idempotency-Key reused',
    description: 'The Idempotency-Key was already used by this caller on this route with another request body.',
    action: 'Use a new key for a new request; reuse a key only to retry the very same request.',
    example: { detail: 'This Idempotency-Key was used with another request. Use a new key for a new request.', errors: [{ pointer: '/headers/idempotency-key', message: 'was used with another request body' }] },
  },
  'invalid-transition': {
    status: 422,
    title: 'Invalid status transition',
    description: 'The status change is not allowed from the record\'s current status (order lifecycle, complaint workflow), or a record cannot be created in that status.',
    action: 'Read the record\'s status and follow the allowed transitions in the detail (e.g. a refund, not a status, makes an order partially_refunded).',
    example: { detail: 'An order cannot go from cancelled to paid.', errors: [{ pointer: '/status', message: 'cancelled is final' }] },
  },
  'unknown-customer': {
    status: 422,
    title: 'Unknown customer',
    description: 'A customer id in the body is not an existing, unarchived customer (an order, interaction or feedback\'s customer_id, a static segment\'s members).',
    action: 'Check the ids at the pointers; restore an archived customer first.',
    example: { detail: 'No customer with that id can place orders.', errors: [{ pointer: '/customer_id', message: 'is not an existing, unarchived customer' }] },
  },
  'invalid-reference': {
    status: 422,
    title: 'Invalid reference',
    description: 'A linked order or interaction does not exist or belongs to another customer.',
    action: 'Link only records of the same customer.',
    example: { detail: 'Feedback can only link to an order or interaction of the same customer.', errors: [{ pointer: '/order_id', message: 'is an order of another customer' }] },
  },
  'external-ref-mismatch': {
    status: 422,
    title: 'external_ref belongs to another record',
    description: 'A create-or-update by external_ref names a record whose fixed fields differ from the body: another customer, or (feedback) another kind or survey_type. Records never move between customers.',
    action: 'Use another external_ref for a new record, or send the fields the existing record has.',
    example: { detail: 'This external_ref belongs to an order of another customer.', errors: [{ pointer: '/customer_id', message: 'differs from the customer of the order with this external_ref' }] },
  },
  'feedback-fields-mismatch': {
    status: 422,
    title: 'Fields do not fit the feedback kind',
    description: 'Feedback carries fields its kind does not have (a score on a complaint, complaint workflow fields on a survey), lacks one it needs (a survey\'s survey_type and score), or has a score out of its range (CSAT 1–5, NPS 0–10).',
    action: 'Send the fields of the kind the pointers name.',
    example: { detail: 'These fields do not fit complaint feedback.', errors: [{ pointer: '/score', message: 'complaint feedback has no score' }] },
  },
  'resolution-note-required': {
    status: 422,
    title: 'Resolution note required',
    description: 'A complaint becomes resolved or closed without a resolution_note, or a PATCH clears the note of a resolved or closed complaint.',
    action: 'Send resolution_note in the same request as the status.',
    example: { detail: 'Resolving a complaint needs a resolution_note in the same request.', errors: [{ pointer: '/resolution_note', message: 'is required to resolve a complaint' }] },
  },
  'due-date-required': {
    status: 422,
    title: 'Due date required',
    description: 'A credit sale has no due_date and its customer has no payment_terms_days to derive one from.',
    action: 'Send due_date, or set the customer\'s payment_terms_days.',
    example: { detail: 'A credit sale needs a due date, and the customer has no payment_terms_days to derive it from.', errors: [{ pointer: '/due_date', message: 'is required for a credit sale' }] },
  },
  'invalid-line-items': {
    status: 422,
    title: 'Line items do not add up',
    description: 'A line item\'s quantity × unit_price is more than an amount can hold, or its discount is more than quantity × unit_price.',
    action: 'Fix the quantity, unit_price or discount at each pointer.',
    example: { detail: 'Some line items do not add up.', errors: [{ pointer: '/items/0/discount', message: 'must not exceed quantity × unit_price (19.80)' }] },
  },
  'order-total-too-large': {
    status: 422,
    title: 'Order total too large',
    description: 'The order\'s total exceeds the largest amount an order holds.',
    action: 'Split the order.',
    example: { detail: 'The order total exceeds 999999999999.99.', errors: [{ pointer: '/items', message: 'add up to more than an order can hold' }] },
  },
  'order-not-editable': {
    status: 422,
    title: 'Order not editable',
    description: 'Items, tax_rate, shipping or currency change only while the order is pending; or the currency of an order with payments changes.',
    action: 'Cancel and re-create the order, or record a refund.',
    example: { detail: 'Items, tax_rate, shipping and currency change only while the order is pending; it is paid.', errors: [{ pointer: '/items', message: 'cannot change once the order has left pending' }] },
  },
  'total-below-received': {
    status: 422,
    title: 'Total below the amount received',
    description: 'A change would make the order\'s total less than what has been received for it.',
    action: 'Record a refund of the difference first.',
    example: { detail: 'The new total 80.00 CNY is less than the 100.00 CNY received; refund the difference first.', errors: [{ pointer: '/items', message: 'would bring the total below the amount received' }] },
  },
  'refund-required': {
    status: 422,
    title: 'Refund required',
    description: 'An order that has received money is cancelled.',
    action: 'Refund what was received (POST /v1/orders/{id}/payments with kind refund), then cancel.',
    example: { detail: '100.00 CNY has been received for this order: refund it before cancelling.', errors: [{ pointer: '/status', message: 'an order holding payments cannot be cancelled' }] },
  },
  'payment-not-accepted': {
    status: 422,
    title: 'Payment not accepted',
    description: 'The order\'s status takes no payment (only pending orders do) or no refund of this kind.',
    action: 'Check the order\'s status; the detail names the statuses that take the payment kind.',
    example: { detail: 'A cancelled order takes no more payments.', errors: [{ pointer: '/kind', message: 'payments are recorded against pending orders' }] },
  },
  'payment-exceeds-due': {
    status: 422,
    title: 'Payment exceeds the amount due',
    description: 'A payment is larger than the order\'s outstanding amount.',
    action: 'Pay at most the amount the message names.',
    example: { detail: 'The payment exceeds the outstanding 20.00 CNY.', errors: [{ pointer: '/amount', message: 'must be at most 20.00 CNY' }] },
  },
  'refund-exceeds-received': {
    status: 422,
    title: 'Refund exceeds the amount received',
    description: 'A refund is larger than what was received for the order and not yet refunded.',
    action: 'Refund at most the amount the message names.',
    example: { detail: 'The refund exceeds the 100.00 CNY received.', errors: [{ pointer: '/amount', message: 'must be at most 100.00 CNY' }] },
  },
  'segment-kind-mismatch': {
    status: 422,
    title: 'Operation does not fit the segment kind',
    description: 'A dynamic segment without a filter, a static segment with one, members added to a dynamic segment, or a refresh of a static segment.',
    action: 'Dynamic segments have a filter and are refreshed; static segments take members by id.',
    example: { detail: 'A dynamic segment needs a filter.', errors: [{ pointer: '/filter', message: 'is required for a dynamic segment' }] },
  },
  'record-archived': {
    status: 422,
    title: 'Record archived',
    description: 'The operation needs a live record and this one is archived (members of an archived segment, a merge into an archived customer).',
    action: 'Restore the record first.',
    example: { detail: 'The segment is archived.' },
  },
  'customer-merged': {
    status: 422,
    title: 'Customer merged',
    description: 'The customer was merged into another one; it is a forwarding record that takes no writes.',
    action: 'Write to the customer the detail names (merged_into_id of the record).',
    example: { detail: 'This customer was merged into 0190f1c2-7a7b-7cc1-8d1e-2f3a4b5c6d7e; write to that customer instead.' },
  },
  'merge-rejected': {
    status: 422,
    title: 'Merge rejected',
    description: 'The duplicate of a merge is the target itself, does not exist, or was already merged.',
    action: 'Name another customer as duplicate_id.',
    example: { detail: 'A customer cannot be merged into itself.', errors: [{ pointer: '/duplicate_id', message: 'A customer cannot be merged into itself.' }] },
  },
  // 429, 431: limits.
  'rate-limited': {
    status: 429,
    title: 'Rate limited',
    description: 'The caller (token subject, else client address) sent more requests than RATE_LIMIT_MAX in the window. RateLimit-* headers say where it stands.',
    action: RETRY,
    example: { detail: 'Rate limit of 1000 requests exceeded. Retry in 1 minute.' },
  },
  'authentication-throttled': {
    status: 429,
    title: 'Authentication failures throttled',
    description: 'Too many failed authentications from this client address, or with this token, in the window.',
    action: 'Fix the credentials, then retry after Retry-After.',
    example: { detail: 'Rate limit of 100 requests exceeded. Retry in 60 s.' },
  },
  'request-header-fields-too-large': {
    status: 431,
    title: 'Request header fields too large',
    description: 'The request headers are over Node\'s maxHeaderSize (16 KiB); answered before routing. The connection is closed after the answer.',
    action: 'Send smaller headers (cookies and tokens are the usual cause).',
    example: { detail: 'The request headers are larger than this server accepts.' },
  },
  // 5xx.
  'internal-server-error': {
    status: 500,
    title: 'Internal server error',
    description: 'A bug: the server failed in a way it did not expect. It is logged in full with the request_id; no internals are answered.',
    action: 'Report the request_id. A write that failed this way was rolled back.',
    example: { detail: 'An unexpected error occurred. It has been logged with this request id.' },
  },
  'database-unavailable': {
    status: 503,
    title: 'Database unavailable',
    description: 'The database could not be reached, or the connection was lost mid-request. Nothing the request started was committed.',
    action: RETRY,
    example: { detail: 'The database is unreachable. Try again shortly.' },
  },
  'database-timeout': {
    status: 503,
    title: 'Database timeout',
    description: 'A statement ran longer than the database\'s statement timeout and was cancelled; the request\'s writes were rolled back.',
    action: `${RETRY} A report that always times out needs a narrower range or filter.`,
    example: { detail: 'The database took too long to answer. Try again shortly.' },
  },
  'database-at-capacity': {
    status: 503,
    title: 'Database at capacity',
    description: 'The database refused a connection or ran out of resources (too many connections, out of memory or disk).',
    action: RETRY,
    example: { detail: 'The database is at capacity. Try again shortly.' },
  },
  'concurrent-change': {
    status: 503,
    title: 'Concurrent change',
    description: 'The write conflicted with a concurrent one (a serialization failure or deadlock) and was rolled back, after the server\'s own retries.',
    action: RETRY,
    example: { detail: 'The change conflicted with a concurrent change. Retry the request.' },
  },
  'deadline-exceeded': {
    status: 503,
    title: 'Deadline exceeded',
    description: 'The request did not complete within REQUEST_DEADLINE_MS (REQUEST_DEADLINE_LONG_MS for analytics, segment counts and imports). Its queries were stopped; nothing was committed unless the commit was already under way.',
    action: `${RETRY} Read the record before retrying a write without an Idempotency-Key.`,
    example: { detail: 'The request did not complete within 25000 ms. Nothing it started was committed unless it was already committing. Try again shortly.' },
  },
  'overloaded': {
    status: 503,
    title: 'Overloaded',
    description: 'The instance sheds load (event loop delay or memory over its thresholds) and refuses new work before doing any.',
    action: RETRY,
    example: { detail: 'The service is overloaded. Try again shortly.' },
  },
  'token-keys-unavailable': {
    status: 503,
    title: 'Token keys unavailable',
    description: 'The keys that verify tokens (JWKS) could not be fetched; the token itself may be fine.',
    action: RETRY,
    example: { detail: 'Token keys are unavailable. Try again shortly.' },
  },
  'shutting-down': {
    status: 503,
    title: 'Shutting down',
    description: 'The instance is stopping. From the stop signal on, /readyz answers this so load balancers send requests elsewhere while requests are still served; once the listener has closed, a request that still arrives on an open connection is answered this too, with Connection: close.',
    action: 'Retry on a new connection after Retry-After; a load balancer sends it to another instance.',
    example: { detail: 'The instance is shutting down.' },
  },
  'migrations-pending': {
    status: 503,
    title: 'Migrations pending',
    description: '/readyz: the database has migrations this release needs that are not applied yet.',
    action: 'Operators: run npm run migrate (or start with MIGRATE_ON_START).',
    example: { detail: 'Database migrations are pending.' },
  },
  // Access control (issue 14); appended, so the contract's enum of codes only grows at its end.
  'subject-taken': {
    status: 409,
    title: 'Subject taken',
    description: 'Another user already has this subject (the sub claim of its tokens).',
    action: 'Look the other user up; a subject maps to one user.',
    example: { detail: 'Another user already has this subject.', errors: [{ pointer: '/subject', message: 'is already the subject of another user' }] },
  },
  'role-key-taken': {
    status: 409,
    title: 'Role key taken',
    description: 'Another role already has this key.',
    action: 'Pick another key.',
    example: { detail: 'Another role already has this key.', errors: [{ pointer: '/key', message: 'is already the key of another role' }] },
  },
  'outside-visibility': {
    status: 422,
    title: 'Outside your visibility',
    description: 'The write would give a record an owner or owning team whose records you cannot see (a customer created or transferred into another team). Row-level security refuses it.',
    action: 'Choose an owner and team within your visibility, or ask someone who sees both to transfer the record.',
    example: { detail: 'The record would belong to an owner or team outside your visibility.' },
  },
  'unknown-principal': {
    status: 422,
    title: 'Unknown user, team or role',
    description: 'A user, team or role named in the body does not exist or is archived.',
    action: 'Check the ids and keys at the pointers; restore an archived team or role first.',
    example: { detail: 'A team or role named in the body does not exist.', errors: [{ pointer: '/roles/0', message: 'is not a live role' }] },
  },
  'team-cycle': {
    status: 422,
    title: 'Team inside itself',
    description: 'The team\'s new parent is the team itself or one of its own sub-teams.',
    action: 'Choose a parent outside the team\'s sub-tree.',
    example: { detail: 'A team cannot be inside itself or its own sub-teams.', errors: [{ pointer: '/parent_id', message: 'is the team or one of its sub-teams' }] },
  },
  'builtin-role': {
    status: 422,
    title: 'Default role',
    description: 'A default role (admin, sales_manager, sales_rep, support_agent, marketing_analyst, auditor, integration) cannot be archived.',
    action: 'Change the role instead, or take it away from its users.',
    example: { detail: 'A default role cannot be archived.' },
  },
} as const satisfies Record<string, ProblemType>

export type ProblemCode = keyof typeof PROBLEM_TYPES

export const PROBLEM_CODES = Object.keys(PROBLEM_TYPES) as ProblemCode[]

/** Where a code's page is served: problem `type` URIs resolve to it (against PUBLIC_URL when set). */
export const PROBLEMS_PATH = '/problems'
export const problemPath = (code: ProblemCode): string => `${PROBLEMS_PATH}/${code}`

export const isProblemCode = (code: unknown): code is ProblemCode => typeof code === 'string' && Object.hasOwn(PROBLEM_TYPES, code)

/** The codes a status can answer with, for the contract and its documentation. */
export const codesOfStatus = (status: number): ProblemCode[] => PROBLEM_CODES.filter((c) => PROBLEM_TYPES[c].status === status)
