import { Type, type Static } from 'typebox'
import { PageQuery, pageEnvelope } from '../../lib/pagination.js'
import { Nullable, StringEnum, Timestamp, Uuid, ref } from '../../lib/schema.js'
import { profileFields } from '../customers/customers.schemas.js'

export const IMPORT_KINDS = ['customers'] as const
export const IMPORT_FORMATS = ['csv', 'ndjson'] as const
export const IMPORT_STATUSES = ['receiving', 'merging', 'succeeded', 'failed'] as const
/** Media types of an import body, by format. */
export const IMPORT_MEDIA_TYPES = { csv: 'text/csv', ndjson: 'application/x-ndjson' } as const
/** How many rejected rows a job lists (the count covers them all). */
export const MAX_LISTED_ERRORS = 1000

/**
 * One customer row of an import: the flat profile fields, plus a primary email and phone.
 * In CSV, tags are one column separated by `|`; empty cells are absent values.
 */
export const CustomerImportRow = Type.Object(
  {
    external_ref: Type.Optional(profileFields.external_ref),
    name: profileFields.name,
    given_name: Type.Optional(profileFields.given_name),
    family_name: Type.Optional(profileFields.family_name),
    gender: Type.Optional(profileFields.gender),
    birthday: Type.Optional(profileFields.birthday),
    occupation: Type.Optional(profileFields.occupation),
    marital_status: Type.Optional(profileFields.marital_status),
    company: Type.Optional(profileFields.company),
    job_title: Type.Optional(profileFields.job_title),
    preferred_channel: Type.Optional(profileFields.preferred_channel),
    acquisition_source: Type.Optional(profileFields.acquisition_source),
    tags: Type.Optional(profileFields.tags),
    email: Type.Optional(Nullable(Type.String({ minLength: 3, maxLength: 320, example: 'li.na@example.com' }))),
    phone: Type.Optional(Nullable(Type.String({ minLength: 5, maxLength: 40, example: '+86 138 0013 8000' }))),
  },
  {
    $id: 'CustomerImportRow',
    additionalProperties: false,
    description:
      'One line of a customer import (an NDJSON object, or a CSV row under a header naming these columns). ' +
      'A row with a known external_ref updates that customer; email and phone become its primary contact points.',
    example: { external_ref: 'shop-000123', name: '李娜 Li Na', gender: 'female', acquisition_source: 'import', tags: ['vip'], email: 'li.na@example.com', phone: '+8613800138000' },
  },
)
export type CustomerImportRowT = Static<typeof CustomerImportRow>
export const CUSTOMER_IMPORT_COLUMNS = Object.keys(CustomerImportRow.properties) as Array<keyof CustomerImportRowT>

const RowError = Type.Object({
  line: Type.Integer({ description: 'Line of the upload (1 is the first line, the header in CSV)', example: 3 }),
  pointer: Type.String({ description: 'JSON Pointer to the field within the row, "" for the whole row', example: '/email' }),
  message: Type.String({ example: 'must be an email address' }),
})

export const ImportJob = Type.Object(
  {
    id: Uuid(),
    kind: StringEnum(IMPORT_KINDS),
    format: StringEnum(IMPORT_FORMATS),
    status: StringEnum(IMPORT_STATUSES, { description: 'receiving the upload, merging it, succeeded, or failed (nothing was imported)' }),
    rows_received: Type.Integer({ description: 'Data rows read from the upload so far' }),
    rows_imported: Type.Integer({ description: 'Rows merged: rows_created + rows_updated' }),
    rows_created: Type.Integer(),
    rows_updated: Type.Integer({ description: 'Rows whose external_ref matched an existing customer' }),
    rows_rejected: Type.Integer({ description: 'Rows refused (invalid, or conflicting with existing data); the rest were imported' }),
    errors: Type.Array(RowError, { description: `The first ${MAX_LISTED_ERRORS} rejected rows, by line` }),
    failure: Nullable(Type.String({ description: 'Why the whole job failed, when it did' })),
    actor: Type.String({ description: 'Who uploaded it' }),
    request_id: Nullable(Type.String()),
    version: Type.Integer(),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    finished_at: Nullable(Timestamp()),
  },
  {
    $id: 'ImportJob',
    description: 'A bulk import: its progress, outcome and rejected rows',
    example: {
      id: '0193a7d0-6f1e-7c3a-9b1e-2f4c8d9e0a31', kind: 'customers', format: 'csv', status: 'succeeded', rows_received: 3, rows_imported: 2,
      rows_created: 2, rows_updated: 0, rows_rejected: 1, errors: [{ line: 3, pointer: '/email', message: 'must be an email address' }], failure: null,
      actor: 'user:42', request_id: 'req-1', version: 3, created_at: '2026-11-22T08:30:00.000Z', updated_at: '2026-11-22T08:30:01.000Z',
      finished_at: '2026-11-22T08:30:01.000Z',
    },
  },
)
export type ImportJobDto = Static<typeof ImportJob>

export const ImportJobList = Type.Object(pageEnvelope(ref(ImportJob), 'A page of import jobs').properties, {
  $id: 'ImportJobList',
  description: 'A page of import jobs, newest first',
  example: { data: [], next_cursor: null },
})

export const ImportCreateQuery = Type.Object(
  { kind: StringEnum(IMPORT_KINDS, { description: 'What the rows are', default: 'customers' }) },
  { additionalProperties: false },
)

export const ImportListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })

export const importSchemas = [CustomerImportRow, ImportJob, ImportJobList]
