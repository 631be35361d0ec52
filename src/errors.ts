// src/errors.ts
// CachemirError and its subclasses: every error code the project uses, in one place.
// Codes are never reused once released; a retired code stays listed here as a comment.

export abstract class CachemirError extends Error {
  abstract readonly code: `CACHEMIR_${string}`
  /** HTTP status a request that fails with this error gets, when headers are not yet sent. */
  abstract readonly statusCode: number
}

/** Bad configuration: one or more problems, each naming the field (flag, variable or file key). */
export class ConfigError extends CachemirError {
  override name = 'ConfigError'
  readonly code = 'CACHEMIR_CONFIG_INVALID'
  readonly statusCode = 500
  readonly problems: readonly string[]
  constructor(problems: readonly string[], options?: ErrorOptions) {
    super(problems.join('; '), options)
    this.problems = problems
  }
}

/** The upstream could not be reached or answered with a failure before any body byte was sent. */
export class UpstreamError extends CachemirError {
  override name = 'UpstreamError'
  readonly code = 'CACHEMIR_UPSTREAM_FAILED'
  readonly statusCode = 502
  constructor(method: string, url: string, options?: ErrorOptions) {
    super(`upstream unreachable: ${method} ${url}${reasonOf(options?.cause)}`, options)
  }
}

/** The upstream did not answer in time. */
export class UpstreamTimeoutError extends CachemirError {
  override name = 'UpstreamTimeoutError'
  readonly code = 'CACHEMIR_UPSTREAM_TIMEOUT'
  readonly statusCode = 504
  constructor(method: string, url: string, options?: ErrorOptions) {
    super(`upstream timed out: ${method} ${url}${reasonOf(options?.cause)}`, options)
  }
}

/** The upstream body ended early or broke off after headers were sent to clients. */
export class UpstreamBodyError extends CachemirError {
  override name = 'UpstreamBodyError'
  readonly code = 'CACHEMIR_UPSTREAM_BODY_FAILED'
  readonly statusCode = 502
  constructor(url: string, detail: string, options?: ErrorOptions) {
    super(`upstream body failed: ${url}: ${detail}`, options)
  }
}

/**
 * A filled body did not hash to the digest its ecosystem publishes for it (src/integrity/): it is
 * not stored, and its clients' responses end before their last bytes.
 */
export class IntegrityError extends CachemirError {
  override name = 'IntegrityError'
  readonly code = 'CACHEMIR_INTEGRITY_MISMATCH'
  readonly statusCode = 502
  constructor(url: string, algorithm: string, options?: ErrorOptions) {
    super(`integrity check failed: ${url}: the body's ${algorithm} is not the published one`, options)
  }
}

/** The request is malformed or unsafe (bad path, absolute-form URI, traversal). The message is the reason alone: it is the 400's body. */
export class BadRequestError extends CachemirError {
  override name = 'BadRequestError'
  readonly code = 'CACHEMIR_BAD_REQUEST'
  readonly statusCode = 400
  constructor(reason: string, options?: ErrorOptions) {
    super(reason, options)
  }
}

/** A forward-proxy request for a host the mirror does not serve (`--proxy-allow`), or a CONNECT it does not tunnel. */
export class ForbiddenError extends CachemirError {
  override name = 'ForbiddenError'
  readonly code = 'CACHEMIR_FORBIDDEN'
  readonly statusCode = 403
  constructor(reason: string, options?: ErrorOptions) {
    super(reason, options)
  }
}

/** The path lies under no route (the mirror is never an open proxy), or under /_cachemir/ but names no endpoint. */
export class NotFoundError extends CachemirError {
  override name = 'NotFoundError'
  readonly code = 'CACHEMIR_NOT_FOUND'
  readonly statusCode = 404
  constructor(reason: string, options?: ErrorOptions) {
    super(reason, options)
  }
}

/** A cache file failed validation (wrong magic, length or key) and was dropped. */
export class CacheCorruptError extends CachemirError {
  override name = 'CacheCorruptError'
  readonly code = 'CACHEMIR_CACHE_CORRUPT'
  readonly statusCode = 500
  constructor(path: string, reason: string, options?: ErrorOptions) {
    super(`cache entry corrupt: ${path}: ${reason}`, options)
  }
}

/** Anything unexpected inside the request handler: becomes a 500 for that request only. */
export class InternalError extends CachemirError {
  override name = 'InternalError'
  readonly code = 'CACHEMIR_INTERNAL'
  readonly statusCode = 500
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/** ` (ECONNREFUSED)` or ` (certificate has expired)`: what the cause says, for one-line messages. */
function reasonOf(cause: unknown): string {
  if (cause === undefined || cause === null) return ''
  const code = errorCode(cause)
  const inner = typeof cause === 'object' && 'cause' in cause ? errorCode(cause.cause) : undefined
  const message = cause instanceof Error ? cause.message : ''
  const text = inner ?? (code !== undefined && !code.startsWith('UND_ERR') ? code : message)
  return text === '' ? '' : ` (${text.replace(/\s+/g, ' ').slice(0, 120)})`
}

/** The string `code` of a caught error (`ENOENT`, `UND_ERR_SOCKET`), or undefined when it has none. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined
  return typeof err.code === 'string' ? err.code : undefined
}

export function isCachemirError(err: unknown): err is CachemirError {
  return err instanceof CachemirError
}
