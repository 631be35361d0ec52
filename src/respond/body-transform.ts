// src/respond/body-transform.ts
// A route's streaming transform of the bodies it serves (a package index whose URLs point at the
// mirror, say), and the one place that adjusts the headers such a transform invalidates.
//
// The cache always holds the upstream's bytes; the transform runs at serve time, for cached and
// filling responses alike. A transformed response:
// - has no Content-Length (it is sent chunked): its length is known only once it has been sent;
// - carries an ETag derived from the upstream's (`"abc"` -> `"abc+name"`, weak stays weak), so a
//   client never pairs the rewritten bytes with the original's validator, and conditional requests
//   made with the derived tag still get 304 from the cache;
// - ignores Range and If-Range (RFC 9110 §14.2 lets a server send the whole representation) and
//   drops Accept-Ranges and the digests of the original bytes;
// - is only made from an identity-coded body: a body with a Content-Encoding passes untouched,
//   since the transform would see compressed bytes.

import type { Transform } from 'node:stream'
import { getRaw, type RawHeaders } from '../http/headers.js'

/** What a route does to the bodies it serves. Routes without one serve the stored bytes unchanged. */
export interface BodyTransform {
  /**
   * Names the transform (and its version) in derived ETags: lower-case letters, digits and `-`.
   * Change it when the transform's output changes, so clients' validators stop matching.
   */
  readonly name: string
  /** Whether a 200 response for this target, with these stored headers, is transformed at all. */
  applies(relativePath: string, headers: RawHeaders): boolean
  /** A new stream for one response body. It must not keep references to chunks it has passed on. */
  create(): Transform
}

const NAME = /^[a-z0-9-]+$/

/** Fields that describe the original bytes and do not hold for the transformed ones. */
const DROPPED = new Set(['content-length', 'accept-ranges', 'content-md5', 'digest', 'content-digest', 'repr-digest'])

/** Throws for a transform whose name could not sit inside an ETag. */
export function checkTransform(transform: BodyTransform): BodyTransform {
  if (!NAME.test(transform.name)) throw new TypeError(`body transform name: expected [a-z0-9-]+, got "${transform.name}"`)
  return transform
}

/**
 * The transform that applies to this response, or undefined: no transform for the route, another
 * status than 200, a coded body, or a target the transform leaves alone.
 */
export function transformFor(
  transform: BodyTransform | undefined,
  status: number,
  relativePath: string,
  headers: RawHeaders,
): BodyTransform | undefined {
  if (transform === undefined || status !== 200) return undefined
  const coding = getRaw(headers, 'content-encoding')
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') return undefined
  return transform.applies(relativePath, headers) ? transform : undefined
}

/** Derived header blocks, once per stored block and transform (stored blocks are never modified). */
const derived = new WeakMap<RawHeaders, Map<string, readonly string[]>>()

/** The stored header block as the transformed response carries it (see the file comment). */
export function transformedHeaders(stored: RawHeaders, transform: BodyTransform): readonly string[] {
  let byName = derived.get(stored)
  if (byName === undefined) {
    byName = new Map()
    derived.set(stored, byName)
  }
  let out = byName.get(transform.name)
  if (out === undefined) {
    const next: string[] = []
    for (let i = 0; i < stored.length; i += 2) {
      const name = stored[i] as string
      const lower = name.toLowerCase()
      if (DROPPED.has(lower)) continue
      next.push(name, lower === 'etag' ? deriveEtag(stored[i + 1] as string, transform.name) : (stored[i + 1] as string))
    }
    out = next
    byName.set(transform.name, out)
  }
  return out
}

/** `"abc"` -> `"abc+name"`, `W/"abc"` -> `W/"abc+name"`; a malformed tag is kept (it never matches anyway). */
export function deriveEtag(etag: string, name: string): string {
  const value = etag.trim()
  if (!value.endsWith('"') || value.length < 2) return etag
  return `${value.slice(0, -1)}+${name}"`
}
