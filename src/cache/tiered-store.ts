// src/cache/tiered-store.ts
// The cache as the rest of the program sees it: memory in front of disk, one API to look up,
// store, refresh, purge and list entries.

import type { FileHandle } from 'node:fs/promises'
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import { bodyVersion } from './disk-index.js'
import { DiskStore, type ScanResult, type TempBody, type VaryMarker } from './disk-store.js'
import { hashKey, type CachedEntry, type EntryMeta } from './entry.js'
import { CacheCorruptError, errorCode } from '../errors.js'
import { MemoryStore } from './memory-store.js'

const NO_VARY: VaryMarker = { names: null, generation: 0 }

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

/**
 * A change to the shared cache: an entry stored, refreshed or removed (`version` null), or a URL
 * invalidated with all its variants. Other workers drop their memory copy and update their index.
 */
export type StoreChange =
  | { readonly kind: 'entry'; readonly hash: string; readonly version: string | null }
  | { readonly kind: 'url'; readonly key: string; readonly done: boolean }

/** A purge announced by another worker that never says it is done (the worker died) ends after this. */
const REMOTE_PURGE_MS = 10_000

/** Purges of one URL by other workers: how many are running, and when the last one is over. */
interface RemotePurge {
  count: number
  readonly over: Promise<void>
  readonly end: () => void
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
  readonly #log: Logger
  /** URL key hash -> the Vary names its responses use (false: none). */
  readonly #vary = new LRUCache<string, VaryMarker>({ max: 100_000 })
  #evictions = 0
  #corruptDropped = 0
  /** Counts commits, refreshes and purges, so a lookup can tell that one raced it. */
  #writes = 0
  /** Keys (by hash) being purged, and the purge to wait for. */
  readonly #purging = new Map<string, Promise<boolean>>()
  /** Keys (by hash) other workers are purging. */
  readonly #remotePurging = new Map<string, RemotePurge>()

  readonly #onChange: (change: StoreChange) => void

  private constructor(disk: DiskStore, memory: MemoryStore, log: Logger, onChange: (change: StoreChange) => void) {
    this.disk = disk
    this.memory = memory
    this.#log = log
    this.#onChange = onChange
  }

  static async open(options: StoreOptions): Promise<TieredStore> {
    const memory = new MemoryStore(options.maxMemoryBytes)
    const onChange = options.onChange ?? (() => {})
    let self: TieredStore | undefined
    const disk = await DiskStore.open(
      options.cacheDir,
      options.maxDiskBytes,
      options.log,
      (hash) => {
        memory.delete(hash)
        if (self !== undefined) self.#evictions++
        onChange({ kind: 'entry', hash, version: null })
      },
      options.leftoversBefore,
    )
    self = new TieredStore(disk, memory, options.log, onChange)
    if (options.onChange !== undefined) disk.shared()
    return self
  }

  /**
   * Applies another process's change: the memory copy is dropped (the next lookup reads the disk),
   * and the index learns the new version or forgets the entry.
   */
  applyChange(change: StoreChange): void {
    this.#writes++
    if (change.kind === 'url') {
      // Until the purging worker is done, the old files may still be on disk: the key is a miss.
      const hash = hashKey(change.key)
      const running = this.#remotePurging.get(hash)
      if (!change.done) {
        if (running !== undefined) running.count++
        else this.#remotePurging.set(hash, this.#remotePurge(hash))
      } else if (running !== undefined && --running.count <= 0) running.end()
      this.memory.delete(hash)
      this.#vary.delete(hash)
      this.disk.index.delete(hash)
      return
    }
    this.memory.delete(change.hash)
    if (change.version === null) this.disk.index.delete(change.hash)
    else this.disk.index.set(change.hash, change.version)
  }

