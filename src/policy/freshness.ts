// src/policy/freshness.ts
// Pure RFC 9111 decisions: may a response be stored, how long is it fresh, how old is it now.
// No I/O; the clock is always passed in.

import type { CacheMode, CacheRule } from '../config.js'
import { getRaw, parseHttpDate, type RawHeaders } from '../http/headers.js'
import { parseCacheControl, parseSeconds } from '../http/cache-control.js'

/** RFC 9110 §15.1: status codes that are cacheable by default (heuristic freshness allowed). */
const HEURISTIC_STATUSES = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])

/** The Last-Modified heuristic (RFC 9111 §4.2.2): 10% of the time since modification, capped. */
const HEURISTIC_FRACTION = 0.1
const HEURISTIC_MAX_MS = 24 * 3600 * 1000

/** What the policy needs to know about a stored or incoming response. */
export interface ResponseFacts {
  readonly status: number
  readonly headers: RawHeaders
  /** When the request that produced this response was sent (epoch ms). */
  readonly requestAt: number
  /** When its headers arrived (epoch ms). */
  readonly responseAt: number
}

/** Freshness facts derived once per stored response (and again after each 304). */
export interface Freshness {
  /** Freshness lifetime; Infinity for immutable rules. */
  readonly lifetimeMs: number
  /** RFC 9111 §4.2.3 corrected_initial_age. */
  readonly initialAgeMs: number
  /** Always revalidate before use (no-cache, or a `revalidate` rule). */
  readonly noCache: boolean
  /** Never serve stale, even when the upstream fails (must-revalidate, proxy-revalidate, s-maxage). */
  readonly mustRevalidate: boolean
  /** Which rule of the source decided the lifetime, for logs and Cache-Status detail. */
  readonly source: 'rule-immutable' | 's-maxage' | 'max-age' | 'expires' | 'rule-ttl' | 'heuristic' | 'none'
}

export type StoreDecision = { readonly storable: true } | { readonly storable: false; readonly reason: string }

/** The mode of the first rule matching `path`, and the rule itself (undefined when none match). */
export function matchRule(rules: readonly CacheRule[], path: string): CacheRule | undefined {
  for (const rule of rules) if (rule.pattern.test(path)) return rule
  return undefined
}

/**
 * RFC 9111 §3: may a shared cache store this response to a GET?
 * `requestCacheControl` is the client's Cache-Control (no-store there forbids storing too).
 */
export function canStore(facts: ResponseFacts, requestCacheControl: string | undefined, mode: CacheMode): StoreDecision {
  if (mode === 'no-store') return { storable: false, reason: 'rule' }
  const status = facts.status
  if (status < 200 || status === 206 || status === 304) return { storable: false, reason: 'status' }
  const cc = parseCacheControl(getRaw(facts.headers, 'cache-control'))
  if (cc.has('no-store')) return { storable: false, reason: 'no-store' }
  if (cc.has('private')) return { storable: false, reason: 'private' }
  if (parseCacheControl(requestCacheControl).has('no-store')) return { storable: false, reason: 'request-no-store' }
  const vary = getRaw(facts.headers, 'vary')
  if (vary !== undefined && vary.split(',').some((v) => v.trim() === '*')) return { storable: false, reason: 'vary-star' }
  // Set-Cookie is per user: never share it (RFC 9111 §7.3 leaves this to the cache).
  if (getRaw(facts.headers, 'set-cookie') !== undefined) return { storable: false, reason: 'set-cookie' }
  if (mode === 'immutable' || mode === 'revalidate') return { storable: true }
  const explicit =
    cc.has('max-age') || cc.has('s-maxage') || cc.has('public') || getRaw(facts.headers, 'expires') !== undefined
  if (!explicit && !HEURISTIC_STATUSES.has(status)) return { storable: false, reason: 'status' }
  return { storable: true }
}

