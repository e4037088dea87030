import t from 'tap'
import fc from 'fast-check'
import { sql } from 'kysely'
import pg from 'pg'
import { parseTextArray, toRfc3339 } from '../../src/db/database.js'
import { createTestDatabase } from '../helpers/db.js'

const database = await createTestDatabase()
t.teardown(() => database.drop())
const { db } = database

// pg's own parsers, the reference the fast paths must agree with (@types/pg declares arrayParser as a function; it is { create }).
const pgTextArray = (pg.types.arrayParser as unknown as { create: (source: string, transform: (x: string) => string) => { parse(): unknown[] } }).create
const referenceRfc3339 = (value: string) => {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\+00$/.exec(value)
  return m ? `${m[1]}T${m[2]}.${(m[3] ?? '').slice(0, 3).padEnd(3, '0')}Z` : value
}

const element = fc.oneof(
  fc.string(),
  fc.constantFrom('NULL', 'null', '', ' ', 'a b', 'a,b', '{x}', '"q"', 'back\\slash', 'é', 'b2b'),
  fc.constant(null),
)

t.test('text[] comes back as the array that was stored, whatever its elements', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(element, { maxLength: 6 }), async (items) => {
      const stored = items.map((s) => (typeof s === 'string' ? s.replace(/\0/g, '') : s))
      const { rows } = await sql<{ a: unknown; raw: string }>`select ${stored}::text[] as a, ${stored}::text[]::text as raw`.execute(db)
      t.same(rows[0]!.a, stored)
      t.same(parseTextArray(rows[0]!.raw), pgTextArray(rows[0]!.raw, (x: string) => x).parse())
    }),
    { numRuns: 200 },
  )
})

t.test('text[] literals pg parses specially still go to its parser', async (t) => {
  for (const raw of ['{}', '{a,NULL,b}', '{{a,b},{c,d}}', '[0:1]={a,b}', '{"a b",c}', '{"",x}', '{"NULL"}']) {
    t.same(parseTextArray(raw), pgTextArray(raw, (x: string) => x).parse(), raw)
  }
})

t.test('timestamptz text becomes RFC 3339 with three fraction digits (cut, never rounded up), as the regular expression did', async (t) => {
  const timestamps = fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  await fc.assert(
    fc.asyncProperty(timestamps, fc.integer({ min: 0, max: 999 }), async (d, micros) => {
      const { rows } = await sql<{ raw: string }>`select (${d.toISOString()}::timestamptz + ${micros} * interval '1 microsecond')::text as raw`.execute(db)
      const raw = rows[0]!.raw
      t.equal(toRfc3339(raw), referenceRfc3339(raw), raw)
    }),
    { numRuns: 200 },
  )
  for (const raw of ['2026-11-01 01:27:57+00', '2026-11-01 01:27:57.8+00', '2026-11-01 01:27:57.123456+00', 'infinity', '-infinity',
    '0099-01-01 00:00:00+00 BC', '12026-01-01 00:00:00+00', '2026-11-01 01:27:57+05:30']) {
    t.equal(toRfc3339(raw), referenceRfc3339(raw), raw)
  }
  t.equal(toRfc3339('2026-11-01 01:27:57.999999+00'), '2026-11-01T01:27:57.999Z', 'cut at the millisecond')
  t.equal(toRfc3339('2026-11-01 01:27:57.8+00'), '2026-11-01T01:27:57.800Z')
})
