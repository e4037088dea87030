/**
 * The SDK's streaming record formats against the simplest model of each: whatever rows are written
 * (commas, quotes, line breaks, any Unicode) and however the bytes are cut into chunks (also in the
 * middle of a UTF-8 character), parsing gives back exactly what was written.
 */
import t from 'tap'
import fc from 'fast-check'
import { csvLine, parseCsv, parseNdjson } from '../../sdk/src/index.js'
import { toByteStream } from '../../sdk/src/records.js'
import { seeded, testSeed } from '../helpers/seed.js'

const SEED = testSeed()

/** The bytes of text, cut at the given fractions, as a stream. */
function chunked(text: string, cuts: number[]): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text)
  const at = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b)
  const parts: Uint8Array[] = []
  let from = 0
  for (const to of [...at, bytes.length]) {
    if (to > from) parts.push(bytes.slice(from, to))
    from = Math.max(from, to)
  }
  return new ReadableStream({
    start(controller) {
      for (const p of parts) controller.enqueue(p)
      controller.close()
    },
  })
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

const cell = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('', ',', '"', '""', '\n', '\r\n', 'a,b', ' "x" ', '李娜'))
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 })

t.test(seeded('CSV: rows written with csvLine parse back to the same records, however chunked', SEED), async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 2, max: 5 }).chain((n) => fc.tuple(fc.constant(n), fc.array(fc.array(cell, { minLength: n, maxLength: n }), { maxLength: 8 }), cuts)), async ([n, rows, at]) => {
      const header = Array.from({ length: n }, (_, i) => `c${i}`)
      const text = [header, ...rows].map(csvLine).join('')
      const parsed = await all(parseCsv(chunked(text, at)))
      const expected = rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]!])))
      t.same(parsed, expected)
      return true
    }),
    { numRuns: 200, seed: SEED },
  )
})

t.test('CSV: CRLF line ends, a last line without a newline, an unterminated quote', async (t) => {
  const text = 'id,name\r\n1,"Li, Na"\r\n2,"say ""hi""\r\nthere"\r\n3,end'
  t.same(await all(parseCsv(chunked(text, [0.3, 0.31, 0.7]))), [
    { id: '1', name: 'Li, Na' },
    { id: '2', name: 'say "hi"\r\nthere' },
    { id: '3', name: 'end' },
  ])
  await t.rejects(all(parseCsv(chunked('a,b\n1,"open', []))), /quoted field/)
})

const jsonRecord = fc.dictionary(fc.string(), fc.oneof(fc.string({ unit: 'grapheme' }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string())))

t.test(seeded('NDJSON: records written by toByteStream parse back the same, however chunked', SEED), async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(jsonRecord, { maxLength: 10 }), cuts, async (records, at) => {
      const text = new TextDecoder().decode(await new Response(toByteStream(records, 'ndjson')).arrayBuffer())
      t.same(await all(parseNdjson(chunked(text, at))), records)
      return true
    }),
    { numRuns: 200, seed: SEED + 1 },
  )
})

t.test('NDJSON: blank lines are skipped; a broken line names its number', async (t) => {
  t.same(await all(parseNdjson(chunked('{"a":1}\n\n{"a":2}\r\n', [0.5]))), [{ a: 1 }, { a: 2 }])
  await t.rejects(all(parseNdjson(chunked('{"a":1}\n{"a":\n', []))), /line 2/)
})

t.test('a CSV upload takes text, not records', async (t) => {
  await t.rejects(new Response(toByteStream([{ name: 'x' }], 'csv')).text(), /NDJSON/)
})
