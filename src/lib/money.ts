import { MAX_MINOR_UNITS, minorUnits } from './currency.js'
import type { FieldError } from './problem.js'

/**
 * Exact money arithmetic. Amounts travel as decimal strings ("129.90") and are computed as
 * integer counts of the currency's minor unit in BigInt (yen for JPY, cents for CNY, fils for
 * KWD), never as a JS float: 3 × 33.33 is 99.99, not 99.99000000000001.
 *
 * An amount is written with exactly its currency's minor units (JPY "1500", CNY "129.90", KWD
 * "1.234"), and stored that way: the money columns are the domain crm_money (numeric with at most
 * three fraction digits and no fixed scale), so PostgreSQL keeps the scale it was given and its
 * text of the value, its sums and its audit snapshots are the API's representation.
 */

/** The largest amount a money column holds, in whole units: 999,999,999,999 and its fraction. */
const MAX_WHOLE_UNITS = 10n ** 12n

const MONEY = /^(-)?([0-9]{1,12})(?:\.([0-9]{1,3}))?$/
const RATE = /^([0-9]{1,3})(?:\.([0-9]{1,4}))?$/
const RATE_SCALE = 10_000n

const perUnit = (units: number) => 10n ** BigInt(units)

/**
 * "33.3" with 2 minor units → 3330n. Throws RangeError for anything that is not a decimal with at
 * most `units` fraction digits.
 */
export function parseMoney(value: string, units: number): bigint {
  const m = MONEY.exec(value)
  const fraction = m?.[3] ?? ''
  if (!m || fraction.length > units) throw new RangeError(`not a money amount with ${units} decimals: ${JSON.stringify(value)}`)
  const minor = BigInt(m[2]!) * perUnit(units) + BigInt(fraction.padEnd(units, '0') || '0')
  return m[1] ? -minor : minor
}

/** 3330n with 2 minor units → "33.30"; 1500n with 0 → "1500"; always exactly `units` fraction digits. */
export function formatMoney(minor: bigint, units: number): string {
  const negative = minor < 0n
  const abs = negative ? -minor : minor
  const whole = abs / perUnit(units)
  const fraction = units > 0 ? `.${(abs % perUnit(units)).toString().padStart(units, '0')}` : ''
  return `${negative ? '-' : ''}${whole}${fraction}`
}

/** A money column's text (any scale up to three, as stored) in the currency's minor units. */
export function moneyFromColumn(value: string, units: number): bigint {
  const exact = parseMoney(value, MAX_MINOR_UNITS)
  const scale = perUnit(MAX_MINOR_UNITS - units)
  if (exact % scale !== 0n) throw new RangeError(`stored amount ${value} has more decimals than its currency's ${units}`)
  return exact / scale
}

/** Fraction digits of a decimal string without its trailing zeros ("12.50" → 1, "1500.000" → 0). */
export function significantDecimals(value: string): number {
  return (value.split('.')[1] ?? '').replace(/0+$/, '').length
}

/**
 * The field error of an amount with more decimals than its currency has (JPY "12.5"), or
 * undefined when it fits. A client's amount counts every digit it wrote (JPY "1500.00" is a
 * 400 too); a stored amount that a new currency must hold counts its significant digits (the
 * KWD limit 100.500 fits CNY as 100.50). The schema (lib/schema.ts Money) has checked the shape.
 */
export function minorUnitsError(value: string, currency: string, at: string, digits: 'as-sent' | 'stored' = 'as-sent'): FieldError | undefined {
  const units = minorUnits(currency)
  const decimals = digits === 'stored' ? significantDecimals(value) : (value.split('.')[1] ?? '').length
  if (decimals <= units) return undefined
  return { pointer: at, message: units === 0 ? `${currency} has no minor unit: send a whole number` : `${currency} has ${units} decimals at most` }
}

export function addMoney(...amounts: bigint[]): bigint {
  return amounts.reduce((sum, a) => sum + a, 0n)
}

/** Unit price × an integer quantity. */
export function multiplyMoney(minor: bigint, quantity: number | bigint): bigint {
  if (typeof quantity === 'number' && !Number.isSafeInteger(quantity)) throw new RangeError(`quantity must be an integer: ${quantity}`)
  return minor * BigInt(quantity)
}

/** Parses a percentage such as "13" or "8.875" (0..100, up to four fraction digits) into ten-thousandths of a percent. */
export function parseRate(value: string): bigint {
  const m = RATE.exec(value)
  if (!m) throw new RangeError(`not a percentage: ${JSON.stringify(value)}`)
  const scaled = BigInt(m[1]!) * RATE_SCALE + BigInt((m[2] ?? '').padEnd(4, '0'))
  if (scaled > 100n * RATE_SCALE) throw new RangeError(`percentage above 100: ${value}`)
  return scaled
}

/** `rate` percent of an amount, rounded half away from zero to the minor unit (CNY 90.00 × 8.875 % = 7.99; JPY 1000 × 8.875 % = 89). */
export function percentOf(minor: bigint, rate: string): bigint {
  return divideRounded(minor * parseRate(rate), 100n * RATE_SCALE)
}

/** n / d rounded half away from zero (d > 0). */
export function divideRounded(n: bigint, d: bigint): bigint {
  if (d <= 0n) throw new RangeError('divisor must be positive')
  return n >= 0n ? (2n * n + d) / (2n * d) : -((-2n * n + d) / (2n * d))
}

/** Whether an amount in minor units fits a money column (12 integer digits, either sign). */
export function fitsMoneyColumn(minor: bigint, units: number): boolean {
  const max = MAX_WHOLE_UNITS * perUnit(units) - 1n
  return minor <= max && minor >= -max
}

/** The largest amount as the API writes it in a currency with these minor units (for messages). */
export function maxMoney(units: number): string {
  return formatMoney(MAX_WHOLE_UNITS * perUnit(units) - 1n, units)
}
