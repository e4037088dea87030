import currencyCodes from 'currency-codes'

/**
 * ISO 4217 currencies and their minor units, from the currency-codes package (ISO's list one; see
 * currencyCodes.publishDate). Every place the API accepts a currency (orders, credit terms,
 * filters and segments on spend, analytics parameters) checks it here, through the schema format
 * `iso-4217` (lib/validation.ts) or isCurrencyCode.
 *
 * A code is accepted when ISO gives it a minor unit this API can hold:
 * - codes without one ("N.A." in ISO's list: precious metals XAU XAG XPD XPT, bond-market units
 *   XBA–XBD, XDR, XSU, XUA, the testing code XTS and XXX, "no currency") have no amount
 *   precision to check and are not money an order is paid in; the package lists them with 0;
 * - CLF and UYW have four decimals, more than the money type's three (crm_money).
 * XCG (Caribbean guilder, two decimals, in use since 2025-03-31) is added here: the package's list
 * predates it.
 */
const NO_MINOR_UNIT = new Set(['XAG', 'XAU', 'XBA', 'XBB', 'XBC', 'XBD', 'XDR', 'XPD', 'XPT', 'XSU', 'XTS', 'XUA', 'XXX'])
const LATER_AMENDMENTS: ReadonlyArray<readonly [string, number]> = [['XCG', 2]]

/** The most fraction digits a money amount has (numeric scale of the crm_money domain). */
export const MAX_MINOR_UNITS = 3

const MINOR_UNITS: ReadonlyMap<string, number> = new Map([
  ...currencyCodes.data
    .filter((c) => !NO_MINOR_UNIT.has(c.code) && c.digits <= MAX_MINOR_UNITS)
    .map((c) => [c.code, c.digits] as const),
  ...LATER_AMENDMENTS,
])

/** The ISO 4217 codes the API accepts, sorted. */
export const CURRENCY_CODES: readonly string[] = [...MINOR_UNITS.keys()].sort()

export function isCurrencyCode(code: unknown): code is string {
  return typeof code === 'string' && MINOR_UNITS.has(code)
}

/** Scale of the money columns before currencies were checked against ISO 4217. */
const LEGACY_MINOR_UNITS = 2

/**
 * Fraction digits of the currency's minor unit: JPY 0, CNY 2, KWD 3. A code the API no longer
 * accepts can still be stored (orders written before codes were checked); its amounts kept the
 * two decimals every amount had then, so it answers 2. New input is gated by isCurrencyCode.
 */
export function minorUnits(code: string): number {
  return MINOR_UNITS.get(code) ?? LEGACY_MINOR_UNITS
}

/** The field error message of a code that is not accepted. */
export const CURRENCY_MESSAGE = 'must be an ISO 4217 currency code with a minor unit of at most 3 decimals, such as CNY, JPY or KWD'
