// src/profiles/profile.ts
// What an ecosystem profile gives a route: cache rules for its kinds of files, a cache-key
// dimension the URL does not show (npm's abbreviated documents, PyPI's JSON pages), and which
// metadata bodies are rewritten at serve time so that their URLs point at the mirror.

import type { IncomingHttpHeaders } from 'node:http'
import type { CacheMode, CacheRule } from '../config-types.js'
import type { RawHeaders } from '../http/headers.js'

export interface Profile {
  readonly name: string
  /** One line for `cachemir profiles`. */
  readonly summary: string
  /** Tried after the route's own rules; the first match wins; no match is the standard HTTP rules. */
  readonly rules: readonly CacheRule[]
  /**
   * The representation a request asks for when the URL alone does not say (content negotiation
   * the upstream may not declare with Vary): a token added to the cache key, or undefined.
   */
  variantOf?(relativePath: string, headers: IncomingHttpHeaders): string | undefined
  /** Every token variantOf returns (a purge of the URL drops each). */
  readonly variants?: readonly string[]
  /**
   * The target below the prefix as the path-safety check sees it, for ecosystems whose clients
   * escape a '/' by design (npm's `@scope%2fname`): that one escape decoded, so the check lets it
   * through and still refuses every other encoded separator and dot segment. The target itself
   * (forwarded upstream, keyed) is never changed.
   */
  pathForSafetyCheck?(relativePath: string): string
  /** Whether a stored 200 for this path, with these headers, is metadata whose upstream URLs are rewritten. */
  rewrites?(relativePath: string, headers: RawHeaders): boolean
  /**
   * What opens a URL in the rewritten metadata (`href="`). An absolute-path reference after one
   * (`href="/simple/x/"`) is resolved against the route's first upstream and rewritten like an
   * absolute URL, so it keeps pointing below the route's prefix. Default: none.
   */
  readonly pathReferenceOpeners?: readonly string[]
}

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
export const TTL = { minutes: (n: number): number => n * MINUTE, days: (n: number): number => n * DAY }

/** One profile rule; `why` is shown by `cachemir profiles`. */
export function rule(pattern: RegExp, mode: CacheMode, why: string, ttlMs?: number): CacheRule {
  return Object.freeze({ pattern, mode, ttlMs, storeSetCookie: false, why })
}

/** The media type list of an Accept header, lower-cased, parameters dropped. */
export function acceptedTypes(headers: IncomingHttpHeaders): string[] {
  const accept = headers.accept
  if (accept === undefined) return []
  return accept
    .split(',')
    .map((part) => (part.split(';', 1)[0] ?? '').trim().toLowerCase())
    .filter((t) => t !== '')
}
