import { sql, type RawBuilder } from 'kysely'
import type { DbExecutor } from '../../db/database.js'
import { compiledByShape } from '../../db/compiled.js'
import { keysetSql, type PageRequest, type SortKey } from '../../lib/pagination.js'
import type { TimelineType } from './timeline.schemas.js'

/** Newest first: each source's (customer, time, id) index read backwards. */
export const TIMELINE_KEYS: SortKey[] = [{ field: 'occurred_at', desc: true, type: 'timestamp' }]

export interface TimelineRow {
  type: TimelineType
  id: string
  occurred_at: string
  summary: Record<string, unknown>
}

interface Source {
  /** Its columns as (type, id, occurred_at, summary). Summaries carry no PII values. */
  select: RawBuilder<unknown>
  from: RawBuilder<unknown>
  /** The time and id columns its (customer, time, id) index orders by. */
  time: RawBuilder<unknown>
  id: RawBuilder<unknown>
  where: (customerId: string) => RawBuilder<unknown>
}

/**
 * Each source for one customer. A profile change lists the names of the fields that changed,
 * not their values.
 */
const SOURCES: Record<TimelineType, Source> = {
  interaction: {
    select: sql`'interaction' as type, i.id, i.occurred_at,
      jsonb_build_object('channel', i.channel, 'direction', i.direction, 'subject', i.subject, 'outcome', i.outcome) as summary`,
    from: sql`interactions i`, time: sql`i.occurred_at`, id: sql`i.id`,
    where: (id) => sql`i.customer_id = ${id} and i.archived_at is null`,
  },
  order: {
    select: sql`'order' as type, o.id, o.ordered_at as occurred_at,
      jsonb_build_object('order_number', o.order_number, 'status', o.status, 'total', o.total::text, 'currency', o.currency) as summary`,
    from: sql`orders o`, time: sql`o.ordered_at`, id: sql`o.id`,
    where: (id) => sql`o.customer_id = ${id} and o.archived_at is null`,
  },
  feedback: {
    select: sql`'feedback' as type, f.id, f.submitted_at as occurred_at,
      jsonb_build_object('kind', f.kind, 'score', f.score, 'status', f.status, 'subject', f.subject) as summary`,
    from: sql`feedback f`, time: sql`f.submitted_at`, id: sql`f.id`,
    where: (id) => sql`f.customer_id = ${id} and f.archived_at is null`,
  },
  profile_change: {
    select: sql`'profile_change' as type, a.id, a.occurred_at,
      jsonb_build_object('action', a.action, 'actor', a.actor, 'changed_fields',
        (select coalesce(jsonb_agg(k order by k), '[]'::jsonb) from jsonb_object_keys(coalesce(a.after, a.before)) k
         where k not in ('version', 'updated_at') and (a.before -> k) is distinct from (a.after -> k))) as summary`,
    from: sql`audit_events a`, time: sql`a.occurred_at`, id: sql`a.id`,
    where: (id) => sql`a.entity = 'customers' and a.entity_id = ${id}`,
  },
}

/**
 * One page of the merged timeline in one query: UNION ALL of the sources, each reading only its
 * newest `limit + 1` rows after the cursor through its (customer, time, id) index, so a page
 * costs the same for a customer with ten events or a million; then the newest `limit + 1` of those.
 * The page is joined to the customer's row, so the same round trip says whether the customer
 * exists: undefined when it does not (a customer with no events yet gives one all-null row).
 */
export async function timelinePage(db: DbExecutor, customerId: string, types: TimelineType[], page: PageRequest): Promise<TimelineRow[] | undefined> {
  const [afterTime, afterId] = page.after ?? []
  const values = { customerId, take: page.limit + 1, afterTime, afterId }
  const rows = await pageCompiled(db, { types, cursor: page.after !== undefined }, values)
  if (rows.length === 0) return undefined
  return rows.filter((r): r is TimelineRow => r.id !== null)
}

interface PageValues extends Record<string, unknown> {
  customerId: string
  take: number
  afterTime: unknown
  afterId: unknown
}

// Compiled once per (sources, first page or not): the SQL of a page depends on nothing else.
const pageCompiled = compiledByShape((db, s: { types: TimelineType[]; cursor: boolean }, v: PageValues) => {
  const after = s.cursor ? [v.afterTime, v.afterId] : undefined
  const branches = s.types.map((t) => {
    const src = SOURCES[t]
    const keyset = keysetSql({ keys: TIMELINE_KEYS, after }, { column: () => src.time, id: src.id })
    return sql`(select ${src.select} from ${src.from} where ${src.where(v.customerId)} and ${keyset.where}
      order by ${keyset.orderBy} limit ${v.take})`
  })
  const page = sql<TimelineRow | { [K in keyof TimelineRow]: null }>`
    select t.type, t.id, t.occurred_at, t.summary from customers c
    left join lateral (
      select u.type, u.id, u.occurred_at, u.summary from (${sql.join(branches, sql` union all `)}) u
      order by ${keysetSql({ keys: TIMELINE_KEYS, after: undefined }, 'u').orderBy}
      limit ${v.take}
    ) t on true
    where c.id = ${v.customerId}
    order by ${keysetSql({ keys: TIMELINE_KEYS, after: undefined }, 't').orderBy}`
  return { compile: () => page.compile(db) }
})
