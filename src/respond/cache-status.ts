// src/respond/cache-status.ts
// The RFC 9211 Cache-Status field, and the one word list for cache outcomes used in logs too.

export const CACHE_NAME = 'cachemir'

/** How a response was produced; the same words appear in Cache-Status and in the log line. */
export interface CacheOutcome {
  /** Served from cache without contacting the upstream. */
  readonly hit?: boolean
  /** Why the request went upstream (RFC 9211 §2.2). */
  readonly fwd?: 'bypass' | 'method' | 'uri-miss' | 'vary-miss' | 'miss' | 'request' | 'stale'
  /** Status the upstream answered with, when it differs from the one sent. */
  readonly fwdStatus?: number
  /** The response was written to cache. */
  readonly stored?: boolean
  /** This request joined another request's upstream fetch. */
  readonly collapsed?: boolean
  /** Remaining freshness in seconds, for hits. */
  readonly ttl?: number
  /** Extra detail token, e.g. `stale-if-error`. */
  readonly detail?: string
}

export function formatCacheStatus(o: CacheOutcome): string {
  let s = CACHE_NAME
  if (o.hit === true) s += '; hit'
  if (o.fwd !== undefined) s += `; fwd=${o.fwd}`
  if (o.fwdStatus !== undefined) s += `; fwd-status=${o.fwdStatus}`
  if (o.ttl !== undefined && Number.isFinite(o.ttl)) s += `; ttl=${o.ttl}`
  if (o.stored === true) s += '; stored'
  if (o.collapsed === true) s += '; collapsed'
  if (o.detail !== undefined) s += `; detail=${o.detail}`
  return s
}

/** Compact form for the log line: `hit`, `miss`, `stale`, … */
export function outcomeWord(o: CacheOutcome): string {
  if (o.hit === true) return o.detail === undefined ? 'hit' : `hit-${o.detail}`
  return o.fwd ?? 'none'
}
