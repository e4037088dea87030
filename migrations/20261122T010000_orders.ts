import { type Kysely, sql } from 'kysely'

/**
 * Orders, their line items and their payment ledger (payments and refunds).
 * Money is numeric(14,2); the application computes totals in integer minor units and the
 * CHECK constraints below hold the arithmetic true whatever code path writes a row.
 */
export async function up(db: Kysely<any>): Promise<void> {
  // Order numbers the server assigns when a client sends none: ORD-00000001, ORD-00000002, …
  await sql`create sequence order_number_seq`.execute(db)

  await sql`
    create table orders (
      id uuid primary key default crm_uuid_v7(),
      external_ref text unique,
      order_number text not null unique default ('ORD-' || to_char(nextval('order_number_seq'), 'FM00000000')),
      customer_id uuid not null references customers (id),
      status text not null default 'pending' check (status in ('pending', 'paid', 'fulfilled', 'cancelled', 'refunded', 'partially_refunded')),
      channel text not null default 'other' check (channel in ('online', 'store', 'phone', 'partner', 'marketplace', 'social', 'other')),
      payment_method text check (payment_method in ('card', 'cash', 'bank_transfer', 'wallet', 'credit', 'cod', 'other')),
      currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
      tax_rate numeric(7, 4) not null default 0 check (tax_rate between 0 and 100),
      subtotal numeric(14, 2) not null default 0 check (subtotal >= 0),
      discount_total numeric(14, 2) not null default 0 check (discount_total >= 0),
      tax_total numeric(14, 2) not null default 0 check (tax_total >= 0),
      shipping_total numeric(14, 2) not null default 0 check (shipping_total >= 0),
      total numeric(14, 2) not null default 0 check (total >= 0),
      amount_paid numeric(14, 2) not null default 0 check (amount_paid >= 0),
      amount_refunded numeric(14, 2) not null default 0 check (amount_refunded >= 0),
      due_date date,
      ordered_at timestamptz not null default now(),
      notes text,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      archived_at timestamptz,
      check (total = subtotal - discount_total + tax_total + shipping_total),
      check (amount_refunded <= amount_paid),
      check (amount_paid - amount_refunded <= total)
    )`.execute(db)
  await sql`create index orders_customer_ordered_idx on orders (customer_id, ordered_at, id)`.execute(db)
  await sql`create index orders_status_ordered_idx on orders (status, ordered_at, id)`.execute(db)
  await sql`create index orders_ordered_idx on orders (ordered_at, id)`.execute(db)
  await sql`create index orders_created_idx on orders (created_at, id)`.execute(db)
  await sql`create index orders_total_idx on orders (total, id)`.execute(db)
  // Open receivables: credit sales (a due date) that still owe something. What an order owes
  // (amount_outstanding in the API) is total - amount_paid + amount_refunded while it is pending,
  // and nothing once it is settled. It is not a generated column: crm_touch compares NEW with OLD
  // in a BEFORE trigger, where a stored generated column is not computed yet, so every UPDATE,
  // even a no-op, would bump the version.
  await sql`
    create index orders_receivable_due_idx on orders (due_date, id)
    where due_date is not null and status = 'pending' and total > amount_paid - amount_refunded and archived_at is null`.execute(db)
  await sql`
    create index orders_customer_receivable_idx on orders (customer_id, due_date)
    where due_date is not null and status = 'pending' and total > amount_paid - amount_refunded and archived_at is null`.execute(db)

  await sql`
    create table order_items (
      id uuid primary key default crm_uuid_v7(),
      order_id uuid not null references orders (id) on delete cascade,
      position integer not null check (position >= 0),
      sku text,
      product_name text not null,
      category text,
      quantity integer not null check (quantity > 0),
      unit_price numeric(14, 2) not null check (unit_price >= 0),
      discount numeric(14, 2) not null default 0 check (discount >= 0),
      line_total numeric(14, 2) not null check (line_total >= 0),
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check (line_total = quantity * unit_price - discount),
      unique (order_id, position)
    )`.execute(db)
  await sql`create index order_items_sku_idx on order_items (sku) where sku is not null`.execute(db)
  await sql`create index order_items_category_idx on order_items (category) where category is not null`.execute(db)

  await sql`
    create table order_payments (
      id uuid primary key default crm_uuid_v7(),
      order_id uuid not null references orders (id) on delete cascade,
      kind text not null default 'payment' check (kind in ('payment', 'refund')),
      amount numeric(14, 2) not null check (amount > 0),
      method text not null default 'other' check (method in ('card', 'cash', 'bank_transfer', 'wallet', 'credit', 'cod', 'other')),
      paid_at timestamptz not null default now(),
      reference text,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  await sql`create index order_payments_order_idx on order_payments (order_id, paid_at, id)`.execute(db)

  for (const table of ['orders', 'order_items', 'order_payments']) {
    await sql`create trigger touch before update on ${sql.table(table)} for each row execute function crm_touch()`.execute(db)
    await sql`select crm_audit_attach(${table}::regclass)`.execute(db)
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table if exists order_payments, order_items, orders`.execute(db)
  await sql`drop sequence if exists order_number_seq`.execute(db)
}
