// src/proxy/invalidation.ts
// Which cache keys a successful unsafe request invalidates (RFC 9111 §4.4): its target, and the
// URLs in Location and Content-Location when they are on the same origin.

import type { IncomingHttpHeaders } from 'node:http'
import type { Route } from '../config.js'
import { headerValue } from '../http/headers.js'
import { resolveReference, routeRequest, targetWithinRoute, type Routed } from './route.js'
import { upstreamUrl } from './pass-through.js'
import { representationKeys } from './cache-key.js'

/**
 * The target's key, plus the mirror keys of Location / Content-Location values that point into
 * this route's upstreams (relative references resolve against the upstream URL, as the upstream
 * meant them) or onto the mirror's own paths. Anything on another origin is ignored, so a
 * response cannot make us purge arbitrary entries.
 */
export function invalidatedKeys(routes: readonly Route[], routed: Routed, headers: IncomingHttpHeaders): string[] {
  const keys = new Set([routed.key])
  const base = upstreamUrl(routed)
  for (const name of ['location', 'content-location']) {
    const value = headerValue(headers[name])
    if (value === undefined) continue
    const url = resolveReference(value, base)
    const target = url === undefined ? undefined : targetWithinRoute(routed.route, url)
    if (target === undefined) continue
    const again = routeRequest(routes, routed.route.prefix + target)
    if (!('status' in again) && again.route === routed.route) keys.add(again.key)
  }
  // Each representation a profile keeps apart goes too.
  return [...keys].flatMap((key) => representationKeys(routed.route, key))
}
