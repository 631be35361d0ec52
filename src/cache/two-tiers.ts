// src/cache/two-tiers.ts
// Memory in front of disk, entry by entry (by hash): reads that fill the memory tier, writes that
// go to disk first, and what happens to an entry whose body turns out unreadable.

import type { FileHandle } from 'node:fs/promises'
import type { Logger } from 'pino'
import { CacheCorruptError, errorCode } from '../errors.js'
import { bodyVersion } from './disk-layout.js'
import type { DiskStore, TempBody } from './disk-store.js'
import type { CachedEntry, EntryMeta, EntryMetaDraft } from './entry.js'
import type { MemoryStore } from './memory-store.js'

export class TwoTiers {
  readonly disk: DiskStore
  readonly memory: MemoryStore
  readonly #log: Logger
  /** Tells the other workers that an entry was stored or refreshed (its version), or removed (null). */
  readonly #announce: (hash: string, version: string | null) => void
  #corruptDropped = 0
  /** Counts commits, refreshes and purges, so a lookup can tell that one raced it. */
  #writes = 0

  constructor(disk: DiskStore, memory: MemoryStore, log: Logger, announce: (hash: string, version: string | null) => void) {
    this.disk = disk
    this.memory = memory
    this.#log = log
    this.#announce = announce
  }

  /** Entries dropped because their body was corrupt. */
  get corruptDropped(): number {
    return this.#corruptDropped
  }

  /** Something changed the store outside this class (a purge, another worker): a lookup running now must not fill memory. */
  noteWrite(): void {
    this.#writes++
  }

  /** The memory tier's complete entry for `hash` (see TieredStore.peek), or undefined. */
  peek(hash: string): CachedEntry | undefined {
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

  /** The entry for `hash` (of `key`), from memory or disk, or undefined. Small bodies are pulled into memory. */
  async lookup(hash: string, key: string): Promise<CachedEntry | undefined> {
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

  /** Makes a filled body the current entry for its hash; the disk store names the body file. */
  async commit(temp: TempBody, draft: EntryMetaDraft, previous: EntryMeta | undefined, body: Buffer | undefined): Promise<CachedEntry> {
    this.#writes++
    const meta = await this.disk.commit(temp, draft, previous)
    this.#announce(temp.hash, bodyVersion(temp.id, meta.bodyBytes))
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
    if (version !== undefined) this.#announce(entry.hash, version)
    return next
  }

  /** Removes the entry for `hash` from both tiers (for a purge; not announced). True if there was one. */
  async remove(hash: string): Promise<boolean> {
    this.#writes++
    const hot = this.memory.get(hash)
    this.memory.delete(hash)
    const meta = hot?.meta ?? (await this.disk.read(hash))
    await this.disk.remove(hash, meta)
    return meta !== undefined
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
    if (await this.disk.removeIfCurrent(entry.hash, entry.meta)) this.#announce(entry.hash, null)
  }
}
