import { once } from 'node:events'
import pg from 'pg'
import { from as copyFrom, type CopyStreamQuery } from 'pg-copy-streams'
import { COLUMNS, SEED_TABLES, SeedGenerator, type Lines, type SeedTable } from './generate.js'

export interface SeedOptions {
  url: string
  customers: number
  seed: number
  /** The day the generated history ends (default: today, 00:00 UTC). */
  asOf?: Date
  /**
   * Drop the secondary (non-unique) indexes of the seeded tables before the load and build them
   * again after it: one sort per index instead of millions of random index insertions.
   * Default: on from 50,000 customers.
   */
  rebuildIndexes?: boolean
  onProgress?: (customersDone: number, rowsDone: number) => void
}

export interface SeedResult {
  rows: Record<SeedTable, number>
  totalRows: number
  seconds: { load: number; metrics: number; indexes: number; analyze: number; total: number }
}

/** Customers generated between two writes to the COPY streams. */
const CHUNK = 500

const emptyLines = (): Lines => Object.fromEntries(SEED_TABLES.map((t) => [t, []])) as unknown as Lines

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'crm-seed', options: '-c TimeZone=UTC' })
  await client.connect()
  // Bulk load bypass: with the replica role no ordinary trigger fires (audit, metrics, touch and
  // the foreign-key checks): the generator produces consistent rows by construction, and the
  // metrics are computed set-wise afterwards. Needs a superuser (or PG15's role with SET on it).
  await client.query(`set session_replication_role = replica; set synchronous_commit = off`)
  return client
}

/** The non-unique, non-primary indexes of the given tables, with the DDL that recreates each. */
async function secondaryIndexes(client: pg.Client, tables: string[]) {
  const r = await client.query<{ name: string; def: string }>(
    `select quote_ident(ic.relname) as name, pg_get_indexdef(i.indexrelid) as def
     from pg_index i join pg_class t on t.oid = i.indrelid join pg_class ic on ic.oid = i.indexrelid
     where t.relname = any($1) and t.relnamespace = 'public'::regnamespace and not i.indisprimary and not i.indisunique
     order by t.relname, ic.relname`,
    [tables],
  )
  return r.rows
}

/**
 * Metrics, spend and the lifecycle stage of every customer, computed set-wise with the same
 * definitions as crm_refresh_customer_metrics() (the triggers' per-customer version): a few
 * hash aggregates over the whole tables instead of one trigger call per COPY statement.
 */
const FINALIZE_SQL = `
insert into customer_metrics as m (customer_id, order_count, first_order_at, last_order_at, interaction_count,
                                   last_interaction_at, open_complaints, latest_csat, latest_nps, refreshed_at)
select c.id, coalesce(o.n, 0), o.first_at, o.last_at, coalesce(i.n, 0), i.last_at, coalesce(f.open_complaints, 0), cs.score, np.score, now()
from customers c
left join (
  select customer_id, count(*)::int as n, min(ordered_at) as first_at, max(ordered_at) as last_at
  from orders where archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded') group by customer_id
) o on o.customer_id = c.id
left join (
  select customer_id, count(*)::int as n, max(occurred_at) as last_at from interactions where archived_at is null group by customer_id
) i on i.customer_id = c.id
left join (
  select customer_id, count(*)::int as open_complaints from feedback
  where archived_at is null and kind = 'complaint' and status in ('open', 'in_progress') group by customer_id
) f on f.customer_id = c.id
left join (
  select distinct on (customer_id) customer_id, score from feedback
  where archived_at is null and survey_type = 'csat' order by customer_id, submitted_at desc, id desc
) cs on cs.customer_id = c.id
left join (
  select distinct on (customer_id) customer_id, score from feedback
  where archived_at is null and survey_type = 'nps' order by customer_id, submitted_at desc, id desc
) np on np.customer_id = c.id
on conflict (customer_id) do update set
  order_count = excluded.order_count, first_order_at = excluded.first_order_at, last_order_at = excluded.last_order_at,
  interaction_count = excluded.interaction_count, last_interaction_at = excluded.last_interaction_at,
  open_complaints = excluded.open_complaints, latest_csat = excluded.latest_csat, latest_nps = excluded.latest_nps,
  refreshed_at = excluded.refreshed_at;

delete from customer_spend;
insert into customer_spend (customer_id, currency, order_count, total_spent)
select customer_id, currency, count(*)::int, sum(total - amount_refunded)
from orders where archived_at is null and status in ('paid', 'fulfilled', 'partially_refunded')
group by customer_id, currency;

select crm_refresh_purchase_history(null);

update customers c
set lifecycle_stage = crm_lifecycle_stage(m.order_count, m.last_order_at, now())
from customer_metrics m
where m.customer_id = c.id and not c.lifecycle_stage_manual
  and c.lifecycle_stage is distinct from crm_lifecycle_stage(m.order_count, m.last_order_at, now());
`

