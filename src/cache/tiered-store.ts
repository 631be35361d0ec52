// src/cache/tiered-store.ts
// The cache as the rest of the program sees it: memory in front of disk, one API to look up,
// store, refresh, purge and list entries. The parts are two-tiers.ts (memory in front of disk),
// vary-generations.ts (what a URL varies on, and its generation) and worker-sync.ts (the changes
// workers sharing a cache directory tell each other); this class keys them and runs purges.

import type { FileHandle } from 'node:fs/promises'
import type { Logger } from 'pino'
import { hashKey } from './disk-layout.js'
import { DiskStore, type TempBody } from './disk-store.js'
import type { ScanResult } from './scan-disk.js'
import type { CachedEntry, EntryMeta, EntryMetaDraft } from './entry.js'
import { MemoryStore } from './memory-store.js'
import { TwoTiers } from './two-tiers.js'
import { VaryGenerations } from './vary-generations.js'
import type { VaryMarker } from './vary-records.js'
import { WorkerSync, type StoreChange } from './worker-sync.js'

// Kept here for the modules outside src/cache that import it from this one.

export interface StoreOptions {
  readonly cacheDir: string
  readonly maxDiskBytes: number
  readonly maxMemoryBytes: number
  readonly log: Logger
  /** Files older than this (epoch ms) that no entry references are removed by the scan (default: now). */
  readonly leftoversBefore?: number
  /** Told of every change other processes sharing the cache directory must know (worker groups). */
  readonly onChange?: (change: StoreChange) => void
}

export interface StoreStats {
  readonly memoryEntries: number
  /** Entries whose body is in memory too (the rest have only their metadata there). */
  readonly memoryBodies: number
  readonly memoryBytes: number
  readonly diskEntries: number
  readonly diskBytes: number
  readonly indexComplete: boolean
  readonly evictions: number
  readonly corruptDropped: number
}

export class TieredStore {
  readonly disk: DiskStore
  readonly memory: MemoryStore
  readonly #tiers: TwoTiers
  readonly #vary: VaryGenerations
  readonly #sync: WorkerSync
  #evictions = 0
  /** Keys (by hash) being purged, and the purge to wait for. */
  readonly #purging = new Map<string, Promise<boolean>>()

  private constructor(disk: DiskStore, memory: MemoryStore, log: Logger, sync: WorkerSync) {
    this.disk = disk
    this.memory = memory
    this.#sync = sync
    this.#tiers = new TwoTiers(disk, memory, log, (hash, version) => sync.announceEntry(hash, version))
    this.#vary = new VaryGenerations(disk.vary, { local: (hash) => this.#purging.get(hash), remote: (hash) => sync.purgeOver(hash) })
  }

  static async open(options: StoreOptions): Promise<TieredStore> {
    const memory = new MemoryStore(options.maxMemoryBytes)
    const sync = new WorkerSync(options.onChange ?? (() => {}))
    let self: TieredStore | undefined
    const disk = await DiskStore.open(
      options.cacheDir,
      options.maxDiskBytes,
      options.log,
      (hash) => {
        memory.delete(hash)
        if (self !== undefined) self.#evictions++
        sync.announceEntry(hash, null)
      },
      options.leftoversBefore,
    )
    self = new TieredStore(disk, memory, options.log, sync)
    // Other workers write Vary records this process does not see.
    if (options.onChange !== undefined) disk.vary.shared()
    return self
  }

  /**
   * Applies another process's change: the memory copy is dropped (the next lookup reads the disk),
   * and the index learns the new version or forgets the entry.
   */
  applyChange(change: StoreChange): void {
    this.#tiers.noteWrite()
    if (change.kind === 'url') {
      // Until the purging worker is done, the old files may still be on disk: the key is a miss.
      const hash = hashKey(change.key)
      this.#sync.receivePurge(hash, change.done)
      this.memory.delete(hash)
      this.#vary.forget(hash)
      this.disk.index.delete(hash)
      return
    }
    this.memory.delete(change.hash)
    if (change.version === null) this.disk.index.delete(change.hash)
    else this.disk.index.set(change.hash, change.version)
  }

  /** Indexes what an earlier process left on disk; the store serves (and finds old entries) meanwhile. */
  scan(): Promise<ScanResult> {
    return this.disk.scan()
  }

