import { problem, type ProblemCode } from './problem.js'

/**
 * What a client is told when a write breaks a database constraint, by constraint name: the one
 * place that turns PostgreSQL's unique, foreign-key, check and exclusion violations into problems.
 * Only constraints a valid request can reach belong here (a value another record holds, a race
 * between two requests); the services check every other rule before they write, so a violation
 * of a constraint missing from this map is a server bug and answers 500 (plugins/errors.ts).
 */
interface ConstraintRule {
  /** The registered problem (src/lib/problem-types.ts), which gives the status. */
  code: ProblemCode
  detail: string
  /** JSON Pointer to the field, from the root of the record's body. */
  pointer: string
  message: string
}

const externalRefTaken = (other: string): ConstraintRule => ({
  code: 'external-ref-taken',
  detail: `${other[0]!.toUpperCase()}${other.slice(1)} already has this external_ref.`,
  pointer: '/external_ref',
  message: `is already taken by ${other}`,
})

export const CONSTRAINT_PROBLEMS: Readonly<Record<string, ConstraintRule>> = {
  customers_external_ref_key: externalRefTaken('another customer'),
  orders_external_ref_key: externalRefTaken('another order'),
  interactions_external_ref_key: externalRefTaken('another interaction'),
  feedback_external_ref_key: externalRefTaken('other feedback'),
  orders_order_number_key: {
    code: 'order-number-taken', detail: 'Another order already has this order_number.', pointer: '/order_number', message: 'is already taken by another order',
  },
  contact_points_primary_email_idx: {
    code: 'primary-email-taken', detail: 'Another customer already has this primary email.', pointer: '/value', message: 'is the primary email of another customer',
  },
  users_subject_key: {
    code: 'subject-taken', detail: 'Another user already has this subject.', pointer: '/subject', message: 'is already the subject of another user',
  },
  roles_key_key: {
    code: 'role-key-taken', detail: 'Another role already has this key.', pointer: '/key', message: 'is already the key of another role',
  },
  teams_check: {
    code: 'team-cycle', detail: 'A team cannot be inside itself or its own sub-teams.', pointer: '/parent_id', message: 'is the team or one of its sub-teams',
  },
  segments_live_name_idx: {
    code: 'segment-name-taken', detail: 'A live segment already has this name.', pointer: '/name', message: 'is already used by another segment',
  },
}

/** The problem of a known constraint, its pointer under `at` (e.g. `/contact_points/2` for an item of the body). */
export function constraintProblem(constraint: string, at = '') {
  const rule = CONSTRAINT_PROBLEMS[constraint]
  if (!rule) throw new Error(`no problem is defined for constraint ${constraint}`)
  return problem(rule.code, rule.detail, [{ pointer: at + rule.pointer, message: rule.message }])
}

const VIOLATIONS = new Set(['23505', '23503', '23514', '23P01'])

/** The problem of a PostgreSQL error that violates a known constraint; undefined for anything else. */
export function violatedConstraint(err: unknown, at = '') {
  const e = err as { code?: unknown; constraint?: unknown } | null
  if (!e || typeof e.code !== 'string' || !VIOLATIONS.has(e.code) || typeof e.constraint !== 'string') return undefined
  return e.constraint in CONSTRAINT_PROBLEMS ? constraintProblem(e.constraint, at) : undefined
}

/**
 * Runs a write whose known constraint violations point into a part of the body (`at`), e.g. one
 * contact point of a customer's `contact_points`. Without such a part no wrapper is needed: the
 * errors plugin maps violations with pointers from the body's root.
 */
export async function constraintsAt<T>(at: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write()
  } catch (err) {
    throw violatedConstraint(err, at) ?? err
  }
}