  #remotelyPurging(hash: string): boolean {
    return this.#remotePurging.has(hash)
  }

  /** Another worker's purge of `hash`: ends when it says done, or after REMOTE_PURGE_MS. */
  #remotePurge(hash: string): RemotePurge {
    let resolve: () => void = () => {}
    const over = new Promise<void>((r) => (resolve = r))
    const purge: RemotePurge = {
      count: 1,
      over,
      end: () => {
        clearTimeout(timer)
        if (this.#remotePurging.get(hash) === purge) this.#remotePurging.delete(hash)
        resolve()
      },
    }
    const timer = setTimeout(() => purge.end(), REMOTE_PURGE_MS)
    timer.unref()
    return purge
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
    if (this.#purging.has(hash) || (this.#remotePurging.size > 0 && this.#remotelyPurging(hash))) return undefined
    const hot = this.memory.peek(hash)
    if (hot === undefined || (hot.body === undefined && hot.meta.bodyBytes <= this.memory.maxBodyBytes)) return undefined
    // Disk recency exactly (it decides what is deleted); memory recency on the first use and
    // every eighth after (it only decides what is re-read from disk), which saves two LRU moves
    // per hit while an entry in use stays near the top anyway.
    this.disk.index.get(hash)
    hot.uses = (hot.uses ?? 0) + 1
    if ((hot.uses & 7) === 1) this.memory.touch(hash)
    return hot
  }

  /** The stored entry for `key`, from memory or disk, or undefined. Small bodies are pulled into memory. */
  async lookup(key: string): Promise<CachedEntry | undefined> {
    const hot = this.peek(key)
    if (hot !== undefined) return hot
    const hash = hashKey(key)
    if (this.#purging.has(hash) || this.#remotelyPurging(hash)) return undefined
    // Metadata still in memory whose small body was pushed out: only the body is read again.
    const known = this.memory.get(hash)
    // A commit, refresh or purge that lands while we read must not be undone by our memory insert.
    const writes = this.#writes
    let meta = known?.meta
    if (meta === undefined) {
      try {
        meta = await this.disk.read(hash)
      } catch (err) {
        this.#log.warn({ err, key }, 'cache read failed; treating as a miss')
        return undefined
      }
    } else this.disk.index.get(hash)
    if (meta === undefined) return undefined
    const entry: CachedEntry = { meta, hash, body: undefined, freshness: known?.freshness, verified: known?.verified ?? false }
    if (meta.bodyBytes <= this.memory.maxBodyBytes) {
      try {
        // A body already checked in this process is not hashed again on every re-read.
        entry.body = await this.disk.readBody(hash, meta, !entry.verified)
        entry.verified = true
      } catch (err) {
        await this.#drop(entry, err)
        return undefined
      }
    }
    if (this.#writes === writes) this.memory.set(entry)
    return entry
  }

  /** Opens a disk entry's body; a missing or corrupt body removes the entry and returns undefined. */
  async openBody(entry: CachedEntry): Promise<FileHandle | undefined> {
    try {
      return await this.disk.openBody(entry.hash, entry.meta)
    } catch (err) {
      await this.#drop(entry, err)
      return undefined
    }
  }

  createTemp(key: string): Promise<TempBody> {
    return this.disk.createTemp(hashKey(key))
  }

  /** Whether a body of this size may be stored at all. */
  fits(bodyBytes: number): boolean {
    return this.disk.index.fits(bodyBytes)
  }

  bodyFileFor(temp: TempBody, bytes: number): string {
    return this.disk.bodyFileFor(temp, bytes)
  }

  /** Makes a filled body the current entry for its key. `body` is the whole body when it was small. */
  async commit(temp: TempBody, meta: EntryMeta, previous: EntryMeta | undefined, body: Buffer | undefined): Promise<CachedEntry> {
    this.#writes++
    await this.disk.commit(temp, meta, previous)
    this.#onChange({ kind: 'entry', hash: temp.hash, version: bodyVersion(temp.id, meta.bodyBytes) })
    const entry: CachedEntry = { meta, hash: temp.hash, body, freshness: undefined, verified: true }
    if (body !== undefined || meta.bodyBytes > this.memory.maxBodyBytes) this.memory.set(entry)
    else this.memory.delete(temp.hash)
    return entry
  }

  /** Replaces an entry's metadata (after a 304), keeping its body. */
  async refresh(entry: CachedEntry, meta: EntryMeta): Promise<CachedEntry> {
    const next: CachedEntry = { meta, hash: entry.hash, body: entry.body, freshness: undefined, verified: entry.verified }
    this.#writes++
    // The entry may have been replaced or purged since it was read: refresh only that version.
    if (!(await this.disk.isCurrent(entry.hash, entry.meta))) return next
    this.memory.set(next)
    await this.disk.writeMeta(entry.hash, meta)
    const version = this.disk.index.get(entry.hash)
    if (version !== undefined) this.#onChange({ kind: 'entry', hash: entry.hash, version })
    return next
  }

  /** The Vary record for `urlKey`: which headers its responses vary on, and the current generation. */
  async varyFor(urlKey: string): Promise<VaryMarker> {
    const hash = hashKey(urlKey)
    // During a purge the record is being moved to a new generation: wait for it, so nothing is
    // stored under the generation being retired.
    const purging = this.#purging.get(hash)
    if (purging !== undefined) await purging.catch(() => false)
    // Another worker is moving it to a new generation: its old record must not be read meanwhile.
    const remote = this.#remotePurging.get(hash)
    if (remote !== undefined) await remote.over
    const known = this.#vary.get(hash)
    if (known !== undefined) return known
    const marker = (await this.disk.readVary(hash)) ?? NO_VARY
    this.#vary.set(hash, marker)
    return marker
  }

  /**
   * Records that responses for `urlKey` vary on `names` (or on nothing). A URL that starts to vary
   * loses its plain entry, which would otherwise answer every variant.
   */
  async setVaryNames(urlKey: string, names: readonly string[] | undefined): Promise<void> {
    const current = await this.varyFor(urlKey)
    if (JSON.stringify(current.names ?? undefined) === JSON.stringify(names)) return
    const next: VaryMarker = { names: names ?? null, generation: current.generation }
    this.#vary.set(hashKey(urlKey), next)
    if (names !== undefined) await this.#purgeOne(urlKey)
    await this.disk.writeVary(hashKey(urlKey), urlKey, next)
  }

  /**
   * Removes `key` and every variant of it (by moving the URL to a new Vary generation). From the
   * moment this is called, before any await, lookups of `key` find nothing, so no request can
   * see the old entry however long the disk takes.
   */
  purge(key: string): Promise<boolean> {
    const hash = hashKey(key)
    this.memory.delete(hash)
    this.#writes++
    // Purges of one key run one after another; each ends with the key findable again.
    const previous = this.#purging.get(hash)
    // Other workers forget the URL now, and again once the files are gone (a lookup in between
    // may have read the old entry back into memory).
    this.#onChange({ kind: 'url', key, done: false })
    const run: Promise<boolean> = (previous ?? Promise.resolve(false))
      .catch(() => false)
      .then(() => this.#purgeAll(key, hash))
      .finally(() => {
        this.#onChange({ kind: 'url', key, done: true })
        if (this.#purging.get(hash) === run) this.#purging.delete(hash)
        this.#writes++
      })
    this.#purging.set(hash, run)
    return run
  }

  async #purgeAll(key: string, hash: string): Promise<boolean> {
    const current = this.#vary.get(hash) ?? (await this.disk.readVary(hash)) ?? NO_VARY
    const hadVariants = current.names !== null
    if (hadVariants) {
      const next: VaryMarker = { names: null, generation: current.generation + 1 }
      this.#vary.set(hash, next)
      await this.disk.writeVary(hash, key, next)
    }
    return (await this.#purgeOne(key)) || hadVariants
  }

  async #purgeOne(key: string): Promise<boolean> {
    this.#writes++
    const hash = hashKey(key)
    const hot = this.memory.get(hash)
    this.memory.delete(hash)
    const meta = hot?.meta ?? (await this.disk.read(hash))
    await this.disk.remove(hash, meta)
    return meta !== undefined
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
      corruptDropped: this.#corruptDropped,
    }
  }

  /** A full read found the body's digest wrong: drop the entry (if still current). */
  async reportCorrupt(entry: CachedEntry): Promise<void> {
    await this.#drop(entry, new CacheCorruptError(entry.meta.bodyFile, 'sha256 mismatch'))
  }

  /**
   * Handles an unreadable body: a corrupt or missing file drops the entry (if it is still the
   * current version); any other error (EMFILE, EIO) is a miss for this request, nothing deleted.
   */
  async #drop(entry: CachedEntry, err: unknown): Promise<void> {
    const missing = errorCode(err) === 'ENOENT'
    if (!missing && !(err instanceof CacheCorruptError)) {
      this.#log.warn({ err, key: entry.meta.key }, 'cache read failed; treating as a miss')
      return
    }
    if (!(await this.disk.isCurrent(entry.hash, entry.meta))) return
    if (!missing) {
      this.#corruptDropped++
      this.#log.warn({ err, key: entry.meta.key }, 'dropping corrupt cache entry')
    }
    this.#writes++
    this.memory.delete(entry.hash)
    // Another worker may have stored a new version since this one was read: only this one goes.
    if (await this.disk.removeIfCurrent(entry.hash, entry.meta)) this.#onChange({ kind: 'entry', hash: entry.hash, version: null })
  }
}
