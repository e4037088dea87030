import type { DbExecutor } from '../../db/database.js'
import type { ContactPointRow } from '../../db/rows.js'

/** A customer's contact points: emails, phones and addresses, one primary per kind. */

export type NewContactPoint = Omit<ContactPointRow, 'id' | 'version' | 'created_at' | 'updated_at'>

export async function listContactPoints(db: DbExecutor, customerIds: string[]): Promise<ContactPointRow[]> {
  if (customerIds.length === 0) return []
  return db
    .selectFrom('contact_points')
    .selectAll()
    .where('customer_id', 'in', customerIds)
    .orderBy('customer_id')
    .orderBy('kind')
    .orderBy('is_primary', 'desc')
    .orderBy('created_at')
    .orderBy('id')
    .execute()
}

export async function findContactPoint(db: DbExecutor, customerId: string, id: string): Promise<ContactPointRow | undefined> {
  return db.selectFrom('contact_points').selectAll().where('id', '=', id).where('customer_id', '=', customerId).executeTakeFirst()
}

export async function findContactPointByValue(db: DbExecutor, customerId: string, kind: string, valueNormalized: string) {
  return db
    .selectFrom('contact_points')
    .selectAll()
    .where('customer_id', '=', customerId)
    .where('kind', '=', kind)
    .where('value_normalized', '=', valueNormalized)
    .executeTakeFirst()
}

export async function hasPrimary(db: DbExecutor, customerId: string, kind: string): Promise<boolean> {
  const row = await db
    .selectFrom('contact_points')
    .select('id')
    .where('customer_id', '=', customerId)
    .where('kind', '=', kind)
    .where('is_primary', '=', true)
    .executeTakeFirst()
  return !!row
}

/** Clears the current primary of a kind so another can take its place. */
export async function demotePrimary(db: DbExecutor, customerId: string, kind: string, exceptId?: string): Promise<void> {
  await db
    .updateTable('contact_points')
    .set({ is_primary: false })
    .where('customer_id', '=', customerId)
    .where('kind', '=', kind)
    .where('is_primary', '=', true)
    .$if(!!exceptId, (qb) => qb.where('id', '!=', exceptId!))
    .execute()
}

export async function insertContactPoint(db: DbExecutor, row: NewContactPoint): Promise<ContactPointRow> {
  return db
    .insertInto('contact_points')
    .values({ ...row, address: row.address === null ? null : JSON.stringify(row.address) })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function updateContactPoint(db: DbExecutor, id: string, changes: Partial<NewContactPoint>, expectedVersion?: number): Promise<ContactPointRow | undefined> {
  const set: Record<string, unknown> = { ...changes }
  if (changes.address !== undefined) set.address = changes.address === null ? null : JSON.stringify(changes.address)
  return db
    .updateTable('contact_points')
    .set(set)
    .where('id', '=', id)
    .$if(expectedVersion !== undefined, (qb) => qb.where('version', '=', expectedVersion!))
    .returningAll()
    .executeTakeFirst()
}

export async function deleteContactPoint(db: DbExecutor, id: string, expectedVersion?: number): Promise<ContactPointRow | undefined> {
  return db
    .deleteFrom('contact_points')
    .where('id', '=', id)
    .$if(expectedVersion !== undefined, (qb) => qb.where('version', '=', expectedVersion!))
    .returningAll()
    .executeTakeFirst()
}

/** After the primary of a kind is removed, the oldest remaining one of that kind becomes primary. */
export async function promoteOldest(db: DbExecutor, customerId: string, kind: string): Promise<void> {
  await db
    .updateTable('contact_points')
    .set({ is_primary: true })
    .where('id', '=', (eb) =>
      eb
        .selectFrom('contact_points')
        .select('id')
        .where('customer_id', '=', customerId)
        .where('kind', '=', kind)
        .orderBy('created_at')
        .orderBy('id')
        .limit(1),
    )
    .execute()
}

/** The contact points of some customers, locked for the rest of the transaction. */
export async function lockContactPoints(db: DbExecutor, customerIds: string[]): Promise<ContactPointRow[]> {
  return db.selectFrom('contact_points').selectAll().where('customer_id', 'in', customerIds).orderBy('created_at').orderBy('id').forUpdate().execute()
}

