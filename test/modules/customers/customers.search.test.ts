import t from 'tap'
import { setup } from '../../helpers/app.js'

const ctx = await setup()
const admin = await ctx.auth()
const noPii = await ctx.auth('customers:read')

// Two-character terms have no trigram: they go through the bigram indexes (search migration).
const people = [
  { name: '张伟', email: 'wei.zhang@example.com', phone: '+86 139 1234 0001' },
  { name: '李张伟明', email: 'li.ming@example.com', phone: null },
  { name: 'Zhang Wei', email: 'zw@example.com', phone: null },
  { name: 'Ab_c %Test', email: 'qq-user@example.com', phone: '+7 900 555 1234' },
  { name: '王秀英', email: 'x.wang@example.com', phone: null },
]
for (const p of people) {
  const contact_points = [{ kind: 'email', value: p.email }, ...(p.phone ? [{ kind: 'phone', value: p.phone }] : [])]
  const res = await ctx.app.inject({ method: 'POST', url: '/v1/customers', headers: admin, payload: { name: p.name, contact_points } })
  if (res.statusCode !== 201) throw new Error(res.body)
}

async function names(q: string, headers = admin) {
  const res = await ctx.app.inject({ url: `/v1/customers?q=${encodeURIComponent(q)}`, headers })
  t.equal(res.statusCode, 200, res.body)
  return (res.json().data as Array<{ name: string }>).map((c) => c.name).sort()
}

t.test('two-character terms match substrings of names, case-insensitively', async (t) => {
  t.same(await names('张伟'), ['张伟', '李张伟明'].sort())
  t.same(await names('伟明'), ['李张伟明'])
  t.same(await names('zh'), ['Zhang Wei', '张伟'].sort(), 'zh: the name Zhang Wei (other case) and the email wei.zhang@')
  t.same(await names('WE'), ['Zhang Wei', '张伟'].sort(), 'we: the name Zhang Wei and the email wei.zhang@')
  t.same(await names('秀英'), ['王秀英'])
  t.same(await names('無し'), [])
})

t.test('two-character terms match emails and phones only with pii:read; wildcards stay literal', async (t) => {
  t.same(await names('qq'), ['Ab_c %Test'], 'email fragment')
  t.same(await names('qq', noPii), [], 'no contact search without pii:read')
  t.same(await names('55'), ['Ab_c %Test'], 'phone fragment')
  t.same(await names('b_'), ['Ab_c %Test'], 'underscore is literal')
  t.same(await names('c%'), [], 'percent is literal (the name has "c %", not "c%")')
  t.same(await names(' %'), ['Ab_c %Test'])
})

t.test('longer terms still use the trigram path, with contacts', async (t) => {
  t.same(await names('王秀英'), ['王秀英'])
  t.same(await names('zhang'), ['Zhang Wei', '张伟'].sort(), 'name Zhang Wei, email wei.zhang@')
  t.same(await names('zhang', noPii), ['Zhang Wei'])
  t.same(await names('1391234'), ['张伟'], 'phone digits')
})
