// src/proxy/upstream-auth.ts
// A route's own upstream credential (`upstreamAuth`) on the requests it sends, and whether what
// it fetched may be stored and shared (`shareAuthenticated`).

import type { IncomingHttpHeaders } from 'node:http'
import type { Route } from '../config.js'

/**
 * False for a route that sends a credential without `shareAuthenticated`: what the credential
 * fetches is neither stored nor served to anyone but the client it was fetched for.
 */
export function canShareFetched(route: Route): boolean {
  return route.upstreamAuth === undefined || route.shareAuthenticated
}

/**
 * Headers of a shared fill with the route's credential, which replaces any value a client sent
 * under that name: a shared copy never depends on what one client sent. Returns `headers`.
 */
export function withRouteCredential(headers: Record<string, string>, route: Route): Record<string, string> {
  const auth = route.upstreamAuth
  if (auth !== undefined) headers[auth.header] = auth.value
  return headers
}

/**
 * Headers of a request made for one client alone with the route's credential, unless the client
 * sent its own value for that header: its own credential is what it asked with. Returns `headers`.
 */
export function withOwnOrRouteCredential(headers: Record<string, string>, route: Route): Record<string, string> {
  const auth = route.upstreamAuth
  if (auth !== undefined && headers[auth.header] === undefined) headers[auth.header] = auth.value
  return headers
}

/** The extra header for an upgrade passed through as the client sent it (empty when none is to be added). */
export function upgradeCredential(clientHeaders: IncomingHttpHeaders, route: Route): Record<string, string> {
  const auth = route.upstreamAuth
  return auth === undefined || clientHeaders[auth.header] !== undefined ? {} : { [auth.header]: auth.value }
}
