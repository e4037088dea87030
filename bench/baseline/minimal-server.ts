/**
 * The baseline peer of GET /v1/customers/{id}: the least a fastify + pg service can do for the
 * same read. No auth, no validation, no problem+json, no audit context, no response schema; the
 * same SQL as the full stack (handed in by bench/run.ts as BENCH_SQL and BENCH_PARAMS) over a pool
 * of the same size, unnamed extended-protocol statements as Kysely sends them. Run by bench/run.ts; by hand:
 *   DATABASE_URL=... PORT=3901 BENCH_SQL='select * from customers where id = $1' node --import tsx bench/baseline/minimal-server.ts
 */
import Fastify from 'fastify'
import pg from 'pg'

const sql = process.env.BENCH_SQL ?? 'select * from customers where id = $1'
// The query's other parameters are constants; the one at BENCH_ID_INDEX is the requested id.
const params = JSON.parse(process.env.BENCH_PARAMS ?? '[null]') as unknown[]
const idIndex = Number(process.env.BENCH_ID_INDEX ?? 0)
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_MAX ?? 10), options: '-c TimeZone=UTC' })
const app = Fastify({ logger: false })

app.get<{ Params: { id: string } }>('/customers/:id', async (request, reply) => {
  const values = [...params]
  values[idIndex] = request.params.id
  const { rows } = await pool.query(sql, values)
  if (rows.length === 0) return reply.code(404).send({ title: 'Not Found' })
  return rows[0]
})
app.get('/healthz', async () => ({ status: 'ok' }))

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3901) })
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void app.close().then(() => pool.end()).then(() => process.exit(0))
  })
}
