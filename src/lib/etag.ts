import type { FastifyReply, FastifyRequest } from 'fastify'
import { problem, pointer, versionMismatch } from './problem.js'

/**
 * Optimistic concurrency: a resource's integer `version` is its ETag ("<version>").
 * If-Match on PATCH/DELETE is compared in SQL (WHERE version = n), so concurrent writers
 * get exactly one winner; the losers answer 412.
 */
export function setEtag(reply: FastifyReply, version: number): void {
  reply.header('etag', `"${version}"`)
}

/**
 * The version an If-Match header requires, or undefined when absent or "*". If-Match uses the
 * strong comparison (RFC 9110 section 13.1.1): a weak tag (W/"3") never matches, so it is a 412.
 */
export function ifMatchVersion(request: FastifyRequest): number | undefined {
  const raw = request.headers['if-match']
  if (raw === undefined || raw.trim() === '*') return undefined
  const m = /^\s*(W\/)?"(\d{1,9})"\s*$/.exec(raw)
  if (!m) {
    throw problem('invalid-if-match', 'If-Match must be an ETag from this API, such as "3".', [{ pointer: pointer('headers', 'if-match'), message: 'must be a quoted version number' }])
  }
  if (m[1]) throw versionMismatch('If-Match needs the strong ETag ("3"); a weak one (W/"3") never matches.')
  return Number(m[2])
}

/** True when If-None-Match names the current version: answer 304 without a body. */
export function notModified(request: FastifyRequest, version: number): boolean {
  const raw = request.headers['if-none-match']
  if (!raw) return false
  if (raw.trim() === '*') return true
  return raw.split(',').some((tag) => tag.trim().replace(/^W\//, '') === `"${version}"`)
}

/**
 * The conditional GET of every resource: when If-None-Match names the current version, answers
 * 304 with the ETag and no body and returns true (the handler then returns the reply).
 */
export function replyNotModified(request: FastifyRequest, reply: FastifyReply, version: number): boolean {
  if (!notModified(request, version)) return false
  setEtag(reply, version)
  reply.code(304).send(null)
  return true
}
