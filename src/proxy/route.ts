// src/proxy/route.ts
// request target -> Route and the path below its prefix, or a reason to refuse it.
// The mirror is never an open proxy: only origin-form targets under a configured prefix pass.

import type { Route } from '../config.js'

export interface Routed {
  readonly route: Route
  /** The target below the route prefix, query included, without a leading slash. */
  readonly relativePath: string
  /** The cache key: the normalized request target (path and query). */
  readonly key: string
}

export type RouteResult = Routed | { readonly status: 400 | 404; readonly reason: string }

/**
 * Matches `target` (the request line's target) against `routes`, longest prefix first.
 * Refuses absolute-form targets, NUL bytes, backslashes and dot segments in any encoding, so a
 * request can never reach above its route's upstream path.
 */
export function routeRequest(routes: readonly Route[], target: string): RouteResult {
  if (!target.startsWith('/')) return { status: 400, reason: 'request target must be a path' }
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  const query = q < 0 ? '' : target.slice(q)
  const unsafe = unsafePathReason(path)
  if (unsafe !== undefined) return { status: 400, reason: unsafe }
  for (const route of routes) {
    if (path.startsWith(route.prefix)) {
      return { route, relativePath: path.slice(route.prefix.length) + query, key: path + query }
    }
  }
  return { status: 404, reason: 'no route for this path' }
}

function unsafePathReason(path: string): string | undefined {
  if (path.includes('\\') || path.includes('\0')) return 'backslash or NUL in path'
  // Without '%' nothing is encoded, and a dot segment must follow a '/': most paths stop here.
  if (!path.includes('%') && !path.includes('/.')) return undefined
  for (const segment of path.split('/')) {
    let decoded: string
    try {
      decoded = decodeURIComponent(segment)
    } catch {
      return 'malformed percent-encoding in path'
    }
    if (decoded === '.' || decoded === '..') return 'dot segment in path'
    if (decoded.includes('/') || decoded.includes('\\') || decoded.includes('\0')) return 'encoded separator in path'
  }
  return undefined
}
