// src/cache/disk-index.ts
// In-memory LRU index of what is on disk: hash -> body version, bounded by the disk byte budget.

import { LRUCache } from 'lru-cache'

/** Disk space an entry is charged: body and meta each rounded up to whole 4 KiB blocks. */
const BLOCK = 4096
export function chargedBytes(bodyBytes: number): number {
  return Math.ceil(bodyBytes / BLOCK) * BLOCK + BLOCK
}

/** An index slot's value: `<id>.<bytes>`, the variable part of the body file name. */
export type BodyVersion = string

export function bodyVersion(id: string, bytes: number): BodyVersion {
  return `${id}.${bytes}`
}

export function bytesOfVersion(version: BodyVersion): number {
  return Number(version.slice(version.indexOf('.') + 1))
}

export interface DiskIndexOptions {
  readonly maxBytes: number
  /** Called for each entry pushed out by the byte budget (never for replace or explicit delete). */
  readonly onEvict: (hash: string, version: BodyVersion) => void
}

/**
 * Which entries are on disk and how big they are. Least recently used entries are evicted
 * once the charged bytes pass `maxBytes`. Recency is in-process only: after a restart the
 * order is the order the start-up scan found the files in.
 */
export class DiskIndex {
  readonly #lru: LRUCache<string, BodyVersion>
  /** False until the start-up scan has listed every file; until then a miss here may still be on disk. */
  complete = false

  constructor(options: DiskIndexOptions) {
    this.#lru = new LRUCache<string, BodyVersion>({
      maxSize: Math.max(options.maxBytes, BLOCK * 2),
      sizeCalculation: (version) => chargedBytes(bytesOfVersion(version)),
      dispose: (version, hash, reason) => {
        if (reason === 'evict') options.onEvict(hash, version)
      },
    })
  }

  /** Marks `hash` as used and returns its body version. */
  get(hash: string): BodyVersion | undefined {
    return this.#lru.get(hash)
  }

  has(hash: string): boolean {
    return this.#lru.has(hash)
  }

  /** Records a stored version. Returns false when the entry alone exceeds the budget. */
  set(hash: string, version: BodyVersion): boolean {
    if (chargedBytes(bytesOfVersion(version)) > this.#lru.maxSize) return false
    this.#lru.set(hash, version)
    return true
  }

  /** Adds an entry found by the start-up scan, unless the running process already knows the key. */
  addScanned(hash: string, version: BodyVersion): void {
    if (!this.#lru.has(hash)) this.set(hash, version)
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

  /** Whether an entry of `bodyBytes` can be stored at all under the budget. */
  fits(bodyBytes: number): boolean {
    return chargedBytes(bodyBytes) <= this.#lru.maxSize
  }

  *hashes(): IterableIterator<string> {
    yield* this.#lru.keys()
  }
}
