import { type Kysely, sql } from 'kysely'

/**
 * Money holds three decimals and each amount keeps its currency's minor units.
 *
 * The money columns become the domain crm_money: numeric with at most three fraction digits
 * (KWD, BHD: fils) and twelve integer digits, with no fixed scale. PostgreSQL keeps the scale a
 * value was written with, and the API writes every amount with exactly its currency's minor units
 * (src/lib/money.ts), so a JPY total is stored as 1500, a CNY one as 129.90 and a KWD one as
 * 1.234: the text of a column, of its sums (customer_spend, receivables) and of an audit snapshot
 * is the API's representation, with no currency table in SQL. The CHECK constraints that restate
 * the arithmetic compare values, not scales, and hold unchanged.
 *
 * Existing amounts (numeric(14,2), so "1500.00" for JPY) are rewritten at their currency's scale
 * while the column type changes (no trigger fires, no version or audit row is added). An amount
 * with more decimals than its currency allows (JPY 12.50, written before currencies were checked)
 * keeps the digits it needs: nothing is rounded. Codes the API does not accept keep two decimals.
 * The columns keep their default 0 (scale 0): a row written outside the API gives its amounts.
 * The currencies below are ISO 4217's with a minor unit other than two, as in src/lib/currency.ts
 * at the time of this migration; they are only needed here, for the rewrite.
 */
const ZERO_DECIMALS = ['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF']
const THREE_DECIMALS = ['BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND']

const ORDER_AMOUNTS = ['subtotal', 'discount_total', 'tax_total', 'shipping_total', 'total', 'amount_paid', 'amount_refunded']
const ITEM_AMOUNTS = ['unit_price', 'discount', 'line_total']

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create domain crm_money as numeric
      check (scale(value) <= 3 and value > -1000000000000 and value < 1000000000000)`.execute(db)
  await sql`
    comment on domain crm_money is
      'An amount with at most three decimals, stored with exactly its currency''s minor units (JPY 1500, CNY 129.90, KWD 1.234): its text is the API''s representation'`.execute(db)

  // Session-local helpers for the rewrite (pg_temp): the schema keeps no second list of currencies.
  await sql`
    create function pg_temp.crm_rescale(amount numeric, currency text) returns numeric language sql immutable as $$
      select round(amount, greatest(min_scale(amount), case
        when currency = any(${sql.lit(`{${ZERO_DECIMALS.join(',')}}`)}::text[]) then 0
        when currency = any(${sql.lit(`{${THREE_DECIMALS.join(',')}}`)}::text[]) then 3
        else 2 end))
    $$`.execute(db)
  await sql`
    create function pg_temp.crm_rescale_for_order(amount numeric, order_id uuid) returns numeric language sql stable as $$
      select pg_temp.crm_rescale(amount, (select o.currency from orders o where o.id = order_id))
    $$`.execute(db)

  const alter = (columns: string[], using: (c: string) => ReturnType<typeof sql>) =>
    sql.join(columns.map((c) => sql`alter column ${sql.ref(c)} type crm_money using ${using(c)}`))
  await sql`alter table orders ${alter(ORDER_AMOUNTS, (c) => sql`pg_temp.crm_rescale(${sql.ref(c)}, currency)`)}`.execute(db)
  await sql`alter table order_items ${alter(ITEM_AMOUNTS, (c) => sql`pg_temp.crm_rescale_for_order(${sql.ref(c)}, order_id)`)}`.execute(db)
  await sql`alter table order_payments ${alter(['amount'], (c) => sql`pg_temp.crm_rescale_for_order(${sql.ref(c)}, order_id)`)}`.execute(db)
  await sql`alter table customers ${alter(['credit_limit'], (c) => sql`pg_temp.crm_rescale(${sql.ref(c)}, credit_currency)`)}`.execute(db)
  // A sum of many orders may pass twelve integer digits: plain numeric, at the scale of its amounts.
  await sql`alter table customer_spend alter column total_spent type numeric using pg_temp.crm_rescale(total_spent, currency)`.execute(db)

  await sql`drop function pg_temp.crm_rescale_for_order(numeric, uuid)`.execute(db)
  await sql`drop function pg_temp.crm_rescale(numeric, text)`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  const alter = (columns: string[], type: ReturnType<typeof sql>) =>
    sql.join(columns.map((c) => sql`alter column ${sql.ref(c)} type ${type} using round(${sql.ref(c)}, 2)`))
  await sql`alter table orders ${alter(ORDER_AMOUNTS, sql`numeric(14, 2)`)}`.execute(db)
  await sql`alter table order_items ${alter(ITEM_AMOUNTS, sql`numeric(14, 2)`)}`.execute(db)
  await sql`alter table order_payments ${alter(['amount'], sql`numeric(14, 2)`)}`.execute(db)
  await sql`alter table customers ${alter(['credit_limit'], sql`numeric(14, 2)`)}`.execute(db)
  await sql`alter table customer_spend ${alter(['total_spent'], sql`numeric(16, 2)`)}`.execute(db)
  await sql`drop domain crm_money`.execute(db)
}
