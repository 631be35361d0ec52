// src/policy/request-directives.ts
// What the client's request asks of the cache (RFC 9111 §5.2.1), and whether a stored
// response may be used for it as it is, stale, or only after revalidation.

import { parseCacheControl, parseSeconds } from '../http/cache-control.js'
import { currentAgeMs, stalenessMs, type Freshness } from './freshness.js'

export interface RequestDirectives {
  /** no-cache, or Pragma: no-cache without Cache-Control (§5.4). */
  readonly noCache: boolean
  readonly noStore: boolean
  /** max-age: the oldest response the client accepts. */
  readonly maxAgeMs: number | undefined
  /** max-stale: how stale a response the client accepts (Infinity for a bare max-stale). */
  readonly maxStaleMs: number | undefined
  /** min-fresh: how much freshness must be left. */
  readonly minFreshMs: number | undefined
  readonly onlyIfCached: boolean
}

export const NO_DIRECTIVES: RequestDirectives = {
  noCache: false,
  noStore: false,
  maxAgeMs: undefined,
  maxStaleMs: undefined,
  minFreshMs: undefined,
  onlyIfCached: false,
}

export function parseRequestDirectives(cacheControl: string | undefined, pragma: string | undefined): RequestDirectives {
  if (cacheControl === undefined) {
    if (pragma !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(pragma)) return { ...NO_DIRECTIVES, noCache: true }
    return NO_DIRECTIVES
  }
  const cc = parseCacheControl(cacheControl)
  if (cc.size === 0) return NO_DIRECTIVES
  const seconds = (name: string): number | undefined => {
    if (!cc.has(name)) return undefined
    const s = parseSeconds(cc.get(name))
    // An invalid value is read as the most conservative one.
    return s === undefined ? 0 : s * 1000
  }
  const maxStale = cc.get('max-stale')
  return {
    noCache: cc.has('no-cache'),
    noStore: cc.has('no-store'),
    maxAgeMs: seconds('max-age'),
    maxStaleMs: maxStale === undefined ? undefined : maxStale === true ? Infinity : (seconds('max-stale') ?? 0),
    minFreshMs: seconds('min-fresh'),
    onlyIfCached: cc.has('only-if-cached'),
  }
}

/**
 * How a stored response may be used for this request:
 * - `fresh`: serve it as a hit;
 * - `stale-ok`: stale, but the client's max-stale accepts it (and the response allows it);
 * - `stale-while-revalidate`: serve it now and revalidate in the background (RFC 5861);
 * - `revalidate`: ask the upstream first.
 */
export type Use = 'fresh' | 'stale-ok' | 'stale-while-revalidate' | 'revalidate'

export function decideUse(f: Freshness, responseAt: number, now: number, rd: RequestDirectives): Use {
  // An immutable rule names content that never changes: a client's no-cache, max-age or min-fresh
  // cannot get a newer copy, only refetch the same bytes (apt sends max-age=0 for every index
  // file, its by-hash/ ones included).
  if (f.source === 'rule-immutable') return 'fresh'
  if (rd.noCache || f.noCache) return 'revalidate'
  const age = currentAgeMs(f, responseAt, now)
  // max-stale relaxes only "must be fresh"; the client's age limit still holds (§5.2.1.1).
  if (rd.maxAgeMs !== undefined && age > rd.maxAgeMs) return 'revalidate'
  const left = f.lifetimeMs - age
  if (left > 0 && (rd.minFreshMs === undefined || left >= rd.minFreshMs)) return 'fresh'
  if (left > 0) return 'revalidate' // fresh, but not fresh enough for min-fresh
  if (f.mustRevalidate) return 'revalidate'
  const stale = stalenessMs(f, responseAt, now)
  if (rd.maxStaleMs !== undefined && stale <= rd.maxStaleMs) return 'stale-ok'
  if (f.staleWhileRevalidateMs > 0 && stale <= f.staleWhileRevalidateMs && rd.maxAgeMs === undefined && rd.minFreshMs === undefined) {
    return 'stale-while-revalidate'
  }
  return 'revalidate'
}
