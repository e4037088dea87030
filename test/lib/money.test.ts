import t from 'tap'
import { CURRENCY_CODES, isCurrencyCode, minorUnits } from '../../src/lib/currency.js'
import {
  addMoney, divideRounded, fitsMoneyColumn, formatMoney, maxMoney, minorUnitsError, moneyFromColumn, significantDecimals, multiplyMoney, parseMoney, parseRate, percentOf,
} from '../../src/lib/money.js'

const CNY = 2
const JPY = 0
const KWD = 3

t.test('parse and format round-trip exactly, in the currency\'s minor units', async (t) => {
  t.equal(parseMoney('33.33', CNY), 3333n)
  t.equal(parseMoney('33.3', CNY), 3330n)
  t.equal(parseMoney('7', CNY), 700n)
  t.equal(parseMoney('0.05', CNY), 5n)
  t.equal(parseMoney('-12.34', CNY), -1234n)
  t.equal(parseMoney('1500', JPY), 1500n)
  t.equal(parseMoney('1.234', KWD), 1234n)
  t.equal(parseMoney('1.2', KWD), 1200n)
  t.equal(formatMoney(3330n, CNY), '33.30')
  t.equal(formatMoney(5n, CNY), '0.05')
  t.equal(formatMoney(0n, CNY), '0.00')
  t.equal(formatMoney(-1234n, CNY), '-12.34')
  t.equal(formatMoney(-5n, CNY), '-0.05')
  t.equal(formatMoney(1500n, JPY), '1500')
  t.equal(formatMoney(0n, JPY), '0')
  t.equal(formatMoney(1234n, KWD), '1.234')
  t.equal(formatMoney(5n, KWD), '0.005')
  t.equal(maxMoney(CNY), '999999999999.99')
  t.equal(maxMoney(KWD), '999999999999.999')
  t.equal(maxMoney(JPY), '999999999999')
  for (const s of ['1.0001', '1e3', '', '.5', '1.', '1,00', ' 1', '0x10', '1234567890123']) {
    t.throws(() => parseMoney(s, KWD), RangeError, `rejects ${JSON.stringify(s)}`)
  }
  t.throws(() => parseMoney('12.5', JPY), RangeError, 'JPY has no decimals')
  t.throws(() => parseMoney('1.001', CNY), RangeError, 'CNY has two')
})

t.test('a stored amount reads in its currency\'s minor units whatever scale the column printed', async (t) => {
  t.equal(moneyFromColumn('1500', JPY), 1500n)
  t.equal(moneyFromColumn('1500.000', JPY), 1500n)
  t.equal(moneyFromColumn('129.9', CNY), 12990n)
  t.equal(moneyFromColumn('1.23', KWD), 1230n)
  t.throws(() => moneyFromColumn('12.5', JPY), RangeError)
  t.equal(significantDecimals('12.50'), 1)
  t.equal(significantDecimals('1500.000'), 0)
  t.equal(significantDecimals('1.234'), 3)
})

t.test('minorUnitsError names the field of an amount with too many decimals', async (t) => {
  t.same(minorUnitsError('12.5', 'JPY', '/items/0/unit_price'), { pointer: '/items/0/unit_price', message: 'JPY has no minor unit: send a whole number' })
  t.same(minorUnitsError('1.2345', 'KWD', '/amount'), { pointer: '/amount', message: 'KWD has 3 decimals at most' })
  t.equal(minorUnitsError('1.234', 'KWD', '/amount'), undefined)
  t.equal(minorUnitsError('1.234', 'BHD', '/amount'), undefined)
  t.equal(minorUnitsError('129.90', 'CNY', '/amount'), undefined)
  t.ok(minorUnitsError('129.901', 'CNY', '/amount'))
  t.equal(minorUnitsError('1500', 'JPY', '/amount'), undefined)
})

