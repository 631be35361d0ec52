// src/respond/conditional.ts
// Client conditional requests (RFC 9110 §13): answer 304 from what we hold.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { getRaw, headerValue, parseHttpDate, splitList, type RawHeaders } from '../http/headers.js'
import { buildHead, writeHead } from './head.js'

/** Weak comparison (RFC 9110 §8.8.3.2): opaque tags equal, ignoring any W/ prefix. */
export function weakMatch(a: string, b: string): boolean {
  return stripWeak(a) === stripWeak(b)
}

/** Strong comparison: both strong and byte-identical. */
export function strongMatch(a: string, b: string): boolean {
  return !a.startsWith('W/') && !b.startsWith('W/') && a === b
}

function stripWeak(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

/**
 * True when a GET/HEAD for a 200 response should get 304 Not Modified:
 * If-None-Match (weak comparison) decides when present, else If-Modified-Since.
 */
export function isNotModified(ifNoneMatch: string | undefined, ifModifiedSince: string | undefined, stored: RawHeaders): boolean {
  if (ifNoneMatch !== undefined) {
    const etag = getRaw(stored, 'etag')
    const wanted = splitList(ifNoneMatch)
    if (wanted.includes('*')) return true
    return etag !== undefined && wanted.some((tag) => weakMatch(tag, etag))
  }
  if (ifModifiedSince !== undefined) {
    const since = parseHttpDate(ifModifiedSince)
    const lastModified = parseHttpDate(getRaw(stored, 'last-modified'))
    return since !== undefined && lastModified !== undefined && lastModified <= since
  }
  return false
}

/** RFC 9110 §15.4.5: the fields a 304 carries (those that would have been sent in a 200). */
export const NOT_MODIFIED_FIELDS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified', 'age'])

/** Answers 304 from `headers` (the block the 200 would carry) when the client's conditionals say so. */
export function sendIfNotModified(
  req: IncomingMessage,
  res: ServerResponse,
  headers: RawHeaders,
  o: { readonly ageSeconds: number; readonly cacheStatus: string },
): boolean {
  if (!isNotModified(headerValue(req.headers['if-none-match']), headerValue(req.headers['if-modified-since']), headers)) return false
  writeHead(res, 304, '', buildHead(headers, { ageSeconds: o.ageSeconds, cacheStatus: o.cacheStatus, keep: NOT_MODIFIED_FIELDS }))
  res.end()
  return true
}
