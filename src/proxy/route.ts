// src/proxy/route.ts
// request target -> Route and the path below its prefix, or a reason to refuse it; and the other
// way, an upstream URL -> the target below a route's prefix that names it.
// The mirror is never an open proxy: only origin-form targets under a configured prefix pass.

import type { Route } from '../config.js'
import { BadRequestError, NotFoundError, type ForbiddenError } from '../errors.js'
import { profileNamed } from '../profiles/profiles.js'
import { urlKey } from './cache-key.js'

export interface Routed {
  readonly route: Route
  /** The target below the route prefix, query included, without a leading slash. */
  readonly relativePath: string
  /** The cache key: the normalized request target (path and query). */
  readonly key: string
}

/** A refused target: its status, the reason (the response body), and the error to answer with. */
export interface Refused {
  readonly status: 400 | 403 | 404
  readonly reason: string
  readonly error: BadRequestError | NotFoundError | ForbiddenError
}

export type RouteResult = Routed | Refused

/**
 * Matches `target` (the request line's target) against `routes`, longest prefix first.
 * Refuses absolute-form targets, NUL bytes, backslashes and dot segments in any encoding, so a
 * request can never reach above its route's upstream path.
 */
export function routeRequest(routes: readonly Route[], target: string): RouteResult {
  if (!target.startsWith('/')) return badRequest('request target must be a path')
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  const query = q < 0 ? '' : target.slice(q)
  for (const route of routes) {
    if (path.startsWith(route.prefix)) {
      const relative = path.slice(route.prefix.length)
      // A profile may name the one escaped '/' its clients send by design (npm's @scope%2fname).
      const checked = profileNamed(route.profile)?.pathForSafetyCheck?.(relative) ?? relative
      const unsafe = unsafePathReason(route.prefix + checked)
      if (unsafe !== undefined) return badRequest(unsafe)
      return { route, relativePath: relative + query, key: urlKey(path, query) }
    }
  }
  const unsafe = unsafePathReason(path)
  return unsafe === undefined ? notFound('no route for this path') : badRequest(unsafe)
}

export function badRequest(reason: string): Refused {
  return { status: 400, reason, error: new BadRequestError(reason) }
}

export function notFound(reason: string): Refused {
  return { status: 404, reason, error: new NotFoundError(reason) }
}

export function unsafePathReason(path: string): string | undefined {
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

/**
 * The target below the route prefix (path and query, no leading slash) that names `url`, when
 * `url` lies under one of the route's upstreams; undefined for any other URL. The one test of
 * "is this URL inside the route", used for redirects and for invalidation.
 */
export function targetWithinRoute(route: Route, url: URL): string | undefined {
  for (const upstream of route.upstreams) {
    if (url.origin === upstream.origin && url.pathname.startsWith(upstream.pathname))
      return url.pathname.slice(upstream.pathname.length) + url.search
  }
  return undefined
}

/** Resolves a URL reference (a Location value) against `base`; undefined when it is not a valid URL. */
export function resolveReference(reference: string, base: URL): URL | undefined {
  try {
    return new URL(reference, base)
  } catch {
    return undefined
  }
}
