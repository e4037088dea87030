import { sql, type RawBuilder } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import type { TimelineType } from './timeline.schemas.js'

export interface TimelineRow {
  type: TimelineType
  id: string
  occurred_at: string
  summary: Record<string, unknown>
}

/**
 * Each source as (type, id, occurred_at, summary) for one customer. Summaries carry no PII
 * values: a profile change lists the names of the fields that changed, not their values.
 */
const SOURCES: Record<TimelineType, (customerId: string) => RawBuilder<unknown>> = {
  interaction: (id) => sql`
    select 'interaction' as type, i.id, i.occurred_at,
           jsonb_build_object('channel', i.channel, 'direction', i.direction, 'subject', i.subject, 'outcome', i.outcome) as summary
    from interactions i where i.customer_id = ${id} and i.archived_at is null`,
  order: (id) => sql`
    select 'order' as type, o.id, o.ordered_at as occurred_at,
           jsonb_build_object('order_number', o.order_number, 'status', o.status, 'total', o.total::text, 'currency', o.currency) as summary
    from orders o where o.customer_id = ${id} and o.archived_at is null`,
  feedback: (id) => sql`
    select 'feedback' as type, f.id, f.submitted_at as occurred_at,
           jsonb_build_object('kind', f.kind, 'score', f.score, 'status', f.status, 'subject', f.subject) as summary
    from feedback f where f.customer_id = ${id} and f.archived_at is null`,
  profile_change: (id) => sql`
    select 'profile_change' as type, a.id, a.occurred_at,
           jsonb_build_object('action', a.action, 'actor', a.actor, 'changed_fields',
             (select coalesce(jsonb_agg(k order by k), '[]'::jsonb) from jsonb_object_keys(coalesce(a.after, a.before)) k
              where k not in ('version', 'updated_at') and (a.before -> k) is distinct from (a.after -> k))) as summary
    from audit_events a where a.entity = 'customers' and a.entity_id = ${id}`,
}

/**
 * One page of the merged timeline in one query: UNION ALL of the sources, each filtered by
 * its (customer_id, time) index and the cursor, then the newest `limit + 1`.
 */
export async function timelinePage(db: DbExecutor, customerId: string, types: TimelineType[], after: [string, string] | undefined, limit: number): Promise<TimelineRow[]> {
  const union = sql.join(types.map((t) => SOURCES[t](customerId)), sql` union all `)
  const cursor = after ? sql`where (t.occurred_at, t.id) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``
  const result = await sql<TimelineRow>`
    select t.type, t.id, t.occurred_at, t.summary from (${union}) t
    ${cursor}
    order by t.occurred_at desc, t.id desc
    limit ${limit + 1}`.execute(db)
  return result.rows
}
