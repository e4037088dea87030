/**
 * One benchmark database per size (crm_bench_<size>), migrated and seeded once and reused by
 * later runs while it still holds that many seeded customers; and the fixtures sampled from it.
 */
import pg from 'pg'
import { createMigrationDb } from '../src/db/connect.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { seedDatabase } from '../scripts/seed/load.js'
import { BENCH_SEGMENTS, type Fixtures } from './scenarios.js'

export const withDatabase = (url: string, name: string) => {
  const u = new URL(url)
  u.pathname = '/' + name
  return u.toString()
}

async function query<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, options: '-c TimeZone=UTC' })
  await c.connect()
  try {
    return (await c.query<T>(text, values)).rows
  } finally {
    await c.end()
  }
}

export async function ensureDatabase(adminUrl: string, name: string, size: number, seed: number, log: (s: string) => void): Promise<string> {
  const url = withDatabase(adminUrl, name)
  const exists = (await query(adminUrl, 'select 1 from pg_database where datname = $1', [name])).length > 0
  if (exists) {
    const [row] = await query<{ n: number }>(url, `select count(*)::int as n from customers`).catch(() => [{ n: -1 }])
    if (row && row.n >= size && row.n < size + 100) {
      log(`${name}: reusing (${row.n} customers)`)
      const migrator = createMigrationDb(url)
      await migrateToLatest(migrator)
      await migrator.destroy()
      return url
    }
    log(`${name}: has ${row?.n} customers, not ${size}: recreating`)
    await query(adminUrl, `drop database "${name}" with (force)`)
  }
  await query(adminUrl, `create database "${name}"`)
  const migrator = createMigrationDb(url)
  await migrateToLatest(migrator)
  await migrator.destroy()
  log(`${name}: seeding ${size} customers…`)
  const r = await seedDatabase({ url, customers: size, seed })
  log(`${name}: ${r.totalRows} rows in ${r.seconds.total.toFixed(1)} s (COPY ${Math.round(r.totalRows / r.seconds.load)} rows/s)`)
  await query(url, 'vacuum (analyze) customers, contact_points, orders, interactions, feedback, customer_metrics')
  return url
}

export const Q_SAMPLES = [
  // Latin family names, a Cyrillic and an Arabic one, Han and Kana names (3+ characters use the
  // trigram index; 2-character CJK names cannot), an email fragment and a phone fragment.
  'smith', 'garcia', 'Müller', 'Иванов', 'الحسن', '王秀英', '张伟', '佐藤', 'wang.wei', 'olga.', '+8613', 'zz-no-match',
]

export async function loadFixtures(url: string, size: number): Promise<Fixtures> {
  const ids = await query<{ id: string }>(url, 'select id from customers order by random() limit 2000')
  const heavy = await query<{ customer_id: string }>(url, 'select customer_id from customer_metrics order by order_count + interaction_count desc limit 50')
  const starts = await query<{ created_at: string; id: string }>(
    url, `select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at, id from customers order by random() limit 300`,
  )
  // pgbench picks its ids from this table (its scripts cannot hold a list).
  await query(url, 'drop table if exists bench_ids; create table bench_ids (n int primary key, id uuid not null)')
  await query(url, 'insert into bench_ids select row_number() over (), id from unnest($1::uuid[]) id', [ids.map((r) => r.id)])
  return {
    size,
    customerIds: ids.map((r) => r.id),
    timelineIds: [...ids.slice(0, 950).map((r) => r.id), ...heavy.map((r) => r.customer_id)],
    listStarts: starts,
    qTerms: Q_SAMPLES,
    segmentIds: [],
  }
}

/**
 * The ids of BENCH_SEGMENTS in the database behind `baseUrl`: each live segment of that name is
 * reused (its filter set through the API if the bench's has changed), a missing one created
 * through the API, so it is validated and audited like any client's.
 */
export async function ensureSegments(url: string, baseUrl: string, authorization: string, log: (s: string) => void): Promise<string[]> {
  const ids: string[] = []
  for (const s of BENCH_SEGMENTS) {
    const [live] = await query<{ id: string; same: boolean }>(
      url, 'select id, filter = $2::jsonb as same from segments where lower(name) = lower($1) and archived_at is null', [s.name, JSON.stringify(s.filter)],
    )
    if (live?.same) {
      ids.push(live.id)
      continue
    }
    const res = await fetch(live ? `${baseUrl}/v1/segments/${live.id}` : `${baseUrl}/v1/segments`, {
      method: live ? 'PATCH' : 'POST',
      headers: { authorization, 'content-type': live ? 'application/merge-patch+json' : 'application/json' },
      body: JSON.stringify(live ? { filter: s.filter } : { name: s.name, kind: 'dynamic', filter: s.filter }),
    })
    const body = (await res.json()) as { id: string }
    if (!res.ok) throw new Error(`segment "${s.name}": ${res.status} ${JSON.stringify(body)}`)
    log(`segment "${s.name}" ${live ? 'updated' : 'created'}: ${body.id}`)
    ids.push(body.id)
  }
  return ids
}
