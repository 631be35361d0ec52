// src/cache/disk-index.ts
// In-memory LRU index of what is on disk: hash -> body version, bounded by the disk byte budget.

import { LRUCache } from 'lru-cache'
import { bytesOfVersion, type BodyVersion } from './disk-layout.js'

// An index slot's value is a body version (see disk-layout.ts). Kept here for the modules outside
// src/cache that import these from this one.

/** Disk space an entry is charged: body and meta each rounded up to whole 4 KiB blocks. */
const BLOCK = 4096
export function chargedBytes(bodyBytes: number): number {
  return Math.ceil(bodyBytes / BLOCK) * BLOCK + BLOCK
}

/** Marks an index key that is not a packed hash (U+0100 never starts a packed one). */
const UNPACKED = '\u0100'
/** Value of each lowercase hex digit by char code; -1 for every other code below 128. */
const HEX_DIGIT = new Int8Array(128).fill(-1)
for (let i = 0; i < 16; i++) HEX_DIGIT['0123456789abcdef'.charCodeAt(i)] = i
const packed: number[] = new Array<number>(32).fill(0)

/**
 * The LRU key for a hash: a sha256 in lowercase hex is packed into 32 one-byte characters, 48
 * bytes of heap instead of 80 (or more, when the hex string is a slice of a longer file name).
 * Any other string is kept as it is, behind UNPACKED. A loop, not Buffer: the start-up scan
 * packs every entry.
 */
function packHash(hash: string): string {
  if (hash.length !== 64) return UNPACKED + hash
  for (let i = 0; i < 32; i++) {
    const hi = HEX_DIGIT[hash.charCodeAt(2 * i)] ?? -1
    const lo = HEX_DIGIT[hash.charCodeAt(2 * i + 1)] ?? -1
    if (hi < 0 || lo < 0) return UNPACKED + hash
    packed[i] = hi * 16 + lo
  }
  return String.fromCharCode(...packed)
}

/**
 * Packed keys of recently asked hashes. Packing costs about 200 ns, more than the LRU move itself,
 * and a hot hit asks for the same few hashes (the same string objects, from hashKey's memo) again
 * and again. Emptied when full; the start-up scan packs directly and does not pass through here.
 */
const PACKED_MEMO_MAX = 10_000
let packedMemo = new Map<string, string>()

function keyOf(hash: string): string {
  let key = packedMemo.get(hash)
  if (key === undefined) {
    key = packHash(hash)
    if (packedMemo.size >= PACKED_MEMO_MAX) packedMemo = new Map()
    packedMemo.set(hash, key)
  }
  return key
}

function unpackHash(key: string): string {
  return key.startsWith(UNPACKED) ? key.slice(1) : Buffer.from(key, 'latin1').toString('hex')
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
      dispose: (version, key, reason) => {
        if (reason === 'evict') options.onEvict(unpackHash(key), version)
      },
    })
  }

  /** Marks `hash` as used and returns its body version. */
  get(hash: string): BodyVersion | undefined {
    return this.#lru.get(keyOf(hash))
  }

  has(hash: string): boolean {
    return this.#lru.has(keyOf(hash))
  }

  /** Records a stored version. Returns false when the entry alone exceeds the budget. */
  set(hash: string, version: BodyVersion): boolean {
    return this.#set(packHash(hash), version)
  }

  #set(key: string, version: BodyVersion): boolean {
    if (chargedBytes(bytesOfVersion(version)) > this.#lru.maxSize) return false
    this.#lru.set(key, version)
    return true
  }

  /** Adds an entry found by the start-up scan, unless the running process already knows the key. */
  addScanned(hash: string, version: BodyVersion): void {
    const key = packHash(hash)
    if (!this.#lru.has(key)) this.#set(key, version)
  }

  delete(hash: string): void {
    this.#lru.delete(keyOf(hash))
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

  /** Every indexed hash, most recently used first. */
  *hashes(): IterableIterator<string> {
    for (const key of this.#lru.keys()) yield unpackHash(key)
  }
}
