// src/proxy/cache-key.ts
// request -> cache key: the URL's key (path and query), and for a URL whose responses vary
// (RFC 9111 §4.1) the variant's key, the URL's key plus the request's normalized values of the
// headers the response named in Vary. The cache itself never reads a request.

import type { IncomingHttpHeaders } from 'node:http'
import type { Route } from '../config-types.js'
import { headerValue } from '../http/headers.js'
import { profileNamed } from '../profiles/profiles.js'

/** The cache key of a request target: its path and query, as sent (the route has checked them). */
export function urlKey(path: string, query: string): string {
  return path + query
}

/**
 * The key of the representation the request selects on a profile route whose upstream negotiates
 * by a header it may not declare in Vary (npm's abbreviated documents, PyPI's JSON pages): the URL
 * key plus the profile's token. Other routes, and other paths, keep the URL key.
 */
export function representationKey(route: Route, relativePath: string, key: string, headers: IncomingHttpHeaders): string {
  const variant = route.profile === undefined ? undefined : profileNamed(route.profile)?.variantOf?.(relativePath, headers)
  return variant === undefined ? key : `${key}\u0000${variant}`
}

/** Every key a URL's responses may be stored under before Vary: the URL key and each representation key. */
export function representationKeys(route: Route, key: string): string[] {
  const variants = route.profile === undefined ? undefined : profileNamed(route.profile)?.variants
  return variants === undefined ? [key] : [key, ...variants.map((v) => `${key}\u0000${v}`)]
}

/** The URL key a store key was made from (a representation's or a Vary variant's key included). */
export function urlKeyOf(storeKey: string): string {
  const cut = storeKey.indexOf('\u0000')
  return cut < 0 ? storeKey : storeKey.slice(0, cut)
}

/** The key a purge takes for a stored key: a Vary variant's base (purging it drops every variant). */
export function purgeKeyOf(storeKey: string): string {
  const cut = storeKey.indexOf('\u0000vary')
  return cut < 0 ? storeKey : storeKey.slice(0, cut)
}

/** A request header's value as Vary compares it: members trimmed, whitespace folded, '' when absent. */
export function varyValue(headers: IncomingHttpHeaders, name: string): string {
  const value = headerValue(headers[name])
  if (value === undefined) return ''
  return value
    .split(',')
    .map((m) => m.trim().replace(/\s+/g, ' '))
    .filter((m) => m !== '')
    .join(', ')
}

/** The request's values for `names`. */
export function varyRecord(names: readonly string[], headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of names) out[name] = varyValue(headers, name)
  return out
}

/** The cache key of the variant of `urlKey` selected by `record`, in Vary generation `generation`. */
export function variantKey(urlKey: string, generation: number, record: Readonly<Record<string, string>>): string {
  let key = `${urlKey}\u0000vary${generation}`
  for (const name of Object.keys(record).sort()) key += `\u0000${name}=${record[name]}`
  return key
}

/** True when the request carries the values recorded for a stored variant. */
export function varyMatches(recorded: Readonly<Record<string, string>> | undefined, headers: IncomingHttpHeaders): boolean {
  if (recorded === undefined) return true
  for (const [name, value] of Object.entries(recorded)) if (varyValue(headers, name) !== value) return false
  return true
}
