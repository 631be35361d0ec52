// src/respond/cache-status.ts
// The RFC 9211 Cache-Status field: the one word list for cache outcomes (used in logs too), the
// one writer of our member, and the one parser of the members other caches wrote.

/** The name our member carries when the configuration gives none. */
export const DEFAULT_CACHE_NAME = 'cachemir'

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

/**
 * Writes this cache's Cache-Status member, named after the node (`--name`, default `cachemir`).
 * Every Cache-Status the mirror sends comes from here; the hit form is prebuilt for the hot path.
 */
export class CacheStatusWriter {
  /** The member's name: an RFC 8941 token (resolveConfig checks it). */
  readonly name: string
  readonly #hit: string
  readonly #hitTtl: string

  constructor(name: string = DEFAULT_CACHE_NAME) {
    this.name = name
    this.#hit = `${name}; hit`
    this.#hitTtl = `${name}; hit; ttl=`
  }

  format(o: CacheOutcome): string {
    let s = this.name
    if (o.hit === true) s += '; hit'
    if (o.fwd !== undefined) s += `; fwd=${o.fwd}`
    if (o.fwdStatus !== undefined) s += `; fwd-status=${o.fwdStatus}`
    if (o.ttl !== undefined && Number.isFinite(o.ttl)) s += `; ttl=${o.ttl}`
    if (o.stored === true) s += '; stored'
    if (o.collapsed === true) s += '; collapsed'
    if (o.detail !== undefined) s += `; detail=${o.detail}`
    return s
  }

  /** `format({ hit: true, ttl })` without its generic field checks (the fresh-hit path). */
  hit(ttl: number): string {
    return Number.isFinite(ttl) ? this.#hitTtl + String(ttl) : this.#hit
  }
}

/** One member of a Cache-Status field: the cache's name and its parameters (`hit` is `true`). */
export interface CacheStatusMember {
  readonly name: string
  readonly params: Readonly<Record<string, string | true>>
}

/**
 * Parses a Cache-Status field value (RFC 9211: a list of `name; key=value; flag` members, upstream
 * caches first). Lenient, as a reader of other caches' fields should be: quoted strings are unquoted,
 * members without a name are skipped. Quoted commas and semicolons are not special here.
 */
export function parseCacheStatus(value: string | undefined): CacheStatusMember[] {
  if (value === undefined) return []
  const members: CacheStatusMember[] = []
  for (const part of value.split(',')) {
    const [rawName, ...rawParams] = part.split(';')
    const name = unquote(rawName?.trim() ?? '')
    if (name === '') continue
    const params: Record<string, string | true> = {}
    for (const param of rawParams) {
      const eq = param.indexOf('=')
      const key = (eq < 0 ? param : param.slice(0, eq)).trim().toLowerCase()
      if (key !== '') params[key] = eq < 0 ? true : unquote(param.slice(eq + 1).trim())
    }
    members.push({ name, params })
  }
  return members
}

/** The last member `name` wrote (a cache's own member is the last of its name), or undefined. */
export function memberOf(members: readonly CacheStatusMember[], name: string): CacheStatusMember | undefined {
  for (let i = members.length - 1; i >= 0; i--) if (members[i]?.name === name) return members[i]
  return undefined
}

function unquote(text: string): string {
  return text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1).replace(/\\(.)/g, '$1') : text
}

/** Compact form for the log line: `hit`, `miss`, `stale`, … */
export function outcomeWord(o: CacheOutcome): string {
  if (o.hit === true) return o.detail === undefined ? 'hit' : `hit-${o.detail}`
  return o.fwd ?? 'none'
}
