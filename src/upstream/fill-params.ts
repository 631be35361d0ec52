// src/upstream/fill-params.ts
// What a fill is asked for (FillParams) and what the upstream's answer turned out to be
// (FillOutcome). Both are re-exported by fill.ts.

import type { IncomingHttpHeaders } from 'node:http'
import type { CacheRule, Route } from '../config.js'
import type { CachemirError } from '../errors.js'
import type { CachedEntry } from '../cache/entry.js'
import type { IntegrityCheck } from '../integrity/expected-digest.js'
import type { UpstreamResponse } from './client.js'

/** What a fill is asked for: built by proxy/handle.ts from the request and its route. */
export interface FillParams {
  /** The URL's cache key (path and query). */
  readonly key: string
  /**
   * Which fill this is for coalescing: the variant's key when the URL's Vary names are known, the
   * URL's key otherwise, or a unique key for a request that must not be shared (credentials).
   */
  readonly registryKey: string
  /** The request carried Authorization: stored only when the response allows it (RFC 9111 §3.5). */
  readonly authorized: boolean
  readonly route: Route
  readonly relativePath: string
  /** End-to-end request headers to send upstream (no conditionals; the fill adds its own). */
  readonly headers: Record<string, string>
  /** The initiating client's request headers, for recording Vary values. */
  readonly requestHeaders: IncomingHttpHeaders
  readonly requestCacheControl: string | undefined
  readonly rule: CacheRule | undefined
  /** The stale entry being revalidated, if any. */
  readonly previous: CachedEntry | undefined
  /**
   * The digest the body must have, for files whose ecosystem publishes one (src/integrity/):
   * looked up when the fill starts; the body's last chunk is held back until it matches, and a
   * mismatch fails the fill (nothing stored, every response cut short). Absent: no check.
   */
  readonly integrity?: IntegrityCheck | undefined
}

/** What the upstream's answer turned out to be, known once its headers are in. */
export type FillOutcome =
  /** A storable response: follow its body as it arrives (`committedBytes`, `lastChunk`, `file`, `waitForProgress`). */
  | { readonly kind: 'stream' }
  /** 304 to our conditional request: the stored entry was refreshed. */
  | { readonly kind: 'not-modified'; readonly entry: CachedEntry }
  /** Not storable: only the initiator may `claimBody()`; other waiters fetch for themselves. */
  | { readonly kind: 'uncacheable'; readonly response: UpstreamResponse; readonly reason: string }
  /** No usable answer from any upstream. */
  | { readonly kind: 'failed'; readonly error: CachemirError }
