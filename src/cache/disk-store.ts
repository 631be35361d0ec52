// src/cache/disk-store.ts
// The on-disk tier's operations: read, store, refresh, remove and list entries, one meta file and
// one body file each, written to a temp file then renamed. Their names are in disk-layout.ts, the
// start-up scan in scan-disk.ts, and the Vary records in vary-records.ts.
//
// A body is renamed into place before its meta points at it, so a crash leaves either the old
// entry, the new one, or an orphan body that the start-up scan removes. Leftover temp files
// from an earlier process are removed by the scan too. There is no fsync: every open checks
// the body's length against the meta instead, which catches files cut short by a power loss.

import { createHash } from 'node:crypto'
import { mkdir, open, readFile, readdir, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { CacheCorruptError, ConfigError, errorCode } from '../errors.js'
import { DiskIndex } from './disk-index.js'
import {
  bodyFileName,
  bodyVersion,
  DiskLayout,
  hashOfFile,
  kindOfFile,
  newBodyId,
  versionOfBodyFile,
  type BodyVersion,
} from './disk-layout.js'
import { decodeMeta, encodeMeta, withBodyFile, type EntryMeta, type EntryMetaDraft } from './entry.js'
import { scanDisk, type ScanResult } from './scan-disk.js'
import { VaryRecords } from './vary-records.js'

// Kept here for the modules outside src/cache that import them from this one.

/** A body being written: read-write, so readers can follow the fill from the same file. */
export interface TempBody {
  readonly hash: string
  readonly id: string
  readonly path: string
  readonly fh: FileHandle
}

export class DiskStore {
  /** `<cacheDir>/cachemir-v1/objects`: holds the buckets. */
  readonly root: string
  readonly index: DiskIndex
  /** The `<hash>.vary` records of URLs whose responses vary. */
  readonly vary: VaryRecords
  readonly #layout: DiskLayout
  /** Files older than this that no entry references are leftovers of an earlier process. */
  readonly #startedAt: number
  readonly #log: Logger

  private constructor(cacheDir: string, maxBytes: number, log: Logger, onEvicted: (hash: string) => void, leftoversBefore: number) {
    this.#layout = new DiskLayout(cacheDir)
    this.root = this.#layout.root
    this.#startedAt = leftoversBefore
    this.#log = log
    this.index = new DiskIndex({
      maxBytes,
      onEvict: (hash, version) => {
        onEvicted(hash)
        void this.#unlinkEntry(hash, version)
      },
    })
    this.vary = new VaryRecords(this.#layout, this.index)
  }

  /** Creates the layout and proves the directory is writable; a failure is a ConfigError naming --cache-dir. */
  static async open(
    cacheDir: string,
    maxBytes: number,
    log: Logger,
    onEvicted: (hash: string) => void,
    leftoversBefore = Date.now(),
  ): Promise<DiskStore> {
    const store = new DiskStore(cacheDir, maxBytes, log, onEvicted, leftoversBefore)
    const probe = store.#layout.probePath()
    try {
      await mkdir(store.root, { recursive: true })
      await writeFile(probe, 'ok')
      await unlink(probe)
    } catch (err) {
      const code = errorCode(err) ?? String(err)
      throw new ConfigError([`--cache-dir: cannot write to "${cacheDir}": ${code}`], { cause: err })
    }
    return store
  }

  bodyPath(hash: string, bodyFile: string): string {
    return this.#layout.bodyPath(hash, bodyFile)
  }

  /** Reads and validates the meta record for `hash`; undefined when absent, corrupt entries are removed. */
  async read(hash: string): Promise<EntryMeta | undefined> {
    if (this.index.complete && !this.index.has(hash)) return undefined
    let text: string
    try {
      text = await readFile(this.#layout.metaPath(hash), 'utf8')
    } catch (err) {
      if (errorCode(err) === 'ENOENT') {
        this.index.delete(hash)
        return undefined
      }
      throw err
    }
    const meta = decodeMeta(text, hash)
    if (typeof meta === 'string') {
      this.#log.warn({ hash, reason: meta }, 'dropping corrupt cache entry')
      await this.remove(hash)
      return undefined
    }
    const version = versionOfBodyFile(meta.bodyFile)
    if (version === undefined) {
      await this.remove(hash)
      return undefined
    }
    if (this.index.has(hash)) this.index.get(hash)
    else this.index.addScanned(hash, version)
    return meta
  }

  /** Opens the body for reading and checks its length against the meta. */
  async openBody(hash: string, meta: EntryMeta): Promise<FileHandle> {
    const path = this.bodyPath(hash, meta.bodyFile)
    const fh = await open(path, 'r')
    try {
      const { size } = await fh.stat()
      if (size !== meta.bodyBytes) throw new CacheCorruptError(path, `length ${size}, expected ${meta.bodyBytes}`)
      return fh
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** Reads a whole (small) body into memory, length-checked, and digest-checked when `verify`. */
  async readBody(hash: string, meta: EntryMeta, verify = true): Promise<Buffer> {
    const path = this.bodyPath(hash, meta.bodyFile)
    const fh = await open(path, 'r')
    try {
      // Ask for one byte more than the meta says instead of an fstat: a regular file returns
      // fewer bytes than asked only at its end, so one read both fills the body and proves its
      // length (open, read, close: the same three calls as a plain file server).
      const buf = Buffer.allocUnsafe(meta.bodyBytes + 1)
      let pos = 0
      for (;;) {
        const { bytesRead } = await fh.read(buf, pos, buf.length - pos, pos)
        pos += bytesRead
        if (bytesRead === 0 || pos >= meta.bodyBytes) break
      }
      if (pos !== meta.bodyBytes)
        throw new CacheCorruptError(path, `length ${pos > meta.bodyBytes ? 'over' : pos}, expected ${meta.bodyBytes}`)
      const body = buf.subarray(0, pos)
      // Same length but different bytes (bit rot, a stray write): the digest catches it.
      if (verify && createHash('sha256').update(body).digest('hex') !== meta.sha256) throw new CacheCorruptError(path, 'sha256 mismatch')
      return body
    } finally {
      // The caller need not wait for the close.
      fh.close().catch(() => {})
    }
  }

  /** Starts a new body version in a temp file next to its final place. */
  async createTemp(hash: string): Promise<TempBody> {
    const id = newBodyId()
    await this.#ensureDir(hash)
    const path = this.#layout.tempBodyPath(hash, id)
    const fh = await open(path, 'wx+').catch(async (err: unknown) => {
      // The bucket was removed behind our back (an operator, a purge tool): make it again.
      if (errorCode(err) !== 'ENOENT') throw err
      this.#dirs.delete(this.#layout.bucket(hash))
      await this.#ensureDir(hash)
      return open(path, 'wx+')
    })
    return { hash, id, path, fh }
  }

  /** Buckets known to exist: a fill does not pay a mkdir per object (at most 256 of them). */
  readonly #dirs = new Set<string>()

  async #ensureDir(hash: string): Promise<void> {
    const dir = this.#layout.bucket(hash)
    if (this.#dirs.has(dir)) return
    await mkdir(dir, { recursive: true })
    this.#dirs.add(dir)
  }

  /**
   * Moves a finished temp body into place under its final name and points the meta at it.
   * `previous` is the version being replaced, if the caller knows it. Returns the meta as stored,
   * with its `bodyFile`. Throws on I/O errors (the caller drops the entry).
   */
  async commit(temp: TempBody, draft: EntryMetaDraft, previous: EntryMeta | undefined): Promise<EntryMeta> {
    const version = bodyVersion(temp.id, draft.bodyBytes)
    const meta = withBodyFile(draft, bodyFileName(temp.hash, version))
    if (!this.index.fits(meta.bodyBytes)) throw new Error(`entry of ${meta.bodyBytes} bytes exceeds the disk budget`)
    await rename(temp.path, this.bodyPath(temp.hash, meta.bodyFile))
    try {
      await this.writeMeta(temp.hash, meta)
    } catch (err) {
      await unlink(this.bodyPath(temp.hash, meta.bodyFile)).catch(() => {})
      throw err
    }
    const indexed = this.index.get(temp.hash)
    this.index.set(temp.hash, version)
    const old = new Set<string>()
    if (indexed !== undefined) old.add(bodyFileName(temp.hash, indexed))
    if (previous !== undefined) old.add(previous.bodyFile)
    old.delete(meta.bodyFile)
    for (const file of old) await unlink(this.bodyPath(temp.hash, file)).catch(() => {})
    return meta
  }

  /** Atomically replaces the meta record (after a 304, or at commit). */
  async writeMeta(hash: string, meta: EntryMeta): Promise<void> {
    const tmp = this.#layout.tempRecordPath(hash, 'meta')
    try {
      await writeFile(tmp, encodeMeta(meta))
      await rename(tmp, this.#layout.metaPath(hash))
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
  }

  /** True when `meta` is still the version on disk for `hash` (not replaced or removed since). */
  async isCurrent(hash: string, meta: EntryMeta): Promise<boolean> {
    const version = this.index.get(hash)
    if (version !== undefined) return bodyFileName(hash, version) === meta.bodyFile
    if (this.index.complete) return false
    return (await this.#metaOf(hash))?.bodyFile === meta.bodyFile
  }

  /** Removes an entry's files (meta first, so a crash in between leaves only an orphan body). */
  async remove(hash: string, meta?: EntryMeta): Promise<void> {
    const version = this.index.get(hash)
    this.index.delete(hash)
    await unlink(this.#layout.metaPath(hash)).catch(() => {})
    if (version !== undefined) await unlink(this.bodyPath(hash, bodyFileName(hash, version))).catch(() => {})
    if (meta !== undefined) await unlink(this.bodyPath(hash, meta.bodyFile)).catch(() => {})
  }

  /**
   * Removes the entry only if its meta on disk still points at `meta`'s body (another process may
   * have committed a newer version meanwhile); that body file goes either way. True if removed.
   */
  async removeIfCurrent(hash: string, meta: EntryMeta): Promise<boolean> {
    const onDisk = await this.#metaOf(hash)
    if (onDisk !== undefined && onDisk.bodyFile !== meta.bodyFile) {
      await unlink(this.bodyPath(hash, meta.bodyFile)).catch(() => {})
      return false
    }
    await this.remove(hash, meta)
    return true
  }

  async #unlinkEntry(hash: string, version: BodyVersion): Promise<void> {
    // The meta goes only if it still names the evicted version (not one committed since).
    const bodyFile = bodyFileName(hash, version)
    if ((await this.#metaOf(hash))?.bodyFile === bodyFile) await unlink(this.#layout.metaPath(hash)).catch(() => {})
    await unlink(this.bodyPath(hash, bodyFile)).catch((err: unknown) => {
      if (errorCode(err) !== 'ENOENT') this.#log.warn({ err, hash }, 'could not remove evicted body')
    })
  }

  /**
   * Lists every bucket once: indexes complete entries, removes leftovers of earlier processes
   * (temp files, orphan bodies and metas, superseded versions). Runs in the background while the
   * server already answers (see scan-disk.ts).
   */
  scan(): Promise<ScanResult> {
    return scanDisk({
      layout: this.#layout,
      index: this.index,
      leftoversBefore: this.#startedAt,
      readMeta: (hash) => this.#metaOf(hash),
      foundVary: (hash) => this.vary.found(hash),
    })
  }

  async #metaOf(hash: string): Promise<EntryMeta | undefined> {
    const text = await readFile(this.#layout.metaPath(hash), 'utf8').catch(() => undefined)
    if (text === undefined) return undefined
    const meta = decodeMeta(text, hash)
    return typeof meta === 'string' ? undefined : meta
  }

  /** Every valid entry's meta, bucket by bucket (for listing, purging and verifying tools). */
  async *list(): AsyncGenerator<{ hash: string; meta: EntryMeta }> {
    const buckets = await readdir(this.root).catch(() => [] as string[])
    for (const bucket of buckets.sort()) {
      const names = await readdir(join(this.root, bucket)).catch(() => [] as string[])
      for (const name of names.sort()) {
        if (kindOfFile(name) !== 'meta') continue
        const hash = hashOfFile(name, 'meta')
        const meta = await this.#metaOf(hash)
        if (meta !== undefined) yield { hash, meta }
      }
    }
  }
}
