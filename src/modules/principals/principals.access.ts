import type { JWTPayload } from 'jose'
import type { Db } from '../../db/database.js'
import type { AccessContext } from '../../lib/access.js'
import { SCOPES, type Principal, type PrincipalResolver } from '../../plugins/auth.js'
import * as repo from './principals.repository.js'

export type Visibility = 'own' | 'team' | 'team_and_subteams' | 'all'
export const VISIBILITIES: readonly Visibility[] = ['own', 'team', 'team_and_subteams', 'all']
export type FieldClass = 'personal' | 'financial'
/** The grant each field class gives (src/plugins/auth.ts FIELD_GRANTS). */
const FIELD_CLASS_SCOPE: Record<FieldClass, string> = { personal: 'pii:read', financial: 'financial:read' }

export interface PrincipalOptions {
  /**
   * Where an identity provider owns roles and teams: the token claim holding role keys (an array
   * or a space-separated string), and the one holding team ids. When the roles claim is present
   * it replaces the user's stored roles, and the teams claim (if configured) its memberships.
   * Unset (the default): roles and memberships are managed through /v1/users.
   */
  rolesClaim?: string | undefined
  teamsClaim?: string | undefined
  /** How long a resolved principal is reused, per subject and claims (default 5 s; 0: never). */
  cacheMs?: number | undefined
}

export interface RoleGrant {
  permissions: unknown
  visibility: string
  field_classes: string[]
}

/** The scopes a set of roles grants: `<resource>:<action>` per permission, and the field-class grants. */
export function scopesOf(roles: RoleGrant[]): Set<string> {
  const known = new Set<string>(SCOPES)
  const out = new Set<string>()
  for (const role of roles) {
    for (const [resource, actions] of Object.entries((role.permissions ?? {}) as Record<string, unknown>)) {
      if (!Array.isArray(actions)) continue
      for (const action of actions) if (known.has(`${resource}:${String(action)}`)) out.add(`${resource}:${String(action)}`)
    }
    for (const fieldClass of role.field_classes) {
      const scope = FIELD_CLASS_SCOPE[fieldClass as FieldClass]
      if (scope) out.add(scope)
    }
  }
  return out
}

/** The widest visibility of the roles; none: own. */
export function visibilityOf(roles: RoleGrant[]): Visibility {
  let widest = 0
  for (const role of roles) widest = Math.max(widest, VISIBILITIES.indexOf(role.visibility as Visibility))
  return VISIBILITIES[widest]!
}

const claimList = (payload: JWTPayload, claim: string | undefined): string[] | undefined => {
  if (!claim) return undefined
  const raw = payload[claim]
  if (Array.isArray(raw)) return raw.map(String)
  if (typeof raw === 'string') return raw.split(' ').filter(Boolean)
  return undefined
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

type Resolved = Omit<Principal, 'sub'>

/**
 * Resolves a token's subject to its user principal: its roles (stored, or from the roles claim),
 * teams (memberships, or the teams claim) and what it may see. A subject that is no user, with no
 * roles claim, is a service principal (undefined). An archived user keeps being a user, with no
 * roles: a departed employee's token grants nothing, rather than falling back to its scopes.
 */
export async function resolvePrincipal(db: Db, payload: JWTPayload, opts: PrincipalOptions): Promise<Resolved | undefined> {
  const sub = payload.sub!
  const claimRoles = claimList(payload, opts.rolesClaim)
  const user = await repo.userBySubject(db, sub)
  if (!user && !claimRoles) return undefined
  const live = user ? user.archived_at === null : true
  const roles = !live ? [] : claimRoles ? await repo.rolesByKey(db, claimRoles) : await repo.rolesOfUser(db, user!.id)
  const claimTeams = claimList(payload, opts.teamsClaim)?.filter((id) => UUID.test(id))
  const teams = !live ? [] : claimRoles && claimTeams ? claimTeams : user ? await repo.teamsOfUser(db, user.id) : []
  const visibility = visibilityOf(roles)
  const userId = user?.id ?? null
  const teamId = user?.primary_team_id ?? teams[0] ?? null
  const seen = visibility === 'team' ? teams : visibility === 'team_and_subteams' ? await repo.teamsWithSubteams(db, teams) : []
  const access: AccessContext = { all: visibility === 'all' && roles.length > 0, userId, teamId, teams: seen }
  return { scopes: scopesOf(roles), userId, access }
}

/**
 * The resolver the auth plugin calls for every authenticated request, with a short cache per
 * subject and claims: principals change rarely, and a write through /v1/users, /v1/teams or
 * /v1/roles clears it in this process (other instances see the change within cacheMs).
 */
export function principalResolver(db: Db, opts: PrincipalOptions): PrincipalResolver & { clear(): void } {
  const ttl = opts.cacheMs ?? 5000
  const cache = new Map<string, { value: Resolved | undefined; until: number }>()
  const resolver = async (payload: JWTPayload) => {
    const key = JSON.stringify([payload.sub, claimList(payload, opts.rolesClaim), claimList(payload, opts.teamsClaim)])
    const now = Date.now()
    const hit = cache.get(key)
    if (hit && hit.until > now) return hit.value
    const value = await resolvePrincipal(db, payload, opts)
    if (ttl > 0) {
      if (cache.size >= 10_000) cache.clear()
      cache.set(key, { value, until: now + ttl })
    }
    return value
  }
  return Object.assign(resolver, { clear: () => cache.clear() })
}
