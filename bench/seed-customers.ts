/**
 * `npx tsx bench/seed-customers.ts --customers N --database-url URL [--seed S]`
 *
 * `npm run seed` with only the customers (and their contact points): the generator's orders,
 * interactions and feedback are switched off, everything else is the seed's own code (migration,
 * COPY with triggers off, index rebuild, metrics, VACUUM ANALYZE). For the benchmarks that need
 * customers and nothing else (bench/jobs-at-scale.ts for the audit and event jobs: its history is
 * one audit row per customer); 1M customers load in minutes instead of the full seed's ~50.
 * Customers' rows are as the full seed makes them but for what orders decide (their lifecycle
 * stage and the `vip` tag): no customer has bought.
 */
import { parseArgs } from 'node:util'
import { createMigrationDb } from '../src/db/connect.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { SeedGenerator } from '../scripts/seed/generate.js'
import { seedDatabase } from '../scripts/seed/load.js'

const { values } = parseArgs({
  options: {
    customers: { type: 'string' },
    seed: { type: 'string', default: '1' },
    'database-url': { type: 'string' },
  },
})
const customers = Number(values.customers)
if (!Number.isSafeInteger(customers) || customers < 1 || !values['database-url']) {
  process.stderr.write('usage: npx tsx bench/seed-customers.ts --customers N --database-url URL [--seed S]\n')
  process.exit(2)
}

// The generator's per-customer history, off: no order, interaction or feedback rows.
const proto = SeedGenerator.prototype as unknown as Record<string, unknown>
proto.orders = () => ({ ids: [], counted: 0, lastCountedAt: null })
proto.interactions = () => []
proto.feedback = () => undefined

const migrator = createMigrationDb(values['database-url'])
await migrateToLatest(migrator)
await migrator.destroy()
const result = await seedDatabase({ url: values['database-url'], customers, seed: Number(values.seed) })
const s = result.seconds
process.stdout.write(
  `seeded ${customers} customers: ${Object.entries(result.rows).filter(([, n]) => n > 0).map(([t, n]) => `${t} ${n}`).join(', ')}; ` +
    `${s.total.toFixed(0)} s (COPY ${s.load.toFixed(0)} s, metrics ${s.metrics.toFixed(0)} s, indexes ${s.indexes.toFixed(0)} s, vacuum+analyze ${s.analyze.toFixed(0)} s)\n`,
)
