import pg from 'pg'

/**
 * A database of its own for one bench run, on the server DATABASE_URL names (its maintenance
 * database, by default the local postgres): created empty, dropped at the end with whatever
 * sessions still use it. The name carries the bench and the pid, so parallel runs do not meet.
 */
export interface ScratchDatabase {
  name: string
  /** The scratch database's URL (the admin URL with its path replaced). */
  url: string
  create(): Promise<void>
  drop(): Promise<void>
}

export function scratchDatabase(bench: string, adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'): ScratchDatabase {
  const name = `crm_bench_${bench}_${process.pid}`
  const u = new URL(adminUrl)
  u.pathname = '/' + name
  const admin = async (query: string) => {
    const c = new pg.Client({ connectionString: adminUrl })
    await c.connect()
    try {
      await c.query(query)
    } finally {
      await c.end()
    }
  }
  return {
    name,
    url: u.toString(),
    create: () => admin(`create database "${name}"`),
    drop: () => admin(`drop database if exists "${name}" with (force)`),
  }
}
