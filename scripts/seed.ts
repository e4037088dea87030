/**
 * `npm run seed -- --customers N [--seed S] [--as-of YYYY-MM-DD] [--database-url URL] [--indexes auto|keep|rebuild]`
 *
 * Fills a database with N realistic customers and their history (see scripts/seed/), through
 * COPY, after migrating it to the latest schema. Uses --database-url, else DATABASE_URL, else the
 * embedded PostgreSQL under DATA_DIR like `npm start`. The same --seed, N and --as-of give the
 * same data. Seeded rows have no audit rows (triggers are bypassed for the bulk load).
 */
import { parseArgs } from 'node:util'
import { loadConfig } from '../src/config.js'
import { createMigrationDb, resolveDatabase } from '../src/db/connect.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { seedDatabase } from './seed/load.js'

const { values } = parseArgs({
  options: {
    customers: { type: 'string' },
    seed: { type: 'string', default: '1' },
    'as-of': { type: 'string' },
    'database-url': { type: 'string' },
    indexes: { type: 'string', default: 'auto' },
    help: { type: 'boolean', default: false },
  },
})

const usage = 'usage: npm run seed -- --customers N [--seed S] [--as-of YYYY-MM-DD] [--database-url URL] [--indexes auto|keep|rebuild]\n'
const customers = Number(values.customers)
const seed = Number(values.seed)
if (values.help || !Number.isSafeInteger(customers) || customers < 1 || !Number.isSafeInteger(seed) || !['auto', 'keep', 'rebuild'].includes(values.indexes!)) {
  process.stderr.write(usage)
  process.exit(values.help ? 0 : 2)
}
const asOf = values['as-of'] ? new Date(`${values['as-of']}T00:00:00Z`) : undefined
if (asOf && Number.isNaN(asOf.getTime())) {
  process.stderr.write(`--as-of must be a date (YYYY-MM-DD)\n${usage}`)
  process.exit(2)
}

const config = loadConfig({ ...process.env, ...(values['database-url'] ? { DATABASE_URL: values['database-url'] } : {}) })
const target = await resolveDatabase(config)
let code = 0
try {
  const migrator = createMigrationDb(target.url)
  await migrateToLatest(migrator)
  await migrator.destroy()

  const tty = process.stderr.isTTY
  const started = performance.now()
  let lastDraw = 0
  const draw = (done: number, rows: number, force = false) => {
    const now = performance.now()
    if (!force && now - lastDraw < 250) return
    lastDraw = now
    const s = (now - started) / 1000
    const width = 30
    const filled = Math.round((done / customers) * width)
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${customers} customers, ${rows} rows, ${Math.round(rows / Math.max(s, 0.001))} rows/s, ${s.toFixed(0)} s`
    process.stderr.write(tty ? `\r${line}` : `${line}\n`)
  }
  const result = await seedDatabase({
    url: target.url, customers, seed, asOf,
    rebuildIndexes: values.indexes === 'auto' ? undefined : values.indexes === 'rebuild',
    onProgress: (done, rows) => draw(done, rows, done === customers),
  })
  if (tty) process.stderr.write('\n')
  const s = result.seconds
  process.stdout.write(
    `seeded ${customers} customers: ${Object.entries(result.rows).map(([t, n]) => `${t} ${n}`).join(', ')}\n` +
      `${result.totalRows} rows in ${s.total.toFixed(1)} s (${Math.round(result.totalRows / s.total)} rows/s overall; ` +
      `COPY ${s.load.toFixed(1)} s = ${Math.round(result.totalRows / s.load)} rows/s, metrics ${s.metrics.toFixed(1)} s, ` +
      `indexes ${s.indexes.toFixed(1)} s, vacuum+analyze ${s.analyze.toFixed(1)} s)\n`,
  )
} catch (err) {
  process.stderr.write(`\nseed failed: ${(err as Error).message}\n`)
  code = 1
} finally {
  await target.embedded?.stop()
}
process.exit(code)