t.test('ISO 4217 codes and their minor units', async (t) => {
  t.equal(minorUnits('JPY'), 0)
  t.equal(minorUnits('KWD'), 3)
  t.equal(minorUnits('BHD'), 3)
  t.equal(minorUnits('CNY'), 2)
  t.equal(minorUnits('IQD'), 3, 'ISO\'s minor unit, not CLDR\'s display digits (0)')
  t.equal(minorUnits('XCG'), 2, 'an amendment newer than the package\'s list')
  for (const code of ['ABC', 'cny', 'XXX', 'XTS', 'XAU', 'XDR', 'CLF', 'UYW', '', 'CNYY']) {
    t.notOk(isCurrencyCode(code), `${JSON.stringify(code)} is not accepted`)
    t.equal(minorUnits(code), 2, 'a code stored before codes were checked kept two decimals')
  }
  t.ok(CURRENCY_CODES.length > 150)
  t.ok(CURRENCY_CODES.every((c) => /^[A-Z]{3}$/.test(c) && minorUnits(c) <= 3))
})

t.test('arithmetic never goes through a float', async (t) => {
  t.equal(formatMoney(multiplyMoney(parseMoney('33.33', CNY), 3), CNY), '99.99', '3 × 33.33 (a float gives 99.99000000000001)')
  t.equal(formatMoney(addMoney(parseMoney('0.1', CNY), parseMoney('0.2', CNY)), CNY), '0.30', '0.1 + 0.2 (a float gives 0.30000000000000004)')
  t.equal(formatMoney(addMoney(parseMoney('0.001', KWD), parseMoney('0.002', KWD)), KWD), '0.003')
  t.equal(formatMoney(multiplyMoney(parseMoney('999999999999.99', CNY), 1_000_000), CNY), '999999999999990000.00', 'beyond 2^53 stays exact')
  t.equal(formatMoney(addMoney(), CNY), '0.00')
  t.throws(() => multiplyMoney(100n, 1.5), RangeError, 'quantities are integers')
  t.ok(fitsMoneyColumn(parseMoney('999999999999.99', CNY), CNY))
  t.notOk(fitsMoneyColumn(parseMoney('999999999999.99', CNY) + 1n, CNY))
  t.ok(fitsMoneyColumn(parseMoney('999999999999.999', KWD), KWD))
  t.notOk(fitsMoneyColumn(parseMoney('999999999999', JPY) + 1n, JPY))
})

t.test('percentages round half away from zero to the minor unit', async (t) => {
  t.equal(parseRate('13'), 130000n)
  t.equal(parseRate('8.875'), 88750n)
  t.equal(parseRate('100'), 1000000n)
  t.throws(() => parseRate('100.0001'), RangeError)
  t.throws(() => parseRate('1.23456'), RangeError)
  t.throws(() => parseRate('-1'), RangeError)
  t.equal(formatMoney(percentOf(parseMoney('90.00', CNY), '8.875'), CNY), '7.99', '7.9875 rounds up')
  t.equal(formatMoney(percentOf(parseMoney('99.99', CNY), '13'), CNY), '13.00', '12.9987 rounds up')
  t.equal(formatMoney(percentOf(parseMoney('0.50', CNY), '1'), CNY), '0.01', '0.005 is a half: away from zero')
  t.equal(formatMoney(percentOf(parseMoney('0.49', CNY), '1'), CNY), '0.00', '0.0049 rounds down')
  t.equal(formatMoney(percentOf(parseMoney('-0.50', CNY), '1'), CNY), '-0.01', 'negative halves round away from zero too')
  t.equal(formatMoney(percentOf(parseMoney('123.45', CNY), '0'), CNY), '0.00')
  t.equal(formatMoney(percentOf(parseMoney('1000', JPY), '8.875'), JPY), '89', 'JPY rounds to the yen (88.75)')
  t.equal(formatMoney(percentOf(parseMoney('1.234', KWD), '10'), KWD), '0.123', 'KWD rounds to the fils (0.1234)')
  t.equal(divideRounded(5n, 2n), 3n)
  t.equal(divideRounded(-5n, 2n), -3n)
  t.equal(divideRounded(4n, 3n), 1n)
  t.throws(() => divideRounded(1n, 0n), RangeError)
})
