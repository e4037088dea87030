import t from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { setup } from '../helpers/app.js'
import { createEmptyDatabase } from '../helpers/db.js'
import type { BackupManifest } from '../../src/backup/manifest.js'

// backup → restore into a new database → verify, through the README's commands, on a database
// the app wrote (so the audit chain has content).
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const dir = path.join(ROOT, '.data', `backup-test-${process.pid}`)
mkdirSync(dir, { recursive: true })
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const ctx = await setup()
const admin = await ctx.auth()
for (const name of ['Ada', 'Grace', 'Edsger']) {
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name } })
  if (res.statusCode !== 201) throw new Error(res.body)
  const order = await ctx.app.inject({
    method: 'POST', url: '/v1/orders', headers: admin,
    payload: { customer_id: res.json().id, currency: 'EUR', status: 'paid', items: [{ product_name: 'Tea', quantity: 2, unit_price: '4.50' }] },
  })
  if (order.statusCode !== 201) throw new Error(order.body)
}

function npm(script: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn('npm', ['run', '-s', script, '--', ...args], { cwd: ROOT, env: { ...process.env, DATABASE_URL: ctx.url }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, err })))
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return (await c.query<T>(text)).rows
  } finally {
    await c.end()
  }
}

const dump = path.join(dir, 'crm.dump')
let manifest: BackupManifest

t.test('npm run backup writes the dump and a manifest of migration level, row counts and audit chain head', async (t) => {
  const res = await npm('backup', ['--out', dump])
  t.equal(res.code, 0, res.err)
  t.match(res.out, /backup written: .*crm\.dump .*audit chain intact/s)
  t.ok(existsSync(dump) && !existsSync(`${dump}.partial`))
  manifest = JSON.parse(readFileSync(`${dump}.manifest.json`, 'utf8')) as BackupManifest
  t.equal(manifest.row_counts['public.customers'], 3)
  t.equal(manifest.row_counts['public.orders'], 3)
  t.equal(manifest.row_counts['public.audit_events'], await ctx.count('audit_events'))
  const [last] = await query<{ name: string }>(ctx.url, 'select name from kysely_migration order by name desc limit 1')
  t.equal(manifest.migrations.last, last!.name)
  t.ok(manifest.migrations.applied.every((m) => /^[0-9a-f]{64}$/.test(m.sha256 ?? '')), 'with every migration\'s checksum')
  const [head] = await query<{ seq: number; hash: string }>(ctx.url, "select seq::int, encode(hash, 'hex') as hash from audit_chain order by seq desc limit 1")
  t.match(manifest.audit_chain, { intact: true, head_seq: head!.seq, head_hash: head!.hash, unsealed_count: 0 }, 'the backup sealed the trail first: the head covers every event')
  t.equal(manifest.audit_chain.sealed_count, await ctx.count('audit_events'))
  t.ok(manifest.roles.includes('crm_app'), 'the roles the grants name, the API role among them')
})

t.test('npm run restore into a new database restores, verifies and reports success; the app can use it', async (t) => {
  const target = await createEmptyDatabase()
  t.teardown(() => target.drop())
  const res = await npm('restore', ['--in', dump, '--database-url', target.url])
  t.equal(res.code, 0, res.err)
  t.match(res.out, new RegExp(`restored and verified .*migration ${manifest.migrations.last}.*audit chain intact, head ${manifest.audit_chain.head_seq} ${manifest.audit_chain.head_hash}`))
  t.same(await query(target.url, 'select name from customers order by name'), [{ name: 'Ada' }, { name: 'Edsger' }, { name: 'Grace' }])
  const [verify] = await query<{ intact: boolean }>(target.url, 'select intact from crm_audit_verify()')
  t.equal(verify!.intact, true)
  const [grants] = await query<{ insert: boolean; update: boolean }>(target.url,
    "select has_table_privilege('crm_app', 'customers', 'insert') as insert, has_table_privilege('crm_app', 'audit_events', 'update') as update")
  t.same(grants, { insert: true, update: false }, 'the API role\'s grants came back: it writes customers, never rewrites the audit trail')

  const again = await npm('restore', ['--in', dump, '--database-url', target.url])
  t.equal(again.code, 1, 'a second restore into the now non-empty database is refused')
  t.match(again.err, /restore failed: the target database is not empty .* pass --force/)
  const forced = await npm('restore', ['--in', dump, '--database-url', target.url, '--force'])
  t.equal(forced.code, 0, forced.err)
  t.same(await query(target.url, 'select count(*)::int as n from customers'), [{ n: 3 }], '--force replaces what the backup holds')
})

t.test('a manifest whose counts differ from what was restored fails the restore, naming the table', async (t) => {
  const target = await createEmptyDatabase()
  t.teardown(() => target.drop())
  const tampered = path.join(dir, 'tampered.dump')
  copyFileSync(dump, tampered)
  writeFileSync(`${tampered}.manifest.json`, JSON.stringify({ ...manifest, row_counts: { ...manifest.row_counts, 'public.customers': 4 } }))
  const res = await npm('restore', ['--in', tampered, '--database-url', target.url])
  t.equal(res.code, 1)
  t.match(res.err, /restore failed: the restored database does not match the backup's manifest; do not use it:\n {2}- table public\.customers has 3 rows, the backup 4/)
  t.notMatch(res.out, /restored and verified/)
})

t.test('an audit chain head that differs from the manifest fails the restore', async (t) => {
  const target = await createEmptyDatabase()
  t.teardown(() => target.drop())
  const tampered = path.join(dir, 'head.dump')
  copyFileSync(dump, tampered)
  writeFileSync(`${tampered}.manifest.json`, JSON.stringify({ ...manifest, audit_chain: { ...manifest.audit_chain, head_hash: '0'.repeat(64) } }))
  const res = await npm('restore', ['--in', tampered, '--database-url', target.url])
  t.equal(res.code, 1)
  t.match(res.err, /the audit chain's head_hash is [0-9a-f]{64}, the backup's 0{64}/)
})

t.test('a dump that is not the one its manifest describes is refused before anything is restored', async (t) => {
  const target = await createEmptyDatabase()
  t.teardown(() => target.drop())
  const corrupt = path.join(dir, 'corrupt.dump')
  const bytes = readFileSync(dump)
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff
  writeFileSync(corrupt, bytes)
  copyFileSync(`${dump}.manifest.json`, `${corrupt}.manifest.json`)
  const res = await npm('restore', ['--in', corrupt, '--database-url', target.url])
  t.equal(res.code, 1)
  t.match(res.err, /corrupt\.dump is not the dump .* describes .*: refusing to restore it/)
  t.same(await query(target.url, "select count(*)::int as n from pg_tables where schemaname = 'public'"), [{ n: 0 }], 'the target is untouched')
})

t.test('usage errors exit 2', async (t) => {
  t.equal((await npm('restore', ['--in', dump])).code, 2, '--database-url is required: a restore never falls back to DATABASE_URL')
  t.equal((await npm('backup', [])).code, 2, '--out is required')
})
