// src/proxy/forward-headers.ts
// Which client request headers go upstream, and the normalized values Vary compares.

import type { IncomingHttpHeaders } from 'node:http'
import { HOP_BY_HOP, headerValue, splitList } from '../http/headers.js'

/**
 * Never sent upstream on a shared fill: hop-by-hop fields, our own conditionals and ranges
 * (the fill decides those), the client's cache directives, and credentials (a shared copy must
 * not depend on one user's identity).
 */
const NOT_FORWARDED_ON_FILL = new Set([
  ...HOP_BY_HOP,
  'host',
  'content-length',
  'expect',
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
  'range',
  'cache-control',
  'pragma',
  'cookie',
  'authorization',
])

/** Hop-by-hop only (and Host and Expect, which the upstream request sets itself): what a private pass-through request drops. */
const NOT_FORWARDED_PRIVATELY = new Set([...HOP_BY_HOP, 'host', 'expect'])

function copy(headers: IncomingHttpHeaders, drop: ReadonlySet<string>): Record<string, string> {
  const named = new Set(splitList(headerValue(headers.connection) ?? '').map((n) => n.toLowerCase()))
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || drop.has(name) || named.has(name)) continue
    out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

/** Headers for a shared, cacheable fill. */
export function fillHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  return copy(headers, NOT_FORWARDED_ON_FILL)
}

/** Headers for a request passed through for one client only (not stored). */
export function privateHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  return copy(headers, NOT_FORWARDED_PRIVATELY)
}
