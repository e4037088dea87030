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
 * Each source as (type, id, occurred_at, summary) for one customer, newest first, from its
 * (customer, time, id) index: `time` is the column the source is ordered by. Summaries carry no
 * PII values: a profile change lists the names of the fields that changed, not their values.
 */
interface Source {
  time: string
  select: (customerId: string) => RawBuilder<unknown>
}

const SOURCES: Record<TimelineType, Source> = {
  interaction: {
    time: 'i.occurred_at',
    select: (id) => sql`
      select 'interaction' as type, i.id, i.occurred_at,
             jsonb_build_object('channel', i.channel, 'direction', i.direction, 'subject', i.subject, 'outcome', i.outcome) as summary
      from interactions i where i.customer_id = ${id} and i.archived_at is null`,
  },
  order: {
    time: 'o.ordered_at',
    select: (id) => sql`
      select 'order' as type, o.id, o.ordered_at as occurred_at,
             jsonb_build_object('order_number', o.order_number, 'status', o.status, 'total', o.total::text, 'currency', o.currency) as summary
      from orders o where o.customer_id = ${id} and o.archived_at is null`,
  },
  feedback: {
    time: 'f.submitted_at',
    select: (id) => sql`
      select 'feedback' as type, f.id, f.submitted_at as occurred_at,
             jsonb_build_object('kind', f.kind, 'score', f.score, 'status', f.status, 'subject', f.subject) as summary
      from feedback f where f.customer_id = ${id} and f.archived_at is null`,
  },
  profile_change: {
    time: 'a.occurred_at',
    select: (id) => sql`
      select 'profile_change' as type, a.id, a.occurred_at,
             jsonb_build_object('action', a.action, 'actor', a.actor, 'changed_fields',
               (select coalesce(jsonb_agg(k order by k), '[]'::jsonb) from jsonb_object_keys(coalesce(a.after, a.before)) k
                where k not in ('version', 'updated_at') and (a.before -> k) is distinct from (a.after -> k))) as summary
      from audit_events a where a.entity = 'customers' and a.entity_id = ${id}`,
  },
}

/**
 * One page of the merged timeline, or undefined when the customer does not exist, in one query.
 * Each source contributes only its own newest `limit + 1` rows after the cursor (a backward scan
 * of its (customer, time, id) index that stops there), and the UNION ALL of those few rows is
 * merged: a page costs the same for a customer with ten events as for one with ten thousand.
 * The customer row is joined in so that "no such customer" needs no query of its own.
 */
export async function timelinePage(db: DbExecutor, customerId: string, types: TimelineType[], after: [string, string] | undefined, limit: number): Promise<TimelineRow[] | undefined> {
  const branches = types.map((t) => {
    const { time, select } = SOURCES[t]
    const column = sql.raw(time)
    const idColumn = sql.raw(`${time.split('.')[0]}.id`)
    const cursor = after ? sql`and (${column}, ${idColumn}) < (${after[0]}::timestamptz, ${after[1]}::uuid)` : sql``
    return sql`(${select(customerId)} ${cursor} order by ${column} desc, ${idColumn} desc limit ${limit + 1})`
  })
  const result = await sql<TimelineRow | { type: null }>`
    select t.type, t.id, t.occurred_at, t.summary
    from customers c
    left join lateral (
      select u.* from (${sql.join(branches, sql` union all `)}) u
      order by u.occurred_at desc, u.id desc
      limit ${limit + 1}
    ) t on true
    where c.id = ${customerId}
    order by t.occurred_at desc, t.id desc`.execute(db)
  if (result.rows.length === 0) return undefined
  return result.rows.filter((r): r is TimelineRow => r.type !== null)
}