/**
 * Fills the database with `customers` customers and their contact points, orders (with items and
 * payments), interactions and feedback, through one COPY stream per table. Seeded rows have no
 * audit_events rows: the load runs with triggers off (see connect()).
 */
export async function seedDatabase(opts: SeedOptions): Promise<SeedResult> {
  const started = performance.now()
  const asOf = opts.asOf ?? new Date(new Date().toISOString().slice(0, 10) + 'T00:00:00Z')
  const rebuild = opts.rebuildIndexes ?? opts.customers >= 50_000
  const admin = await connect(opts.url)
  const clients: pg.Client[] = []
  let dropped: Array<{ name: string; def: string }> = []
  const rows = Object.fromEntries(SEED_TABLES.map((t) => [t, 0])) as Record<SeedTable, number>
  const seconds = { load: 0, metrics: 0, indexes: 0, analyze: 0, total: 0 }
  try {
    const start = await admin.query<{ n: number; next: string }>(
      `select (select count(*)::int from customers) as n,
              (select case when is_called then last_value + 1 else last_value end from order_number_seq) as next`,
    )
    const gen = new SeedGenerator({
      seed: opts.seed, startIndex: start.rows[0]!.n, total: opts.customers,
      firstOrderNumber: Number(start.rows[0]!.next), asOfMs: asOf.getTime(),
    })
    if (rebuild) {
      dropped = await secondaryIndexes(admin, SEED_TABLES)
      for (const ix of dropped) await admin.query(`drop index ${ix.name}`)
    }

    const t0 = performance.now()
    const streams = new Map<SeedTable, CopyStreamQuery>()
    const failures: Promise<never>[] = []
    for (const table of SEED_TABLES) {
      const client = await connect(opts.url)
      clients.push(client)
      const stream = client.query(copyFrom(`copy ${table} (${COLUMNS[table].join(', ')}) from stdin`))
      failures.push(new Promise<never>((_, reject) => stream.on('error', reject)))
      streams.set(table, stream)
    }
    const failed = Promise.race(failures)
    failed.catch(() => undefined)

    let lines = emptyLines()
    let done = 0
    let rowsDone = 0
    const flush = async () => {
      const waits: Promise<unknown>[] = []
      for (const table of SEED_TABLES) {
        const batch = lines[table]
        if (batch.length === 0) continue
        rows[table] += batch.length
        rowsDone += batch.length
        if (!streams.get(table)!.write(batch.join('\n') + '\n')) waits.push(once(streams.get(table)!, 'drain'))
      }
      lines = emptyLines()
      if (waits.length) await Promise.race([Promise.all(waits), failed])
      opts.onProgress?.(done, rowsDone)
    }
    for (let i = 0; i < opts.customers; i++) {
      gen.customer(i, lines)
      done++
      if (done % CHUNK === 0) await flush()
    }
    await flush()
    await Promise.race([
      Promise.all([...streams.values()].map((s) => new Promise<void>((resolve) => s.end(resolve)))),
      failed,
    ])
    seconds.load = (performance.now() - t0) / 1000

    await admin.query(`select setval('order_number_seq', $1::bigint, false)`, [gen.nextOrderNumber])
    const t1 = performance.now()
    await admin.query(FINALIZE_SQL)
    seconds.metrics = (performance.now() - t1) / 1000
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)))
    // Indexes come back even when the load failed half-way.
    const t2 = performance.now()
    await admin.query(`set maintenance_work_mem = '512MB'`)
    for (const ix of dropped) await admin.query(ix.def)
    seconds.indexes = (performance.now() - t2) / 1000
  }
  const t3 = performance.now()
  // VACUUM as well as ANALYZE: a freshly loaded table has no visibility map, so every
  // index-only scan would still visit the heap until autovacuum gets to it. A database in
  // steady state has been vacuumed; benchmarks should see that, not the first minutes after a load.
  await admin.query(`vacuum (analyze) customers, contact_points, orders, order_items, order_payments, interactions, feedback, customer_metrics, customer_spend`)
  seconds.analyze = (performance.now() - t3) / 1000
  await admin.end()
  seconds.total = (performance.now() - started) / 1000
  const totalRows = Object.values(rows).reduce((a, b) => a + b, 0)
  return { rows, totalRows, seconds }
}
