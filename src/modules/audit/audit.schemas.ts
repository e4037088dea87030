import { Type, type Static } from 'typebox'
import { Nullable, StringEnum, Timestamp, Uuid, ref } from '../../lib/schema.js'
import { PageQuery, pageEnvelope, type SortFields } from '../../lib/pagination.js'

export const AUDIT_ACTIONS = ['insert', 'update', 'delete'] as const
export const AUDIT_SORTS = { occurred_at: 'timestamp' } as const satisfies SortFields

const Snapshot = (description: string) =>
  Nullable(Type.Object({}, { additionalProperties: true, description: `${description}; personal data masked unless the token has pii:read` }))

export const AuditEvent = Type.Object(
  {
    id: Uuid(),
    occurred_at: Timestamp({ description: 'When the transaction that made the change started' }),
    actor: Type.String({ description: 'The token subject that made the change (db:<role> for changes made outside the API)', example: 'user:42' }),
    request_id: Nullable(Type.String({ description: 'The server\'s id of the API request that made the change (its x-request-id response header)', example: 'b7c1e0a4-2f7d-4d7e-9a51-0f3f0c6c1a2e' })),
    correlation_id: Nullable(Type.String({ description: 'The id the client gave that request (its x-correlation-id or x-request-id request header), if any', example: 'checkout-7f3a' })),
    route: Nullable(Type.String({ description: 'Method and route of the API request', example: 'PATCH /v1/customers/:id' })),
    action: StringEnum(AUDIT_ACTIONS),
    entity: Type.String({ description: 'The changed record\'s table', example: 'customers' }),
    entity_id: Uuid({ description: 'The changed record\'s id' }),
    before: Snapshot('The record before the change (null for an insert)'),
    after: Snapshot('The record after the change (null for a delete)'),
  },
  {
    $id: 'AuditEvent',
    description: 'One changed record: who changed it, in which request, and its state before and after',
    example: {
      id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0b01', occurred_at: '2026-11-22T08:30:00.123456Z', actor: 'user:42',
      request_id: 'b7c1e0a4-2f7d-4d7e-9a51-0f3f0c6c1a2e', correlation_id: 'checkout-7f3a', route: 'PATCH /v1/customers/:id', action: 'update', entity: 'customers',
      entity_id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11',
      before: { id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', name: 'Li Na', job_title: null, version: 1 },
      after: { id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a11', name: 'Li Na', job_title: 'Head of purchasing', version: 2 },
    },
  },
)

export const AuditEventList = Type.Object(pageEnvelope(ref(AuditEvent), 'A page of audit events').properties, {
  $id: 'AuditEventList',
  description: 'A page of audit events',
  example: { data: [], next_cursor: null },
})

export const AuditEventListQuery = Type.Object(
  {
    ...PageQuery,
    sort: Type.Optional(Type.String({ maxLength: 100, description: 'occurred_at (oldest first) or -occurred_at (newest first, the default)', example: '-occurred_at' })),
    entity: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,62}$', description: 'Table of the changed records', example: 'customers' })),
    entity_id: Type.Optional(Uuid({ description: 'Id of the changed record' })),
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Token subject that made the changes', example: 'user:42' })),
    action: Type.Optional(StringEnum(AUDIT_ACTIONS)),
    request_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The server\'s id of the request that made the changes (its x-request-id response header)' })),
    occurred_after: Type.Optional(Timestamp({ description: 'Events at or after this instant (RFC 3339)' })),
    occurred_before: Type.Optional(Timestamp({ description: 'Events before this instant (RFC 3339)' })),
  },
  { additionalProperties: false },
)

export const AuditVerifyQuery = Type.Object(
  {
    full: Type.Boolean({ default: false, description: 'Recompute every position from the first instead of those after the last verified one' }),
  },
  { additionalProperties: false },
)

export const AuditChainVerification = Type.Object(
  {
    intact: Type.Boolean({ description: 'True when every sealed audit event is unchanged and the chain has no missing position' }),
    sealed_count: Type.Integer({ minimum: 0, description: 'Audit events covered by the hash chain', example: 1520 }),
    unsealed_count: Type.Integer({ minimum: 0, description: 'Audit events not yet sealed (written by transactions still running when the chain was sealed)', example: 0 }),
    head: Nullable(
      Type.Object({
        seq: Type.Integer({ minimum: 1, description: 'The last chain position', example: 1520 }),
        hash: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the last position (hex): publish it to detect a rewrite of the whole chain', example: 'a9903de3b1d9d23d1b0a62b1fd88d03366a671b0b5727fe0a9f18a3248596246' }),
      }, { description: 'The end of the chain (null while it is empty)' }),
    ),
    first_broken: Nullable(
      Type.Object({
        seq: Type.Integer({ minimum: 1, description: 'The first chain position that does not verify', example: 17 }),
        audit_event_id: Nullable(Uuid({ description: 'The audit event sealed at that position (null when the position itself is missing)' })),
        reason: Type.String({ description: 'Why the position does not verify', example: 'the audit event or its hash differs from what was sealed' }),
      }, { description: 'The first broken position (null when intact)' }),
    ),
    verified_from: Type.Integer({ minimum: 0, description: 'The links after this position were recomputed; 0 when the whole chain was (full=true, or nothing verified before)', example: 1480 }),
  },
  {
    $id: 'AuditChainVerification',
    description: 'The result of recomputing the audit hash chain: each sealed event\'s hash covers the previous one, so a changed, removed or reordered event breaks every link after it',
    example: {
      intact: true, sealed_count: 1520, unsealed_count: 0,
      head: { seq: 1520, hash: 'a9903de3b1d9d23d1b0a62b1fd88d03366a671b0b5727fe0a9f18a3248596246' }, first_broken: null, verified_from: 1480,
    },
  },
)

export type AuditEventDto = Static<typeof AuditEvent>
export type AuditEventListQueryT = Static<typeof AuditEventListQuery>
export type AuditChainVerificationDto = Static<typeof AuditChainVerification>

/** Named schemas of this domain, registered once by the routes plugin. */
export const auditSchemas = [AuditEvent, AuditEventList, AuditChainVerification]
