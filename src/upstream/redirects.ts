// src/upstream/redirects.ts
// Upstream redirects: which ones stay within a route, and how their Location is rewritten to point
// at the mirror instead of the upstream.

import type { Route } from '../config.js'
import { getRaw } from '../http/headers.js'
import { resolveReference, targetWithinRoute } from '../proxy/route.js'

const REDIRECTS = new Set([301, 302, 303, 307, 308])

export function isRedirect(status: number): boolean {
  return REDIRECTS.has(status)
}

/**
 * The request target below the route prefix that `location` (resolved against the URL that
 * answered) points at, when it lies under one of the route's upstreams; undefined otherwise.
 */
export function redirectWithinRoute(route: Route, answeredBy: URL, location: string | undefined): string | undefined {
  const url = location === undefined ? undefined : resolveReference(location, answeredBy)
  return url === undefined ? undefined : targetWithinRoute(route, url)
}

/**
 * Rewrites a Location that points into the route's upstreams to the mirror's own path (a
 * path-absolute reference, so it works whatever host name the client used). Others are kept.
 */
export function rewriteLocation(headers: readonly string[], route: Route, answeredBy: URL): string[] {
  const target = redirectWithinRoute(route, answeredBy, getRaw(headers, 'location'))
  const out = [...headers]
  if (target === undefined) return out
  for (let i = 0; i < out.length; i += 2) {
    if ((out[i] as string).toLowerCase() === 'location') out[i + 1] = route.prefix + target
  }
  return out
}
