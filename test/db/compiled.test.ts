import t from 'tap'
import { sql } from 'kysely'
import { compiledByKey, compiledByShape } from '../../src/db/compiled.js'
import { createTestDatabase } from '../helpers/db.js'

const database = await createTestDatabase()
t.teardown(() => database.drop())
const { db } = database

const names = await db.insertInto('customers').values([{ name: 'First' }, { name: 'Second' }]).returning(['id', 'name']).execute()

t.test('runs the query compiled once with each key, in a transaction too', async (t) => {
  const byId = compiledByKey((d, id: string) => d.selectFrom('customers').select('name').where('id', '=', id).where('name', '!=', 'x'))
  for (const n of names) t.same(await byId(db, n.id), [{ name: n.name }])
  t.same(await byId(db, '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a99'), [])
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('customers').set({ name: 'Renamed' }).where('id', '=', names[0]!.id).execute()
    t.same(await byId(trx, names[0]!.id), [{ name: 'Renamed' }], 'sees the transaction\'s own writes')
  })
})

t.test('refuses a query where the key is not exactly one parameter', async (t) => {
  const twice = compiledByKey((d, id: string) => d.selectFrom('customers').select('name').where('id', '=', id).where(sql<boolean>`${id}::uuid is not null`))
  await t.rejects(twice(db, names[0]!.id), /exactly one parameter/)
  const never = compiledByKey((d) => d.selectFrom('customers').select('name'))
  await t.rejects(never(db, names[0]!.id), /exactly one parameter/)
})

t.test('compiles once per shape and runs it with each call\'s values', async (t) => {
  const [alpha, beta] = await db.insertInto('customers').values([{ name: 'Shape Alpha' }, { name: 'Shape Beta' }]).returning(['id', 'name']).execute()
  let builds = 0
  const byName = compiledByShape((d, s: { exact: boolean; notIds: number }, v: Record<string, unknown>) => {
    builds++
    let q = d.selectFrom('customers').select('name').where('name', s.exact ? '=' : 'like', v.name as string)
    for (let i = 0; i < s.notIds; i++) q = q.where('id', '!=', v[`not${i}`] as string)
    return q.orderBy('name').limit(v.take as number)
  })
  t.same(await byName(db, { exact: true, notIds: 0 }, { name: 'Shape Alpha', take: 5 }), [{ name: 'Shape Alpha' }])
  t.same(await byName(db, { exact: true, notIds: 0 }, { name: 'Shape Beta', take: 5 }), [{ name: 'Shape Beta' }])
  t.same(await byName(db, { exact: false, notIds: 0 }, { name: 'Shape %', take: 1 }), [{ name: 'Shape Alpha' }])
  t.same(await byName(db, { exact: false, notIds: 1 }, { name: 'Shape %', not0: alpha!.id, take: 5 }), [{ name: 'Shape Beta' }])
  t.same(await byName(db, { exact: false, notIds: 1 }, { name: 'Shape %', not0: beta!.id, take: 5 }), [{ name: 'Shape Alpha' }])
  t.same(await byName(db, { exact: false, notIds: 0 }, { name: 'Shape %', take: 5 }), [{ name: 'Shape Alpha' }, { name: 'Shape Beta' }])
  t.equal(builds, 3, 'one build per shape')
})
