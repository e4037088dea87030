import t from 'tap'
import {
  addMoney, divideRounded, fitsMoneyColumn, formatMoney, MAX_MONEY_MINOR, multiplyMoney, parseMoney, parseRate, percentOf,
} from '../../src/lib/money.js'

t.test('parse and format round-trip exactly, in minor units', async (t) => {
  t.equal(parseMoney('33.33'), 3333n)
  t.equal(parseMoney('33.3'), 3330n)
  t.equal(parseMoney('7'), 700n)
  t.equal(parseMoney('0.05'), 5n)
  t.equal(parseMoney('-12.34'), -1234n)
  t.equal(parseMoney('999999999999.99'), MAX_MONEY_MINOR)
  t.equal(formatMoney(3330n), '33.30')
  t.equal(formatMoney(5n), '0.05')
  t.equal(formatMoney(0n), '0.00')
  t.equal(formatMoney(-1234n), '-12.34')
  t.equal(formatMoney(-5n), '-0.05')
  t.equal(formatMoney(MAX_MONEY_MINOR), '999999999999.99')
  for (const s of ['1.001', '1e3', '', '.5', '1.', '1,00', ' 1', '0x10', '1234567890123']) {
    t.throws(() => parseMoney(s), RangeError, `rejects ${JSON.stringify(s)}`)
  }
})

t.test('arithmetic never goes through a float', async (t) => {
  t.equal(formatMoney(multiplyMoney(parseMoney('33.33'), 3)), '99.99', '3 × 33.33 (a float gives 99.99000000000001)')
  t.equal(formatMoney(addMoney(parseMoney('0.1'), parseMoney('0.2'))), '0.30', '0.1 + 0.2 (a float gives 0.30000000000000004)')
  t.equal(formatMoney(multiplyMoney(parseMoney('999999999999.99'), 1_000_000)), '999999999999990000.00', 'beyond 2^53 stays exact')
  t.equal(formatMoney(addMoney()), '0.00')
  t.throws(() => multiplyMoney(100n, 1.5), RangeError, 'quantities are integers')
  t.ok(fitsMoneyColumn(MAX_MONEY_MINOR))
  t.notOk(fitsMoneyColumn(MAX_MONEY_MINOR + 1n))
})

t.test('percentages round half away from zero to the cent', async (t) => {
  t.equal(parseRate('13'), 130000n)
  t.equal(parseRate('8.875'), 88750n)
  t.equal(parseRate('100'), 1000000n)
  t.throws(() => parseRate('100.0001'), RangeError)
  t.throws(() => parseRate('1.23456'), RangeError)
  t.throws(() => parseRate('-1'), RangeError)
  t.equal(formatMoney(percentOf(parseMoney('90.00'), '8.875')), '7.99', '7.9875 rounds up')
  t.equal(formatMoney(percentOf(parseMoney('99.99'), '13')), '13.00', '12.9987 rounds up')
  t.equal(formatMoney(percentOf(parseMoney('0.50'), '1')), '0.01', '0.005 is a half: away from zero')
  t.equal(formatMoney(percentOf(parseMoney('0.49'), '1')), '0.00', '0.0049 rounds down')
  t.equal(formatMoney(percentOf(parseMoney('-0.50'), '1')), '-0.01', 'negative halves round away from zero too')
  t.equal(formatMoney(percentOf(parseMoney('123.45'), '0')), '0.00')
  t.equal(divideRounded(5n, 2n), 3n)
  t.equal(divideRounded(-5n, 2n), -3n)
  t.equal(divideRounded(4n, 3n), 1n)
  t.throws(() => divideRounded(1n, 0n), RangeError)
})