/** Derives lifetime, initial age and revalidation flags (RFC 9111 §4.2) for a response. */
export function computeFreshness(facts: ResponseFacts, rule: CacheRule | undefined): Freshness {
  const headers = facts.headers
  const cc = parseCacheControl(getRaw(headers, 'cache-control'))
  const initialAgeMs = correctedInitialAgeMs(facts)
  const mode = rule?.mode ?? 'default'
  const noCache = mode === 'revalidate' || (mode !== 'immutable' && cc.has('no-cache'))
  const mustRevalidate = cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('s-maxage')
  const base = { initialAgeMs, noCache, mustRevalidate }
  if (mode === 'immutable') return { ...base, lifetimeMs: Infinity, source: 'rule-immutable' }

  // §4.2.1: s-maxage, then max-age, then Expires - Date. An invalid number means stale (0), never forever.
  if (cc.has('s-maxage')) return { ...base, lifetimeMs: secondsMs(cc.get('s-maxage')), source: 's-maxage' }
  if (cc.has('max-age')) return { ...base, lifetimeMs: secondsMs(cc.get('max-age')), source: 'max-age' }
  const expiresRaw = getRaw(headers, 'expires')
  if (expiresRaw !== undefined) {
    const expires = parseHttpDate(expiresRaw)
    const date = parseHttpDate(getRaw(headers, 'date')) ?? facts.responseAt
    const lifetimeMs = expires === undefined ? 0 : Math.max(0, expires - date)
    return { ...base, lifetimeMs, source: 'expires' }
  }
  if (rule?.ttlMs !== undefined) return { ...base, lifetimeMs: rule.ttlMs, source: 'rule-ttl' }

  // §4.2.2: heuristic freshness only for heuristically cacheable statuses, from Last-Modified.
  const lastModified = parseHttpDate(getRaw(headers, 'last-modified'))
  if (HEURISTIC_STATUSES.has(facts.status) && lastModified !== undefined) {
    const date = parseHttpDate(getRaw(headers, 'date')) ?? facts.responseAt
    const lifetimeMs = Math.min(HEURISTIC_MAX_MS, Math.max(0, (date - lastModified) * HEURISTIC_FRACTION))
    return { ...base, lifetimeMs, source: 'heuristic' }
  }
  return { ...base, lifetimeMs: 0, source: 'none' }
}

/** RFC 9111 §4.2.3: corrected_initial_age from Age, Date and the request/response times. */
export function correctedInitialAgeMs(facts: ResponseFacts): number {
  const date = parseHttpDate(getRaw(facts.headers, 'date'))
  const apparentAgeMs = date === undefined ? 0 : Math.max(0, facts.responseAt - date)
  const ageValue = parseSeconds(getRaw(facts.headers, 'age')?.split(',')[0]?.trim()) ?? 0
  const responseDelayMs = Math.max(0, facts.responseAt - facts.requestAt)
  return Math.max(apparentAgeMs, ageValue * 1000 + responseDelayMs)
}

/** current_age = corrected_initial_age + resident_time. */
export function currentAgeMs(freshness: Freshness, responseAt: number, now: number): number {
  return freshness.initialAgeMs + Math.max(0, now - responseAt)
}

/** True when the response may be served without contacting the upstream. */
export function isFresh(freshness: Freshness, responseAt: number, now: number): boolean {
  if (freshness.noCache) return false
  return freshness.lifetimeMs > currentAgeMs(freshness, responseAt, now)
}

/** Remaining freshness in whole seconds (for Cache-Status ttl); may be negative when stale. */
export function ttlSeconds(freshness: Freshness, responseAt: number, now: number): number {
  if (freshness.lifetimeMs === Infinity) return Infinity
  return Math.floor((freshness.lifetimeMs - currentAgeMs(freshness, responseAt, now)) / 1000)
}

function secondsMs(value: string | true | undefined): number {
  const seconds = parseSeconds(value)
  return seconds === undefined ? 0 : seconds * 1000
}
