import { Type, type Static } from 'typebox'
import { PROBLEM_CODES } from '../../lib/problem-types.js'
import { StringEnum } from '../../lib/schema.js'

const FieldErrorExample = Type.Object({ pointer: Type.String(), message: Type.String() }, { additionalProperties: false })

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
    // No example: an entry has a property named `example`, which Spectral's example rule takes
    // for an example keyword and then reads the entry as a schema.
    description: 'A problem type: its code, status and title, when it happens and what to do',
  },
)
export type ProblemTypeDto = Static<typeof ProblemType>

export const ProblemTypeList = Type.Object(
  {
    data: Type.Array(Type.Unsafe<ProblemTypeDto>({ $ref: 'ProblemType#' })),
    next_cursor: Type.Null({ description: 'Always null: the registry is one page' }),
  },
  { $id: 'ProblemTypeList', additionalProperties: false, description: 'Every problem type the API answers' },
)

export const ProblemCodeParams = Type.Object(
  { code: Type.String({ pattern: '^[a-z0-9-]{1,64}$', description: 'A problem code', example: 'version-mismatch' }) },
  { additionalProperties: false },
)

export const problemSchemas = [ProblemType, ProblemTypeList]
