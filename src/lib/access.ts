import { sql, type RawBuilder } from 'kysely'

/**
 * What an actor may see, as the row-level security policies read it (migration
 * 20261205T030000_access_control): every record, the records it owns, and those of some teams.
 * It also names the actor's home team, which the customers it creates belong to.
 */
export interface AccessContext {
  all: boolean
  userId: string | null
  /** Its home team: the owning team of the customers it creates. */
  teamId: string | null
  /** The teams whose records it sees (with their sub-teams already expanded). */
  teams: readonly string[]
}

/** Internal systems and scheduled jobs: every record, through their role (not by switching RLS off). */
export const SEES_ALL: AccessContext = Object.freeze({ all: true, userId: null, teamId: null, teams: Object.freeze([]) })
/** A connection of a request with no principal (ops and docs routes): no customer at all. */
export const SEES_NOTHING: AccessContext = Object.freeze({ all: false, userId: null, teamId: null, teams: Object.freeze([]) })

/** The settings' values, in the order of ACCESS_SETTINGS. */
function values(ctx: AccessContext): [string, string, string, string] {
  return [ctx.all ? 'on' : '', ctx.userId ?? '', ctx.teamId ?? '', ctx.teams.length === 0 ? '' : `{${ctx.teams.join(',')}}`]
}

const ACCESS_SETTINGS = ['crm.acl_all', 'crm.acl_user', 'crm.acl_team', 'crm.acl_teams'] as const

/** A stable text key of a context: a connection whose settings hold this key needs no new ones. */
export const accessKey = (ctx: AccessContext) => values(ctx).join('|')

/**
 * The set_config calls that hand the context to PostgreSQL, as select-list items (joined into the
 * statement that sets the audit context). local: until the end of the transaction; otherwise for
 * the session (a read outside any transaction, see src/db/scope.ts).
 */
export function accessSettingsSql(ctx: AccessContext, local: boolean): RawBuilder<unknown> {
  const v = values(ctx)
  return sql.join(ACCESS_SETTINGS.map((name, i) => sql`set_config(${name}, ${v[i]}, ${local})`))
}

/** The same as one parameterized statement for a raw pg client. */
export function accessSettingsQuery(ctx: AccessContext): { text: string; values: string[] } {
  return {
    text: `select ${ACCESS_SETTINGS.map((name, i) => `set_config('${name}', $${i + 1}, false)`).join(', ')}`,
    values: values(ctx),
  }
}
