import { type Kysely, sql } from 'kysely'

/**
 * The client's own id of a request (x-correlation-id or x-request-id), recorded next to the
 * server's request id instead of replacing it.
 *
 * The column's default reads the transaction context (crm.correlation_id, set by the API with the
 * actor and request id), so the audit triggers fill it without being redefined, and the API's
 * role, which may insert only the columns the triggers list, cannot write it itself.
 *
 * The hash chain covers it: crm_audit_canonical appends it to an event's content when it is set,
 * so the content of every event written before this migration, and its hash, stay as they were.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table audit_events add column correlation_id text default crm_context('correlation_id')`.execute(db)
  await sql`
    create or replace function crm_audit_canonical(a audit_events) returns bytea language sql stable parallel safe as $$
      select convert_to((jsonb_build_array(
        a.id, (extract(epoch from a.occurred_at) * 1000000)::bigint, a.actor, a.request_id, a.route,
        a.action, a.entity, a.entity_id, a.before, a.after, a.txid)
        || case when a.correlation_id is null then '[]'::jsonb else jsonb_build_array(a.correlation_id) end)::text, 'UTF8')
    $$`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    create or replace function crm_audit_canonical(a audit_events) returns bytea language sql stable parallel safe as $$
      select convert_to(jsonb_build_array(
        a.id, (extract(epoch from a.occurred_at) * 1000000)::bigint, a.actor, a.request_id, a.route,
        a.action, a.entity, a.entity_id, a.before, a.after, a.txid)::text, 'UTF8')
    $$`.execute(db)
  await sql`alter table audit_events drop column correlation_id`.execute(db)
}
