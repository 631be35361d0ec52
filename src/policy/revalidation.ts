// src/policy/revalidation.ts
// Pure RFC 9111 §4.3 decisions for revalidating a stored response: the conditional request that
// asks about it, whether a 304 answer selects it, and its header block once the 304 is applied.

import { getRaw, stripHopByHop, withoutFields, type RawHeaders } from '../http/headers.js'
import { fieldsNotStored, type ResponseFacts } from './freshness.js'

/** RFC 9111 §3.2: fields a 304 must not overwrite in the stored response (they describe its body). */
export const NOT_UPDATED_BY_304: ReadonlySet<string> = new Set(['content-length', 'content-encoding', 'content-range', 'transfer-encoding'])

/**
 * Conditional request headers that revalidate a stored response (RFC 9111 §4.3.1): If-None-Match
 * from its ETag and If-Modified-Since from its Last-Modified, each only when the stored response
 * has it. Empty when it has neither (the request is then unconditional).
 */
export function buildConditionalHeaders(stored: RawHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  const etag = getRaw(stored, 'etag')
  const lastModified = getRaw(stored, 'last-modified')
  if (etag !== undefined) out['if-none-match'] = etag
  if (lastModified !== undefined) out['if-modified-since'] = lastModified
  return out
}

/**
 * §4.3.4: does a 304 select (apply to) the stored response? Yes unless the 304 carries a strong
 * ETag that differs from the stored one (or the stored response has none). A 304 without an
 * ETag, or with a weak one, selects it.
 */
export function isSelectedBy304(stored: RawHeaders, notModified: RawHeaders): boolean {
  const fresh = getRaw(notModified, 'etag')
  const kept = getRaw(stored, 'etag')
  if (fresh === undefined || fresh.startsWith('W/')) return true
  return kept !== undefined && kept === fresh
}

/**
 * The stored header block updated by a 304 (RFC 9111 §3.2, §4.3.4): every field the 304 carries
 * replaces all stored fields of that name, and goes last. Hop-by-hop fields, those in
 * NOT_UPDATED_BY_304, Set-Cookie and fields a shared cache may not keep (private="…",
 * no-cache="…") are not taken from the 304.
 */
export function mergeNotModifiedHeaders(stored: RawHeaders, notModified: RawHeaders): string[] {
  const drop = new Set([...NOT_UPDATED_BY_304, 'set-cookie', ...fieldsNotStored(notModified)])
  const update = withoutFields(stripHopByHop(notModified), drop)
  const names = new Set<string>()
  for (let i = 0; i < update.length; i += 2) names.add((update[i] as string).toLowerCase())
  return [...withoutFields(stored, names), ...update]
}

/** The fields of a stored response's record that a 304 changes (cache/entry.ts EntryMeta has them). */
export interface RevalidatedRecord {
  readonly headers: RawHeaders
  readonly requestAt: number
  readonly responseAt: number
}

/**
 * The stored record after a 304: headers merged as mergeNotModifiedHeaders does, and the request
 * and response times of the exchange that revalidated it (its age counts from them again,
 * RFC 9111 §4.2.3). Everything else is kept; `stored` itself is not changed.
 */
export function applyNotModified<T extends RevalidatedRecord>(
  stored: T,
  notModified: Pick<ResponseFacts, 'headers' | 'requestAt' | 'responseAt'>,
): T {
  const headers = mergeNotModifiedHeaders(stored.headers, notModified.headers)
  return { ...stored, headers, requestAt: notModified.requestAt, responseAt: notModified.responseAt }
}
