// src/policy/freshness.ts
// Pure RFC 9111 decisions about responses: may one be stored, how long is it fresh, how old is
// it now, may it be served stale. No I/O; the clock is always passed in.

import type { CacheMode, CacheRule } from '../config.js'
import { getRaw, parseHttpDate, type RawHeaders } from '../http/headers.js'
import { parseCacheControl, parseSeconds, qualifiedNames, type Directives } from '../http/cache-control.js'

/** RFC 9110 §15.1: status codes that are cacheable by default (heuristic freshness allowed). */
const HEURISTIC_STATUSES = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])

/** The Last-Modified heuristic (RFC 9111 §4.2.2): 10% of the time since modification, capped. */
const HEURISTIC_FRACTION = 0.1
const HEURISTIC_MAX_MS = 24 * 3600 * 1000

/**
 * Targeted fields, most specific first (RFC 9213 §2.2): our own, then the CDN class. The first
 * one present with a valid, non-empty value replaces Cache-Control and Expires for this cache.
 */
export const TARGETED_FIELDS = ['cachemir-cache-control', 'cdn-cache-control'] as const

/** What the policy needs to know about a stored or incoming response. */
export interface ResponseFacts {
  readonly status: number
  readonly headers: RawHeaders
  /** When the request that produced this response was sent (epoch ms). */
  readonly requestAt: number
  /** When its headers arrived (epoch ms). */
  readonly responseAt: number
}

/** The response directives this cache obeys, and where they came from. */
export interface ResponseControls {
  readonly cc: Directives
  /** A targeted field decided: Expires is ignored. */
  readonly targeted: boolean
}

/** Freshness facts derived once per stored response (and again after each 304). */
export interface Freshness {
  /** Freshness lifetime; Infinity for immutable rules. */
  readonly lifetimeMs: number
  /** RFC 9111 §4.2.3 corrected_initial_age. */
  readonly initialAgeMs: number
  /** Always revalidate before use (response no-cache, or a `revalidate` rule). */
  readonly noCache: boolean
  /** Never serve stale, even when the upstream fails (must-revalidate, proxy-revalidate, s-maxage, no-cache). */
  readonly mustRevalidate: boolean
  /** RFC 5861 stale-while-revalidate window past expiry (0 when absent). */
  readonly staleWhileRevalidateMs: number
  /** RFC 5861 stale-if-error window past expiry; undefined when the response did not say. */
  readonly staleIfErrorMs: number | undefined
  /** Which rule of the source decided the lifetime, for logs and docs. */
  readonly source: 'rule-immutable' | 's-maxage' | 'max-age' | 'expires' | 'rule-ttl' | 'heuristic' | 'none'
}

export type StoreDecision = { readonly storable: true } | { readonly storable: false; readonly reason: string }

/** What the request contributes to the storage decision. */
export interface StoreRequest {
  /** The client's Cache-Control (request no-store forbids storing). */
  readonly cacheControl: string | undefined
  /** The request carried Authorization (RFC 9111 §3.5). */
  readonly authorized: boolean
}

/** The first rule matching `path`, or undefined. */
export function matchRule(rules: readonly CacheRule[], path: string): CacheRule | undefined {
  for (const rule of rules) if (rule.pattern.test(path)) return rule
  return undefined
}

/** Picks the directives for this cache: a valid targeted field, else Cache-Control (RFC 9213). */
export function responseControls(headers: RawHeaders): ResponseControls {
  for (const name of TARGETED_FIELDS) {
    const value = getRaw(headers, name)
    if (value === undefined) continue
    const cc = parseCacheControl(value)
    if (cc.size > 0) return { cc, targeted: true }
  }
  return { cc: parseCacheControl(getRaw(headers, 'cache-control')), targeted: false }
}

