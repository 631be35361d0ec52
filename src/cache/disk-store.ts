// src/cache/disk-store.ts
// The on-disk tier: one meta file and one body file per entry, written to a temp file then renamed.
//
// Layout (version 1), under <cacheDir>/cachemir-v1/objects/<first two hex of hash>/:
//   <hash>.meta                      magic line with a checksum, then the EntryMeta JSON
//   <hash>.<id>.<bytes>.body         the body; a new id for every stored version
//   <hash>.vary                      for a URL whose responses vary: the header names (JSON)
//   .tmp-…                           bodies being filled and metas being written
// A body is renamed into place before its meta points at it, so a crash leaves either the old
// entry, the new one, or an orphan body that the start-up scan removes. Leftover temp files
// from an earlier process are removed by the scan too. There is no fsync: every open checks
// the body's length against the meta instead, which catches files cut short by a power loss.

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { CacheCorruptError, ConfigError, errorCode } from '../errors.js'
import { bodyVersion, DiskIndex, type BodyVersion } from './disk-index.js'
import { decodeMeta, encodeMeta, type EntryMeta } from './entry.js'

export const LAYOUT_DIR = 'cachemir-v1'
const TEMP_PREFIX = '.tmp-'

/** A body being written: read-write, so readers can follow the fill from the same file. */
export interface TempBody {
  readonly hash: string
  readonly id: string
  readonly path: string
  readonly fh: FileHandle
}

/**
 * What a URL's responses vary on. `generation` is part of every variant's key and is raised when
 * the URL is invalidated, so variants stored before that can never be found again.
 */
export interface VaryMarker {
  readonly names: readonly string[] | null
  readonly generation: number
}

export interface ScanResult {
  readonly entries: number
  readonly removedFiles: number
  readonly durationMs: number
}

export class DiskStore {
  readonly root: string
  readonly index: DiskIndex
  /** Files older than this that no entry references are leftovers of an earlier process. */
  readonly #startedAt: number
  /** Hashes with a `.vary` record: found by the scan, or written by this process. */
  readonly #varyFiles = new Set<string>()
  /**
   * Whether #varyFiles is the whole truth once the scan is done: not when other processes share
   * the directory (a worker group), since they write records this one does not see.
   */
  #varyFilesComplete = true

  /** Other processes write to this cache directory too (see #varyFilesComplete). */
  shared(): void {
    this.#varyFilesComplete = false
  }
  readonly #log: Logger

  private constructor(cacheDir: string, maxBytes: number, log: Logger, onEvicted: (hash: string) => void, leftoversBefore: number) {
    this.root = join(cacheDir, LAYOUT_DIR, 'objects')
    this.#startedAt = leftoversBefore
    this.#log = log
    this.index = new DiskIndex({
      maxBytes,
      onEvict: (hash, version) => {
        onEvicted(hash)
        void this.#unlinkEntry(hash, version)
      },
    })
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
    const probe = join(store.root, `${TEMP_PREFIX}probe-${process.pid}-${randomBytes(4).toString('hex')}`)
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

  #dir(hash: string): string {
    return join(this.root, hash.slice(0, 2))
  }

  #metaPath(hash: string): string {
    return join(this.#dir(hash), `${hash}.meta`)
  }

