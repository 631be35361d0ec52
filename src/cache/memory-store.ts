// src/cache/memory-store.ts
// The memory tier: recently used entries' metadata, and whole bodies of small ones, bounded by bytes.

import { LRUCache } from 'lru-cache'
import { metaMemoryBytes, type CachedEntry } from './entry.js'

export class MemoryStore {
  readonly #lru: LRUCache<string, CachedEntry>
  /** Bodies up to this size are kept in memory; larger ones are always streamed from disk. */
  readonly maxBodyBytes: number

  constructor(maxBytes: number) {
    // One entry may take at most 1/16 of the tier (and 8 MiB), so a few large files never flush it.
    this.maxBodyBytes = Math.min(Math.floor(maxBytes / 16), 8 * 1024 * 1024)
    this.#lru = new LRUCache<string, CachedEntry>({
      maxSize: Math.max(maxBytes, 1),
      sizeCalculation: (entry) => Math.max(1, metaMemoryBytes(entry.meta) + (entry.body?.length ?? 0)),
    })
  }

  /** Entries are found by the hash of their key, the same name the disk tier uses. */
  get(hash: string): CachedEntry | undefined {
    return this.#lru.get(hash)
  }

  set(entry: CachedEntry): void {
    this.#lru.set(entry.hash, entry)
  }

  delete(hash: string): void {
    this.#lru.delete(hash)
  }

  get entries(): number {
    return this.#lru.size
  }

  get bytes(): number {
    return this.#lru.calculatedSize
  }
}
