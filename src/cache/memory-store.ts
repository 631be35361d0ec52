// src/cache/memory-store.ts
// The memory tier: recently used entries' metadata, and whole bodies of small ones, bounded by bytes.

import { LRUCache } from 'lru-cache'
import { metaMemoryBytes, type CachedEntry } from './entry.js'

/**
 * Two LRUs under one budget: a quarter for entries' metadata, the rest for bodies. Bodies come
 * and go much faster than metadata, so a stream of body-sized entries never flushes the metadata
 * of a large cache: a disk hit then costs the body read only, not a meta file read and parse.
 */
export class MemoryStore {
  /** hash -> entry, charged its metadata. */
  readonly #entries: LRUCache<string, CachedEntry>
  /** hash -> the entry whose body is held, charged the body. Evicting one drops just the body. */
  readonly #bodies: LRUCache<string, CachedEntry>
  /** Bodies up to this size are kept in memory; larger ones are always streamed from disk. */
  readonly maxBodyBytes: number

  constructor(maxBytes: number) {
    // One entry may take at most 1/16 of the tier (and 8 MiB), so a few large files never flush it.
    this.maxBodyBytes = Math.min(Math.floor(maxBytes / 16), 8 * 1024 * 1024)
    const metaBytes = Math.max(Math.floor(maxBytes / 4), 1)
    this.#entries = new LRUCache<string, CachedEntry>({
      maxSize: metaBytes,
      sizeCalculation: (entry) => Math.max(1, metaMemoryBytes(entry.meta)),
      dispose: (entry, hash) => {
        if (this.#bodies.peek(hash) === entry) this.#bodies.delete(hash)
      },
    })
    this.#bodies = new LRUCache<string, CachedEntry>({
      maxSize: Math.max(maxBytes - metaBytes, 1),
      sizeCalculation: (entry) => Math.max(1, entry.body?.length ?? 0),
      dispose: (entry, _hash, reason) => {
        // Out of the body budget: the entry stays, its body is read from disk again when needed.
        // (Senders read `body` synchronously after checking it, so clearing it here is safe.)
        if (reason === 'evict') entry.body = undefined
      },
    })
  }

  /** Entries are found by the hash of their key, the same name the disk tier uses. */
  get(hash: string): CachedEntry | undefined {
    const entry = this.#entries.get(hash)
    if (entry?.body !== undefined) this.#bodies.get(hash) // keep the body's recency in step
    return entry
  }

  /** The entry without refreshing its recency (see touch). */
  peek(hash: string): CachedEntry | undefined {
    return this.#entries.peek(hash)
  }

  /** Marks the entry (and its body) as just used. */
  touch(hash: string): void {
    if (this.#entries.get(hash)?.body !== undefined) this.#bodies.get(hash)
  }

  set(entry: CachedEntry): void {
    this.#entries.set(entry.hash, entry)
    if (entry.body !== undefined && entry.body.length <= this.maxBodyBytes) this.#bodies.set(entry.hash, entry)
    else this.#bodies.delete(entry.hash)
  }

  delete(hash: string): void {
    this.#entries.delete(hash)
    this.#bodies.delete(hash)
  }

  get entries(): number {
    return this.#entries.size
  }

  get bytes(): number {
    return this.#entries.calculatedSize + this.#bodies.calculatedSize
  }

  get bodies(): number {
    return this.#bodies.size
  }
}