  bodyPath(hash: string, bodyFile: string): string {
    return join(this.#dir(hash), bodyFile)
  }

  /** Reads and validates the meta record for `hash`; undefined when absent, corrupt entries are removed. */
  async read(hash: string): Promise<EntryMeta | undefined> {
    if (this.index.complete && !this.index.has(hash)) return undefined
    let text: string
    try {
      text = await readFile(this.#metaPath(hash), 'utf8')
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
    const id = randomBytes(6).toString('hex')
    await this.#ensureDir(hash)
    const path = join(this.#dir(hash), `${TEMP_PREFIX}${hash}.${id}.body`)
    const fh = await open(path, 'wx+').catch(async (err: unknown) => {
      // The bucket was removed behind our back (an operator, a purge tool): make it again.
      if (errorCode(err) !== 'ENOENT') throw err
      this.#dirs.delete(this.#dir(hash))
      await this.#ensureDir(hash)
      return open(path, 'wx+')
    })
    return { hash, id, path, fh }
  }

  /** Buckets known to exist: a fill does not pay a mkdir per object (at most 256 of them). */
  readonly #dirs = new Set<string>()

  async #ensureDir(hash: string): Promise<void> {
    const dir = this.#dir(hash)
    if (this.#dirs.has(dir)) return
    await mkdir(dir, { recursive: true })
    this.#dirs.add(dir)
  }

  /** The final file name for a temp body of `bytes` bytes. */
  bodyFileFor(temp: TempBody, bytes: number): string {
    return `${temp.hash}.${bodyVersion(temp.id, bytes)}.body`
  }

  /**
   * Moves a finished temp body into place and points the meta at it. `previous` is the version
   * being replaced, if the caller knows it. Throws on I/O errors (the caller drops the entry).
   */
  async commit(temp: TempBody, meta: EntryMeta, previous: EntryMeta | undefined): Promise<void> {
    const version = bodyVersion(temp.id, meta.bodyBytes)
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
    if (indexed !== undefined) old.add(`${temp.hash}.${indexed}.body`)
    if (previous !== undefined) old.add(previous.bodyFile)
    old.delete(meta.bodyFile)
    for (const file of old) await unlink(this.bodyPath(temp.hash, file)).catch(() => {})
  }

  /** The Vary record of the URL hashed to `hash`, or undefined when there is none. */
  async readVary(hash: string): Promise<VaryMarker | undefined> {
    // Most URLs never vary: once the scan has listed every bucket, a URL without a record here
    // costs no file-system call (this matters on every miss).
    if (this.index.complete && this.#varyFilesComplete && !this.#varyFiles.has(hash)) return undefined
    const text = await readFile(join(this.#dir(hash), `${hash}.vary`), 'utf8').catch(() => undefined)
    if (text === undefined) return undefined
    try {
      const { names, generation } = JSON.parse(text) as { names?: unknown; generation?: unknown }
      if (!Number.isSafeInteger(generation)) return undefined
      if (names !== null && !(Array.isArray(names) && names.every((n) => typeof n === 'string'))) return undefined
      return { names: names, generation: generation as number }
    } catch {
      return undefined
    }
  }

  /** Writes a URL's Vary record atomically. */
  async writeVary(hash: string, key: string, marker: VaryMarker): Promise<void> {
    this.#varyFiles.add(hash)
    const path = join(this.#dir(hash), `${hash}.vary`)
    await mkdir(this.#dir(hash), { recursive: true })
    const tmp = join(this.#dir(hash), `${TEMP_PREFIX}${hash}.${randomBytes(4).toString('hex')}.vary`)
    try {
      await writeFile(tmp, JSON.stringify({ key, ...marker }))
      await rename(tmp, path)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
  }

  /** Atomically replaces the meta record (after a 304, or at commit). */
  async writeMeta(hash: string, meta: EntryMeta): Promise<void> {
    const tmp = join(this.#dir(hash), `${TEMP_PREFIX}${hash}.${randomBytes(4).toString('hex')}.meta`)
    try {
      await writeFile(tmp, encodeMeta(meta))
      await rename(tmp, this.#metaPath(hash))
    } catch (err) {
      await unlink(tmp).catch(() => {})
      throw err
    }
  }

  /** True when `meta` is still the version on disk for `hash` (not replaced or removed since). */
  async isCurrent(hash: string, meta: EntryMeta): Promise<boolean> {
    const version = this.index.get(hash)
    if (version !== undefined) return `${hash}.${version}.body` === meta.bodyFile
    if (this.index.complete) return false
    return (await this.#metaOf(hash))?.bodyFile === meta.bodyFile
  }

  /** Removes an entry's files (meta first, so a crash in between leaves only an orphan body). */
  async remove(hash: string, meta?: EntryMeta): Promise<void> {
    const version = this.index.get(hash)
    this.index.delete(hash)
    await unlink(this.#metaPath(hash)).catch(() => {})
    if (version !== undefined) await unlink(this.bodyPath(hash, `${hash}.${version}.body`)).catch(() => {})
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
    const bodyFile = `${hash}.${version}.body`
    if ((await this.#metaOf(hash))?.bodyFile === bodyFile) await unlink(this.#metaPath(hash)).catch(() => {})
    await unlink(this.bodyPath(hash, bodyFile)).catch((err: unknown) => {
      if (errorCode(err) !== 'ENOENT') this.#log.warn({ err, hash }, 'could not remove evicted body')
    })
  }

  /**
   * Lists every bucket once: indexes complete entries, removes leftovers of earlier processes
   * (temp files, orphan bodies and metas, superseded versions). Runs in the background while the
   * server already answers; reads a meta file only when a bucket is ambiguous.
   */
  async scan(): Promise<ScanResult> {
    const t0 = Date.now()
    let removedFiles = 0
    let buckets: string[] = []
    try {
      buckets = await readdir(this.root)
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err
    }
    // Requests are served meanwhile: after every 64 entries the scan lets the I/O callbacks that
    // requests wait for run. Without this a hit waits for a whole bucket at each of its file
    // operations (median hit during a scan of 200,000 entries: 19 ms without, 6 ms with).
    let indexed = 0
    for (const bucket of buckets) {
      if (!/^[0-9a-f]{2}$/.test(bucket)) continue
      const dir = join(this.root, bucket)
      const metas = new Set<string>()
      const bodies = new Map<string, string[]>()
      const leftovers: string[] = []
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name.startsWith(TEMP_PREFIX)) leftovers.push(name)
        else if (name.endsWith('.vary')) this.#varyFiles.add(name.slice(0, -5))
        else if (name.endsWith('.meta')) metas.add(name.slice(0, -5))
        else if (name.endsWith('.body')) {
          const hash = name.slice(0, name.indexOf('.'))
          const list = bodies.get(hash)
          if (list === undefined) bodies.set(hash, [name])
          else list.push(name)
        } else leftovers.push(name)
      }
      for (const [hash, files] of bodies) {
        if (++indexed % 64 === 0) await new Promise<void>((resolve) => setImmediate(resolve))
        let keep: string | undefined
        if (metas.has(hash) && files.length === 1) keep = files[0]
        else if (metas.has(hash)) keep = (await this.#metaOf(hash))?.bodyFile
        if (keep !== undefined && files.includes(keep)) {
          const version = versionOfBodyFile(keep)
          if (version !== undefined) this.index.addScanned(hash, version)
        }
        for (const file of files) if (file !== keep) removedFiles += await this.#removeIfOld(join(dir, file))
        metas.delete(hash)
      }
      for (const hash of metas) removedFiles += await this.#removeIfOld(join(dir, `${hash}.meta`))
      for (const name of leftovers) removedFiles += await this.#removeIfOld(join(dir, name))
    }
    this.index.complete = true
    return { entries: this.index.entries, removedFiles, durationMs: Date.now() - t0 }
  }

  async #metaOf(hash: string): Promise<EntryMeta | undefined> {
    const text = await readFile(this.#metaPath(hash), 'utf8').catch(() => undefined)
    if (text === undefined) return undefined
    const meta = decodeMeta(text, hash)
    return typeof meta === 'string' ? undefined : meta
  }

  /** Unlinks a file unless this process created it (it may belong to a fill in progress). */
  async #removeIfOld(path: string): Promise<number> {
    try {
      const { mtimeMs } = await stat(path)
      if (mtimeMs >= this.#startedAt) return 0
      await unlink(path)
      return 1
    } catch {
      return 0
    }
  }

  /** Every valid entry's meta, bucket by bucket (for listing, purging and verifying tools). */
  async *list(): AsyncGenerator<{ hash: string; meta: EntryMeta }> {
    const buckets = await readdir(this.root).catch(() => [] as string[])
    for (const bucket of buckets.sort()) {
      const names = await readdir(join(this.root, bucket)).catch(() => [] as string[])
      for (const name of names.sort()) {
        if (name.startsWith(TEMP_PREFIX) || !name.endsWith('.meta')) continue
        const hash = name.slice(0, -5)
        const meta = await this.#metaOf(hash)
        if (meta !== undefined) yield { hash, meta }
      }
    }
  }
}

/** `<hash>.<id>.<bytes>.body` -> `<id>.<bytes>`, or undefined for a name of another shape. */
function versionOfBodyFile(file: string): BodyVersion | undefined {
  const m = /^[0-9a-f]{64}\.([0-9a-f]+)\.(\d+)\.body$/.exec(file)
  return m === null ? undefined : bodyVersion(m[1] as string, Number(m[2]))
}