  /**
   * The memory tier's entry for `key`, synchronously (the hot path), when it is complete: a small
   * body in memory, or a large one that is always streamed. Undefined: ask lookup().
   */
  peek(key: string): CachedEntry | undefined {
    const hash = hashKey(key)
    if (this.#purging.has(hash) || (this.#sync.isAnyPurging && this.#sync.isPurging(hash))) return undefined
    return this.#tiers.peek(hash)
  }

  /** The stored entry for `key`, from memory or disk, or undefined. Small bodies are pulled into memory. */
  lookup(key: string): Promise<CachedEntry | undefined> {
    const hot = this.peek(key)
    if (hot !== undefined) return Promise.resolve(hot)
    const hash = hashKey(key)
    if (this.#purging.has(hash) || this.#sync.isPurging(hash)) return Promise.resolve(undefined)
    return this.#tiers.lookup(hash, key)
  }

  /** Opens a disk entry's body; a missing or corrupt body removes the entry and returns undefined. */
  openBody(entry: CachedEntry): Promise<FileHandle | undefined> {
    return this.#tiers.openBody(entry)
  }

  createTemp(key: string): Promise<TempBody> {
    return this.disk.createTemp(hashKey(key))
  }

  /** Whether a body of this size may be stored at all. */
  fits(bodyBytes: number): boolean {
    return this.disk.index.fits(bodyBytes)
  }

  /**
   * Makes a filled body the current entry for its key, under a body file name the store chooses
   * (any `bodyFile` in `meta` is ignored). `body` is the whole body when it was small.
   */
  commit(temp: TempBody, meta: EntryMetaDraft, previous: EntryMeta | undefined, body: Buffer | undefined): Promise<CachedEntry> {
    return this.#tiers.commit(temp, meta, previous, body)
  }

  /** Replaces an entry's metadata (after a 304), keeping its body. */
  refresh(entry: CachedEntry, meta: EntryMeta): Promise<CachedEntry> {
    return this.#tiers.refresh(entry, meta)
  }

  /** The Vary record for `urlKey`: which headers its responses vary on, and the current generation. */
  varyFor(urlKey: string): Promise<VaryMarker> {
    return this.#vary.current(hashKey(urlKey))
  }

  /**
   * Records that responses for `urlKey` vary on `names` (or on nothing). A URL that starts to vary
   * loses its plain entry, which would otherwise answer every variant.
   */
  setVaryNames(urlKey: string, names: readonly string[] | undefined): Promise<void> {
    const hash = hashKey(urlKey)
    return this.#vary.setNames(hash, urlKey, names, () => this.#tiers.remove(hash))
  }

  /**
   * Removes `key` and every variant of it (by moving the URL to a new Vary generation). From the
   * moment this is called, before any await, lookups of `key` find nothing, so no request can
   * see the old entry however long the disk takes.
   */
  purge(key: string): Promise<boolean> {
    const hash = hashKey(key)
    this.memory.delete(hash)
    this.#tiers.noteWrite()
    // Purges of one key run one after another; each ends with the key findable again.
    const previous = this.#purging.get(hash)
    // Other workers forget the URL now, and again once the files are gone (a lookup in between
    // may have read the old entry back into memory).
    this.#sync.announcePurge(key, false)
    const run: Promise<boolean> = (previous ?? Promise.resolve(false))
      .catch(() => false)
      .then(async () => {
        const hadVariants = await this.#vary.retire(hash, key)
        return (await this.#tiers.remove(hash)) || hadVariants
      })
      .finally(() => {
        this.#sync.announcePurge(key, true)
        if (this.#purging.get(hash) === run) this.#purging.delete(hash)
        this.#tiers.noteWrite()
      })
    this.#purging.set(hash, run)
    return run
  }

  list(): AsyncGenerator<{ hash: string; meta: EntryMeta }> {
    return this.disk.list()
  }

  stats(): StoreStats {
    return {
      memoryEntries: this.memory.entries,
      memoryBodies: this.memory.bodies,
      memoryBytes: this.memory.bytes,
      diskEntries: this.disk.index.entries,
      diskBytes: this.disk.index.bytes,
      indexComplete: this.disk.index.complete,
      evictions: this.#evictions,
      corruptDropped: this.#tiers.corruptDropped,
    }
  }

  /** A full read found the body's digest wrong: drop the entry (if still current). */
  reportCorrupt(entry: CachedEntry): Promise<void> {
    return this.#tiers.reportCorrupt(entry)
  }
}