/** RFC 9111 §3: may a shared cache store this response to a GET? */
export function canStore(facts: ResponseFacts, request: StoreRequest, rule: CacheRule | undefined): StoreDecision {
  const mode: CacheMode = rule?.mode ?? 'default'
  if (mode === 'no-store') return { storable: false, reason: 'rule' }
  const status = facts.status
  if (status < 200 || status === 206 || status === 304) return { storable: false, reason: 'status' }
  const { cc, targeted } = responseControls(facts.headers)
  if (cc.has('no-store')) return { storable: false, reason: 'no-store' }
  // An unqualified private forbids a shared cache; private="field" only strips that field (§5.2.2.7).
  if (cc.get('private') === true || cc.get('private') === '') return { storable: false, reason: 'private' }
  if (parseCacheControl(request.cacheControl).has('no-store')) return { storable: false, reason: 'request-no-store' }
  const vary = getRaw(facts.headers, 'vary')
  if (vary !== undefined && vary.split(',').some((v) => v.trim() === '*')) return { storable: false, reason: 'vary-star' }
  const explicit = cc.has('max-age') || cc.has('s-maxage') || (!targeted && getRaw(facts.headers, 'expires') !== undefined)
  // §3.5: a response to an authorized request is shared only when the origin says so.
  if (request.authorized && !(cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate'))) {
    return { storable: false, reason: 'authorization' }
  }
  // Set-Cookie is per user: stored only when the route opts in and the response is explicitly fresh.
  if (getRaw(facts.headers, 'set-cookie') !== undefined && !(rule?.storeSetCookie === true && explicit)) {
    return { storable: false, reason: 'set-cookie' }
  }
  // Rules change how long a response stays fresh, not which statuses are worth keeping: a 503 or
  // a 404 from a mirror that is still syncing must never be pinned by an immutable rule.
  if (mode === 'immutable' && status !== 200) return { storable: false, reason: 'status' }
  if (!explicit && !cc.has('public') && !HEURISTIC_STATUSES.has(status)) return { storable: false, reason: 'status' }
  if (status >= 500 && mode !== 'default') return { storable: false, reason: 'status' }
  return { storable: true }
}

/** Fields a shared cache must drop before storing: those named by private="…" and no-cache="…". */
export function fieldsNotStored(headers: RawHeaders): Set<string> {
  const { cc } = responseControls(headers)
  return new Set([...qualifiedNames(cc.get('private')), ...qualifiedNames(cc.get('no-cache'))])
}

/** Derives lifetime, initial age and stale permissions (RFC 9111 §4.2, RFC 5861) for a response. */
export function computeFreshness(facts: ResponseFacts, rule: CacheRule | undefined): Freshness {
  const headers = facts.headers
  const { cc, targeted } = responseControls(headers)
  const initialAgeMs = correctedInitialAgeMs(facts)
  const mode = rule?.mode ?? 'default'
  // Only an unqualified no-cache forces revalidation; no-cache="field" strips the field instead.
  const responseNoCache = cc.get('no-cache') === true || cc.get('no-cache') === ''
  const noCache = mode === 'revalidate' || (mode !== 'immutable' && responseNoCache)
  const mustRevalidate = cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('s-maxage') || responseNoCache
  const base = {
    initialAgeMs,
    noCache,
    mustRevalidate,
    staleWhileRevalidateMs: secondsMs(cc.get('stale-while-revalidate')),
    staleIfErrorMs: cc.has('stale-if-error') ? secondsMs(cc.get('stale-if-error')) : undefined,
  }
  if (mode === 'immutable') return { ...base, lifetimeMs: Infinity, source: 'rule-immutable' }

  // §4.2.1: s-maxage, then max-age, then Expires - Date. An invalid number means stale (0), never forever.
  if (cc.has('s-maxage')) return { ...base, lifetimeMs: secondsMs(cc.get('s-maxage')), source: 's-maxage' }
  if (cc.has('max-age')) return { ...base, lifetimeMs: secondsMs(cc.get('max-age')), source: 'max-age' }
  const expiresRaw = targeted ? undefined : getRaw(headers, 'expires')
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

/** How long past its lifetime the response is now (0 while fresh). */
export function stalenessMs(freshness: Freshness, responseAt: number, now: number): number {
  return Math.max(0, currentAgeMs(freshness, responseAt, now) - freshness.lifetimeMs)
}

/**
 * May a stale copy stand in when the upstream fails? Never after must-revalidate and friends
 * (§4.2.4); otherwise within stale-if-error when the response gave one, and always when the
 * upstream could not be reached at all (a disconnected cache may serve stale, §4.2.4).
 */
export function canServeStaleOnError(freshness: Freshness, responseAt: number, now: number, unreachable: boolean): boolean {
  if (freshness.mustRevalidate) return false
  if (freshness.staleIfErrorMs !== undefined) return stalenessMs(freshness, responseAt, now) <= freshness.staleIfErrorMs
  return unreachable
}

/** Remaining freshness in whole seconds (for Cache-Status ttl); negative when stale. */
export function ttlSeconds(freshness: Freshness, responseAt: number, now: number): number {
  if (freshness.lifetimeMs === Infinity) return Infinity
  return Math.floor((freshness.lifetimeMs - currentAgeMs(freshness, responseAt, now)) / 1000)
}

function secondsMs(value: string | true | undefined): number {
  const seconds = parseSeconds(value)
  return seconds === undefined ? 0 : seconds * 1000
}
