// src/cache/vary.ts
// Several stored variants per URL (RFC 9111 §4.1): a variant's cache key is the URL's key plus
// the request's normalized values of the headers the response named in Vary.

import type { IncomingHttpHeaders } from 'node:http'
import { headerValue } from '../http/headers.js'

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

/** The lower-case header names a Vary value lists (duplicates removed, sorted); undefined for none. */
export function varyNames(vary: string | undefined): string[] | undefined {
  if (vary === undefined) return undefined
  const names = [
    ...new Set(
      vary
        .split(',')
        .map((n) => n.trim().toLowerCase())
        .filter((n) => n !== ''),
    ),
  ].sort()
  return names.length === 0 ? undefined : names
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
