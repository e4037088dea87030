import { Type, type Static } from 'typebox'
import { PROBLEM_CODES } from '../../lib/problem-types.js'
import { StringEnum } from '../../lib/schema.js'

const FieldErrorExample = Type.Object({ pointer: Type.String(), message: Type.String() }, { additionalProperties: false })

const EXAMPLE = {
  code: 'version-mismatch',
  type: '/problems/version-mismatch',
  status: 412,
  title: 'Version mismatch',
  description: 'If-Match does not match the resource\'s current ETag: it was changed since the client read it.',
  action: 'GET the resource again, reapply the change to what it holds now, and send it with the new ETag.',
  example: { detail: 'The resource was changed since you read it (If-Match does not match its ETag).' },
}

/** One entry of the problem type registry, as GET /problems and GET /problems/{code} answer it in JSON. */
export const ProblemType = Type.Object(
  {
    code: StringEnum(PROBLEM_CODES, { description: 'The stable code clients branch on' }),
    type: Type.String({ description: 'The type URI problems of this code carry (relative unless PUBLIC_URL is set)', example: '/problems/version-mismatch' }),
    status: Type.Integer({ description: 'The HTTP status every problem of this code has', example: 412 }),
    title: Type.String({ example: 'Version mismatch' }),
    description: Type.String({ description: 'When the server answers it' }),
    action: Type.String({ description: 'What the client should do about it' }),
    example: Type.Object({
      detail: Type.String(),
      errors: Type.Optional(Type.Array(FieldErrorExample)),
    }, { additionalProperties: false, description: 'The detail and field errors of a typical occurrence' }),
  },
  {
    $id: 'ProblemType',
    additionalProperties: false,
    description: 'A problem type: its code, status and title, when it happens and what to do',
    example: EXAMPLE,
  },
)
export type ProblemTypeDto = Static<typeof ProblemType>

export const ProblemTypeList = Type.Object(
  {
    data: Type.Array(Type.Unsafe<ProblemTypeDto>({ $ref: 'ProblemType#' })),
    next_cursor: Type.Null({ description: 'Always null: the registry is one page' }),
  },
  { $id: 'ProblemTypeList', additionalProperties: false, description: 'Every problem type the API answers', example: { data: [EXAMPLE], next_cursor: null } },
)

export const ProblemCodeParams = Type.Object(
  { code: Type.String({ pattern: '^[a-z0-9-]{1,64}$', description: 'A problem code', example: 'version-mismatch' }) },
  { additionalProperties: false },
)

export const problemSchemas = [ProblemType, ProblemTypeList]
