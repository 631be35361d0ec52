// src/cache/entry.ts
// What one cached response is: its metadata record, and that record's on-disk encoding.

import { createHash } from 'node:crypto'
import type { Freshness } from '../policy/freshness.js'
import { hashKey } from './disk-layout.js'

// Kept here for the modules outside src/cache that import it from this one.

/** The stored record of one response, written next to its body as `<hash>.meta`. */
export interface EntryMeta {
  /** Layout version of this record. */
  readonly v: 1
  /** The cache key (route-relative request target; see proxy/cache-key.ts). */
  readonly key: string
  readonly status: number
  readonly statusText: string
  /** Stored header block, hop-by-hop fields removed, otherwise as received. */
  readonly headers: readonly string[]
  readonly requestAt: number
  readonly responseAt: number
  readonly storedAt: number
  readonly bodyBytes: number
  /** File name of the body, in the same directory; unique per stored version. */
  readonly bodyFile: string
  /** sha256 of the body, hex, computed while filling. */
  readonly sha256: string
  /** For a response with Vary: the request's value of each named header ('' when absent). */
  readonly vary: Readonly<Record<string, string>> | undefined
}

/** The record of a response being stored: the store names its body file when it commits it. */
export type EntryMetaDraft = Omit<EntryMeta, 'bodyFile'>

/** The full record of `draft`, whose body is stored as `bodyFile` (fields in EntryMeta's order, as written to disk). */
export function withBodyFile(draft: EntryMetaDraft, bodyFile: string): EntryMeta {
  return {
    v: draft.v,
    key: draft.key,
    status: draft.status,
    statusText: draft.statusText,
    headers: draft.headers,
    requestAt: draft.requestAt,
    responseAt: draft.responseAt,
    storedAt: draft.storedAt,
    bodyBytes: draft.bodyBytes,
    bodyFile,
    sha256: draft.sha256,
    vary: draft.vary,
  }
}

/** A cache entry as the rest of the program sees it. */
export interface CachedEntry {
  readonly meta: EntryMeta
  /** sha256(key), hex: names the files and the disk index slot. */
  readonly hash: string
  /** The whole body, when it is small enough for the memory tier. */
  body: Buffer | undefined
  /** Derived once per entry by the policy (the route's rules never change at run time). */
  freshness: Freshness | undefined
  /**
   * The body is known to match `meta.sha256`: hashed while it was filled, or checked on its first
   * full read in this process. Until then a full read verifies it before its last byte is sent.
   */
  verified: boolean
  /** Memory-tier hits so far; its memory recency is refreshed on every eighth (see TieredStore.peek). */
  uses?: number
}

const MAGIC = 'cachemir-meta v1 '

/** Meta file text: a magic line carrying the sha256 of the JSON that follows, so a torn write is detected. */
export function encodeMeta(meta: EntryMeta): string {
  const json = JSON.stringify(meta)
  return `${MAGIC}${createHash('sha256').update(json).digest('hex')}\n${json}`
}

/** Parses and checks a meta file; returns a reason string when it is not a valid record for `hash`. */
export function decodeMeta(text: string, hash: string): EntryMeta | string {
  if (!text.startsWith(MAGIC)) return 'bad magic'
  const nl = text.indexOf('\n')
  if (nl < 0) return 'truncated'
  const digest = text.slice(MAGIC.length, nl)
  const json = text.slice(nl + 1)
  if (createHash('sha256').update(json).digest('hex') !== digest) return 'checksum mismatch'
  let meta: EntryMeta
  try {
    meta = JSON.parse(json) as EntryMeta
  } catch {
    return 'invalid JSON'
  }
  if (meta.v !== 1 || typeof meta.key !== 'string' || hashKey(meta.key) !== hash) return 'key mismatch'
  if (!Number.isSafeInteger(meta.bodyBytes) || meta.bodyBytes < 0 || typeof meta.bodyFile !== 'string') return 'bad body fields'
  if (!Array.isArray(meta.headers) || meta.headers.length % 2 !== 0) return 'bad headers'
  return meta
}

/** Rough bytes an entry's metadata occupies in memory (header strings plus object overhead). */
export function metaMemoryBytes(meta: EntryMeta): number {
  let n = 256 + meta.key.length
  for (const h of meta.headers) n += h.length + 16
  return n
}
