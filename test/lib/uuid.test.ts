import t from 'tap'
import { uuidv7 } from '../../src/lib/uuid.js'

t.test('uuidv7 has the v7 layout, carries its millisecond and sorts by time', async (t) => {
  const at = Date.UTC(2026, 10, 23, 12, 0, 0, 123)
  const id = uuidv7(at)
  t.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.equal(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16), at)
  t.ok(uuidv7(at) < uuidv7(at + 1), 'a later millisecond sorts after')
  t.equal(new Set(Array.from({ length: 1000 }, () => uuidv7(at))).size, 1000, 'unique within a millisecond')
})
