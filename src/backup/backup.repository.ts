import { sql } from 'kysely'
import type { DbExecutor } from '../db/database.js'
import { CHECKSUM_TABLE } from '../db/migrate.js'

/** Schemas PostgreSQL owns: everything else in a database is the application's. */
const SYSTEM_SCHEMAS = sql`(n.nspname in ('pg_catalog', 'information_schema') or n.nspname like 'pg\\_toast%' or n.nspname like 'pg\\_temp%')`

export async function serverMajor(db: DbExecutor): Promise<number> {
  const { rows } = await sql<{ v: string }>`select current_setting('server_version_num') as v`.execute(db)
  return Math.floor(Number(rows[0]!.v) / 10000)
}

export async function inRecovery(db: DbExecutor): Promise<boolean> {
  return (await sql<{ r: boolean }>`select pg_is_in_recovery() as r`.execute(db)).rows[0]!.r
}

/**
 * Exports the calling transaction's snapshot, for pg_dump --snapshot to see exactly what it sees.
 * The transaction sits idle while pg_dump runs: a server-wide idle timeout must not end it.
 */
export async function exportSnapshot(trx: DbExecutor): Promise<string> {
  await sql`set local idle_in_transaction_session_timeout = 0`.execute(trx)
  return (await sql<{ s: string }>`select pg_export_snapshot() as s`.execute(trx)).rows[0]!.s
}

/** Exact row count of every table outside the system schemas, by schema.table. */
export async function tableRowCounts(db: DbExecutor): Promise<Record<string, number>> {
  const { rows: tables } = await sql<{ name: string }>`
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not ${SYSTEM_SCHEMAS}
    order by 1`.execute(db)
  const counts: Record<string, number> = {}
  for (const { name } of tables) {
    counts[name] = Number((await sql<{ n: number }>`select count(*) as n from ${sql.raw(name)}`.execute(db)).rows[0]!.n)
  }
  return counts
}

/** User relations (tables, views, sequences, ...) outside the system schemas: 0 for an empty database. */
export async function userRelationCount(db: DbExecutor): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*) as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and not ${SYSTEM_SCHEMAS}`.execute(db)
  return Number(rows[0]!.n)
}

export interface MigrationLevel {
  /** The migration applied last (in name order, as Kysely orders them); null before any. */
  last: string | null
  applied: Array<{ name: string; sha256: string | null }>
}

export async function migrationLevel(db: DbExecutor): Promise<MigrationLevel> {
  const exists = (await sql<{ t: string | null }>`select to_regclass('kysely_migration')::text as t`.execute(db)).rows[0]!.t
  if (!exists) return { last: null, applied: [] }
  const hasChecksums = (await sql<{ t: string | null }>`select to_regclass(${CHECKSUM_TABLE})::text as t`.execute(db)).rows[0]!.t
  const { rows } = hasChecksums
    ? await sql<{ name: string; sha256: string | null }>`
        select m.name, c.sha256 from kysely_migration m left join ${sql.table(CHECKSUM_TABLE)} c using (name) order by m.name`.execute(db)
    : await sql<{ name: string; sha256: string | null }>`select name, null as sha256 from kysely_migration order by name`.execute(db)
  return { last: rows[rows.length - 1]?.name ?? null, applied: rows }
}

/**
 * Roles the database's privileges name (table, column, function, schema and default grants),
 * other than the current user and PUBLIC: a dump carries the grants but not the roles, which
 * belong to the cluster.
 */
export async function grantedRoles(db: DbExecutor): Promise<string[]> {
  const { rows } = await sql<{ rolname: string }>`
    with grantees as (
      select (aclexplode(c.relacl)).grantee from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relacl is not null and not ${SYSTEM_SCHEMAS}
      union select (aclexplode(a.attacl)).grantee from pg_attribute a join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace where a.attacl is not null and not ${SYSTEM_SCHEMAS}
      union select (aclexplode(p.proacl)).grantee from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.proacl is not null and not ${SYSTEM_SCHEMAS}
      union select (aclexplode(n.nspacl)).grantee from pg_namespace n where n.nspacl is not null and not ${SYSTEM_SCHEMAS}
      union select (aclexplode(d.defaclacl)).grantee from pg_default_acl d
    )
    select distinct r.rolname from grantees g join pg_roles r on r.oid = g.grantee
    where r.rolname <> current_user and r.rolname not like 'pg\\_%'
    order by 1`.execute(db)
  return rows.map((r) => r.rolname)
}

/**
 * Creates each missing role as NOLOGIN (the API's role is one: its connections log in as another
 * user and SET ROLE) and makes the current user a member, as the migrations do.
 */
export async function ensureRoles(db: DbExecutor, roles: string[]): Promise<string[]> {
  const created: string[] = []
  for (const role of roles) {
    const exists = (await sql<{ e: boolean }>`select exists (select from pg_roles where rolname = ${role}) as e`.execute(db)).rows[0]!.e
    if (!exists) {
      await sql`create role ${sql.id(role)} nologin`.execute(db)
      created.push(role)
    }
    const member = (await sql<{ m: boolean }>`select pg_has_role(current_user, ${role}, 'member') as m`.execute(db)).rows[0]!.m
    if (!member) await sql`grant ${sql.id(role)} to current_user`.execute(db)
  }
  return created
}

/** Fresh planner statistics: a restore brings rows, not statistics. */
export async function analyzeDatabase(db: DbExecutor): Promise<void> {
  await sql`analyze`.execute(db)
}

/** Drops every partitioned table outside the system schemas, with its partitions and what depends on it. */
export async function dropPartitionedTables(db: DbExecutor): Promise<void> {
  const { rows } = await sql<{ name: string }>`
    select format('%I.%I', n.nspname, c.relname) as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'p' and not c.relispartition and not ${SYSTEM_SCHEMAS}`.execute(db)
  if (rows.length) await sql`drop table if exists ${sql.raw(rows.map((r) => r.name).join(', '))} cascade`.execute(db)
}
