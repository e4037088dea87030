/**
 * Exact money arithmetic. Amounts travel as decimal strings ("129.90") and are computed as
 * integer minor units (cents) in BigInt, never as a JS float: 3 × 33.33 is 99.99, not
 * 99.99000000000001. Every currency is held with two fraction digits, as numeric(14,2) stores it
 * (a JPY amount is "1500.00").
 */
export const MONEY_SCALE = 2
const MINOR_PER_UNIT = 10n ** BigInt(MONEY_SCALE)
/** The largest amount numeric(14,2) holds: 999,999,999,999.99. */
export const MAX_MONEY_MINOR = 10n ** 14n - 1n

const MONEY = /^(-)?([0-9]{1,12})(?:\.([0-9]{1,2}))?$/
const RATE = /^([0-9]{1,3})(?:\.([0-9]{1,4}))?$/
const RATE_SCALE = 10_000n

/** "33.3" → 3330n. Throws RangeError for anything that is not a decimal with at most two fraction digits. */
export function parseMoney(value: string): bigint {
  const m = MONEY.exec(value)
  if (!m) throw new RangeError(`not a money amount: ${JSON.stringify(value)}`)
  const minor = BigInt(m[2]!) * MINOR_PER_UNIT + BigInt((m[3] ?? '').padEnd(MONEY_SCALE, '0'))
  return m[1] ? -minor : minor
}

/** 3330n → "33.30" (always two fraction digits, as PostgreSQL prints numeric(14,2)). */
export function formatMoney(minor: bigint): string {
  const negative = minor < 0n
  const abs = negative ? -minor : minor
  const units = abs / MINOR_PER_UNIT
  const cents = (abs % MINOR_PER_UNIT).toString().padStart(MONEY_SCALE, '0')
  return `${negative ? '-' : ''}${units}.${cents}`
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

/** `rate` percent of an amount, rounded half away from zero to the cent (90.00 × 8.875 % = 7.99). */
export function percentOf(minor: bigint, rate: string): bigint {
  return divideRounded(minor * parseRate(rate), 100n * RATE_SCALE)
}

/** n / d rounded half away from zero (d > 0). */
export function divideRounded(n: bigint, d: bigint): bigint {
  if (d <= 0n) throw new RangeError('divisor must be positive')
  return n >= 0n ? (2n * n + d) / (2n * d) : -((-2n * n + d) / (2n * d))
}

/** Whether an amount fits numeric(14,2) (either sign). */
export function fitsMoneyColumn(minor: bigint): boolean {
  return minor <= MAX_MONEY_MINOR && minor >= -MAX_MONEY_MINOR
}
