import { type Kysely, sql } from 'kysely'

/**
 * Who may see what (issue 14): principals (users, teams inside teams, roles, memberships), record
 * ownership on customers, and row-level security that enforces visibility in the database.
 *
 * The actor's visibility is handed to PostgreSQL per transaction (set_config(..., true), in the
 * statement that sets the audit context) and, for reads outside a transaction, per connection
 * checkout (src/db/scope.ts). Three settings, read through STABLE SQL functions:
 * - crm.acl_all   'on' when the actor sees every record (service principals, jobs, visibility all);
 * - crm.acl_user  the actor's user id (records it owns);
 * - crm.acl_teams the teams whose records it sees (its teams, and their sub-teams when its role says so);
 * - crm.acl_team  its home team, which the customers it creates belong to.
 * Unset, they see nothing: a connection that forgot its context reads no customer.
 *
 * Customers carry owner_user_id and owning_team_id; the tables hanging off a customer follow it:
 * their policy is "the customer is visible", a subquery on customers that customers' own policy
 * filters. ENABLE + FORCE: the table owner is held too (superusers and BYPASSRLS roles are not).
 * audit_events and events are left to a later migration (their partitioning changes first).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table teams (
      id uuid primary key default crm_uuid_v7(),
      name text not null check (length(name) between 1 and 200),
      parent_id uuid references teams (id),
      description text check (length(description) <= 2000),
      version integer not null default 1,
      created_at timestamptz(3) not null default now(),
      updated_at timestamptz(3) not null default now(),
      archived_at timestamptz(3),
      check (parent_id <> id)
    )`.execute(db)
  await sql`create index teams_parent_idx on teams (parent_id)`.execute(db)
  await sql`create index teams_created_idx on teams (created_at, id)`.execute(db)

  // A team may not become its own ancestor: checked on the row being written, as a trigger so
  // that concurrent writers cannot both pass an application check.
  await sql`
    create function crm_teams_no_cycle() returns trigger language plpgsql as $$
    begin
      if new.parent_id is not null and exists (
        with recursive up as (
          select id, parent_id from teams where id = new.parent_id
          union
          select t.id, t.parent_id from teams t join up on t.id = up.parent_id
        ) select 1 from up where id = new.id
      ) then
        raise exception 'team % would be its own ancestor', new.id using errcode = '23514', constraint = 'teams_no_cycle';
      end if;
      return new;
    end $$`.execute(db)
  await sql`create trigger no_cycle before insert or update of parent_id on teams for each row execute function crm_teams_no_cycle()`.execute(db)

  await sql`
    create table roles (
      id uuid primary key default crm_uuid_v7(),
      key text not null unique check (key ~ '^[a-z][a-z0-9_]{0,62}$'),
      name text not null check (length(name) between 1 and 200),
      description text check (length(description) <= 2000),
      permissions jsonb not null default '{}' check (jsonb_typeof(permissions) = 'object'),
      visibility text not null check (visibility in ('own', 'team', 'team_and_subteams', 'all')),
      field_classes text[] not null default '{}' check (field_classes <@ array['personal', 'financial']),
      builtin boolean not null default false,
      version integer not null default 1,
      created_at timestamptz(3) not null default now(),
      updated_at timestamptz(3) not null default now(),
      archived_at timestamptz(3)
    )`.execute(db)
  await sql`create index roles_created_idx on roles (created_at, id)`.execute(db)

  await sql`
    create table users (
      id uuid primary key default crm_uuid_v7(),
      subject text not null unique check (length(subject) between 1 and 200),
      display_name text not null check (length(display_name) between 1 and 200),
      primary_team_id uuid references teams (id),
      version integer not null default 1,
      created_at timestamptz(3) not null default now(),
      updated_at timestamptz(3) not null default now(),
      archived_at timestamptz(3)
    )`.execute(db)
  await sql`create index users_created_idx on users (created_at, id)`.execute(db)

  await sql`
    create table team_memberships (
      id uuid primary key default crm_uuid_v7(),
      user_id uuid not null references users (id) on delete cascade,
      team_id uuid not null references teams (id),
      created_at timestamptz(3) not null default now(),
      unique (user_id, team_id)
    )`.execute(db)
  await sql`create index team_memberships_team_idx on team_memberships (team_id)`.execute(db)
  await sql`
    create table user_roles (
      id uuid primary key default crm_uuid_v7(),
      user_id uuid not null references users (id) on delete cascade,
      role_id uuid not null references roles (id),
      created_at timestamptz(3) not null default now(),
      unique (user_id, role_id)
    )`.execute(db)
  for (const table of ['teams', 'roles', 'users', 'team_memberships', 'user_roles']) {
    await sql`select crm_audit_attach(${table})`.execute(db)
  }
  for (const table of ['teams', 'roles', 'users']) {
    await sql`create trigger touch before update on ${sql.table(table)} for each row execute function crm_touch()`.execute(db)
  }

  const all = (actions: string[], resources: string[]) => Object.fromEntries(resources.map((r) => [r, actions]))
  const CRM = ['customers', 'orders', 'interactions', 'feedback', 'segments']
  const defaults: Array<[string, string, string, Record<string, string[]>, string, string[]]> = [
    ['admin', 'Administrator', 'Manages principals and every record; personal and financial data are separate grants.',
      { ...all(['read', 'write'], [...CRM, 'principals', 'webhooks']), analytics: ['read'], audit: ['read'], events: ['read'] }, 'all', []],
    ['sales_manager', 'Sales manager', 'Their teams\' and sub-teams\' customers, with purchase figures.',
      { ...all(['read', 'write'], CRM), analytics: ['read'] }, 'team_and_subteams', ['personal', 'financial']],
    ['sales_rep', 'Sales representative', 'The customers they own.',
      { ...all(['read', 'write'], ['customers', 'orders', 'interactions', 'feedback']), segments: ['read'] }, 'own', ['personal']],
    ['support_agent', 'Support agent', 'Their team\'s customers; records interactions and feedback.',
      { customers: ['read'], orders: ['read'], ...all(['read', 'write'], ['interactions', 'feedback']) }, 'team', ['personal']],
    ['marketing_analyst', 'Marketing analyst', 'Every customer without personal data; segments and analytics.',
      { customers: ['read'], ...all(['read', 'write'], ['segments']), analytics: ['read'] }, 'all', ['financial']],
    ['auditor', 'Auditor', 'Reads everything, changes nothing; no personal data.',
      { ...all(['read'], [...CRM, 'principals', 'webhooks', 'analytics', 'audit', 'events']) }, 'all', ['financial']],
    ['integration', 'Integration', 'Internal systems: every record, every field.',
      { ...all(['read', 'write'], [...CRM, 'webhooks']), analytics: ['read'], audit: ['read'], events: ['read'] }, 'all', ['personal', 'financial']],
  ]
  for (const [key, name, description, permissions, visibility, fieldClasses] of defaults) {
    await sql`
      insert into roles (key, name, description, permissions, visibility, field_classes, builtin)
      values (${key}, ${name}, ${description}, ${JSON.stringify(permissions)}::jsonb, ${visibility}, ${sql.val(fieldClasses)}::text[], true)`.execute(db)
  }

  // Ownership. No default and no backfill: a customer created before this has no owner and no
  // team, and only principals that see everything see it until it is transferred. The foreign
  // keys are NOT VALID (every existing value is null; no scan under the table's lock).
  // The defaults name the creating actor and its home team (crm.acl_team), so every path that
  // creates a customer (the API, batches, imports) sets the owner without being told; a
  // principal with no user (a service) creates unowned customers, which it may transfer.
  await sql`
    alter table customers
      add column owner_user_id uuid default nullif(current_setting('crm.acl_user', true), '')::uuid,
      add column owning_team_id uuid default nullif(current_setting('crm.acl_team', true), '')::uuid`.execute(db)
  await sql`alter table customers add constraint customers_owner_user_fk foreign key (owner_user_id) references users (id) not valid`.execute(db)
  await sql`alter table customers add constraint customers_owning_team_fk foreign key (owning_team_id) references teams (id) not valid`.execute(db)
  await sql`create index customers_owner_user_idx on customers (owner_user_id) where owner_user_id is not null`.execute(db)
  await sql`create index customers_owning_team_idx on customers (owning_team_id) where owning_team_id is not null`.execute(db)

  await sql`
    create function crm_acl_all() returns boolean language sql stable parallel safe as $$
      select coalesce(current_setting('crm.acl_all', true), '') = 'on'
    $$`.execute(db)
  await sql`
    create function crm_acl_user() returns uuid language sql stable parallel safe as $$
      select nullif(current_setting('crm.acl_user', true), '')::uuid
    $$`.execute(db)
  await sql`
    create function crm_acl_teams() returns uuid[] language sql stable parallel safe as $$
      select coalesce(nullif(current_setting('crm.acl_teams', true), ''), '{}')::uuid[]
    $$`.execute(db)
  // Whether the actor sees a record with this owner and team.
  await sql`
    create function crm_acl_sees(owner_user_id uuid, owning_team_id uuid) returns boolean language sql stable parallel safe as $$
      select crm_acl_all() or owner_user_id = crm_acl_user() or owning_team_id = any(crm_acl_teams())
    $$`.execute(db)

  await sql`alter table customers enable row level security`.execute(db)
  await sql`alter table customers force row level security`.execute(db)
  await sql`
    create policy customers_visibility on customers
      using (crm_acl_sees(owner_user_id, owning_team_id))
      with check (crm_acl_sees(owner_user_id, owning_team_id))`.execute(db)

  const follows = (table: string, parent: string, key: string) => sql`
    create policy ${sql.id(`${table}_visibility`)} on ${sql.table(table)}
      using (crm_acl_all() or exists (select 1 from ${sql.table(parent)} p where p.id = ${sql.ref(`${table}.${key}`)}))
      with check (crm_acl_all() or exists (select 1 from ${sql.table(parent)} p where p.id = ${sql.ref(`${table}.${key}`)}))`
  const children: Array<[string, string, string]> = [
    ['contact_points', 'customers', 'customer_id'],
    ['interactions', 'customers', 'customer_id'],
    ['orders', 'customers', 'customer_id'],
    ['feedback', 'customers', 'customer_id'],
    ['customer_metrics', 'customers', 'customer_id'],
    ['customer_spend', 'customers', 'customer_id'],
    ['customer_purchases', 'customers', 'customer_id'],
    ['customer_currency_purchases', 'customers', 'customer_id'],
    ['segment_members', 'customers', 'customer_id'],
    ['segment_snapshots', 'customers', 'customer_id'],
    ['segment_membership_events', 'customers', 'customer_id'],
    ['order_items', 'orders', 'order_id'],
    ['order_payments', 'orders', 'order_id'],
  ]
  for (const [table, parent, key] of children) {
    await sql`alter table ${sql.table(table)} enable row level security`.execute(db)
    await sql`alter table ${sql.table(table)} force row level security`.execute(db)
    await follows(table, parent, key).execute(db)
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['order_payments', 'order_items', 'segment_membership_events', 'segment_snapshots', 'segment_members', 'customer_currency_purchases',
    'customer_purchases', 'customer_spend', 'customer_metrics', 'feedback', 'orders', 'interactions', 'contact_points']) {
    await sql`drop policy if exists ${sql.id(`${table}_visibility`)} on ${sql.table(table)}`.execute(db)
    await sql`alter table ${sql.table(table)} no force row level security`.execute(db)
    await sql`alter table ${sql.table(table)} disable row level security`.execute(db)
  }
  await sql`drop policy if exists customers_visibility on customers`.execute(db)
  await sql`alter table customers no force row level security`.execute(db)
  await sql`alter table customers disable row level security`.execute(db)
  await sql`drop function if exists crm_acl_sees(uuid, uuid)`.execute(db)
  await sql`drop function if exists crm_acl_teams()`.execute(db)
  await sql`drop function if exists crm_acl_user()`.execute(db)
  await sql`drop function if exists crm_acl_all()`.execute(db)
  await sql`alter table customers drop column if exists owner_user_id, drop column if exists owning_team_id`.execute(db)
  for (const table of ['user_roles', 'team_memberships', 'users', 'roles', 'teams']) await sql`drop table if exists ${sql.table(table)}`.execute(db)
  await sql`drop function if exists crm_teams_no_cycle()`.execute(db)
}
