// src/upstream/body-pump.ts
// Copies a storable upstream body into its temp file while readers follow it, hashes it, keeps a
// copy in memory when small enough for the memory tier, and commits it to the store.
//
// The pump's only backpressure is the disk: readers never slow it (see fill.ts). If the disk
// refuses a write or the body outgrows the disk budget, the pump stops caching and relays the
// rest from memory, waiting for every reader to take each chunk before reading the next.
//
// Integrity (FillParams.integrity, src/integrity/): the body is also hashed with each algorithm
// the published digest may use, and `committedBytes` stays at the start of the latest chunk, so
// no reader can have the last bytes before the whole body is in and matches the digest. A
// mismatch is returned like a mid-body failure: nothing is stored, every response is cut short.

import { createHash, type Hash } from 'node:crypto'
import { unlink } from 'node:fs/promises'
import type { Logger } from 'pino'
import { IntegrityError, UpstreamBodyError, type CachemirError } from '../errors.js'
import type { CachedEntry, EntryMeta, EntryMetaDraft } from '../cache/entry.js'
import type { TempBody } from '../cache/disk-store.js'
import type { TieredStore } from '../cache/tiered-store.js'
import type { DigestAlgorithm, ExpectedDigest, IntegrityCheck } from '../integrity/expected-digest.js'
import { discardBody, toUpstreamError, type UpstreamResponse } from './client.js'

/** What the pump tells the fill, and what it asks of it. */
export interface PumpHooks {
  /** A chunk arrived: readers may take it. */
  readonly onProgress: () => void
  /** Caching stopped (the pump relays from memory): nobody new may join the fill. */
  readonly onRelay: () => void
  /** Resolves once every reader has taken the bytes below `pos` (or was cut off). */
  readonly waitForReaders: (pos: number) => Promise<void>
}

/** The check a body must pass before its last chunk is released, and its lookup (started with the fill). */
export interface PumpIntegrity {
  readonly check: IntegrityCheck
  readonly expected: Promise<ExpectedDigest | undefined>
}

/** What the stored entry records of the response, besides its body. */
export interface ResponseRecord {
  /** The key the entry is stored under (the URL's, or its variant's). */
  readonly key: string
  readonly status: number
  readonly statusText: string
  readonly headers: string[]
  readonly vary: Record<string, string> | undefined
}

export class BodyPump {
  /** Bytes readers may take: those received so far, less the latest chunk while an integrity check is pending. */
  committedBytes = 0
  /** Bytes in the temp file; below this a reader may read the file. */
  fileBytes = 0
  /** The disk failed or the body outgrew the budget: later chunks exist only as `lastChunk`. */
  relaying = false
  /** The most recent chunk and where it starts, for readers that are caught up. */
  lastChunk: { readonly pos: number; readonly buf: Buffer } | undefined

  readonly #temp: TempBody
  readonly #store: TieredStore
  readonly #log: Logger
  readonly #key: string
  readonly #hooks: PumpHooks
  readonly #digest = createHash('sha256')
  #sha256: Buffer | undefined
  /** Bytes received so far (committedBytes lags behind by the held-back chunk while checking). */
  #receivedBytes = 0
  readonly #integrity: PumpIntegrity | undefined
  /** The other digests the integrity check may need (sha256 is always computed). */
  readonly #checkDigests = new Map<DigestAlgorithm, Hash>()
  readonly #keepLimitBytes: number
  /** The body so far while it fits the memory tier; undefined once it outgrew it. */
  #kept: Buffer[] | undefined = []

  /** `key` is the URL's cache key, for logs. */
  constructor(temp: TempBody, store: TieredStore, log: Logger, key: string, hooks: PumpHooks, integrity?: PumpIntegrity) {
    this.#temp = temp
    this.#store = store
    this.#log = log
    this.#key = key
    this.#hooks = hooks
    this.#keepLimitBytes = store.memory.maxBodyBytes
    this.#integrity = integrity
    for (const algorithm of integrity?.check.algorithms ?? []) {
      if (algorithm !== 'sha256' && !this.#checkDigests.has(algorithm)) this.#checkDigests.set(algorithm, createHash(algorithm))
    }
  }

  /**
   * Reads the whole upstream body into the temp file (or relays it). Resolves undefined once every
   * byte has arrived (and matched the integrity check, if any), or the error when the upstream
   * failed mid-body, sent fewer or more bytes than `totalBytes`, or sent a body whose digest is
   * not the published one; the temp file is left to `discard()` then.
   */
  async receive(response: UpstreamResponse, totalBytes: number | undefined): Promise<CachemirError | undefined> {
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        const pos = this.#receivedBytes
        this.#digest.update(chunk)
        for (const digest of this.#checkDigests.values()) digest.update(chunk)
        this.#keep(chunk, pos)
        // Readers that are caught up take the chunk from memory while it is being written; the
        // file serves only the bytes below fileBytes, which are on disk.
        this.lastChunk = this.relaying && this.#integrity !== undefined ? this.#withHeldBytes(chunk, pos) : { pos, buf: chunk }
        this.#receivedBytes += chunk.length
        // Integrity: everything but this chunk may go out; it waits for the next one, or the check.
        this.committedBytes = this.#integrity === undefined ? this.#receivedBytes : pos
        this.#hooks.onProgress()
        if (!this.relaying) await this.#writeOrRelay(chunk, pos)
        // Relaying: this chunk lives only in memory, so every reader takes it before the next.
        if (this.relaying) await this.#hooks.waitForReaders(this.committedBytes)
      }
      if (totalBytes !== undefined && this.#receivedBytes !== totalBytes) {
        throw new UpstreamBodyError(response.url.href, `got ${this.#receivedBytes} of ${totalBytes} bytes`)
      }
    } catch (err) {
      discardBody(response.body)
      this.#log.warn({ err, key: this.#key, bytes: this.#receivedBytes }, 'upstream body failed; nothing stored')
      return err instanceof UpstreamBodyError ? err : toUpstreamError('GET', response.url, err)
    }
    const mismatch = await this.#verify(response.url)
    if (mismatch !== undefined) return mismatch
    // Checked (or nothing to check): the held-back chunk may go out.
    if (this.committedBytes !== this.#receivedBytes) {
      this.committedBytes = this.#receivedBytes
      this.#hooks.onProgress()
    }
    return undefined
  }

  /**
   * Compares the whole body's digest with the published one. A mismatch is logged once (the file,
   * the expected and the actual digest) and counted; no published digest means no check.
   */
  async #verify(url: URL): Promise<IntegrityError | undefined> {
    const integrity = this.#integrity
    if (integrity === undefined) return undefined
    const want = await integrity.expected
    const actual =
      want === undefined ? undefined : want.algorithm === 'sha256' ? this.#finalSha256() : this.#checkDigests.get(want.algorithm)?.digest()
    if (want === undefined || actual === undefined) {
      integrity.check.record('unchecked')
      return undefined
    }
    if (actual.equals(want.expected)) {
      integrity.check.record('passed')
      return undefined
    }
    integrity.check.record('failed')
    const [expected, got] = [want.expected.toString('hex'), actual.toString('hex')]
    this.#log.warn(
      { key: this.#key, url: url.href, algorithm: want.algorithm, expected, actual: got, source: want.source },
      'integrity check failed: not stored',
    )
    return new IntegrityError(url.href, want.algorithm)
  }

  /**
   * Relaying with a check pending: the chunk before this one is not released yet, and it is not in
   * the file, so the chunk kept for readers starts with it (two chunks in memory, not one).
   */
  #withHeldBytes(chunk: Buffer, pos: number): { readonly pos: number; readonly buf: Buffer } {
    const held = this.lastChunk
    const from = this.committedBytes
    if (held === undefined || held.pos + held.buf.length !== pos || from >= pos || from < held.pos) return { pos, buf: chunk }
    return { pos: from, buf: Buffer.concat([held.buf.subarray(from - held.pos), chunk]) }
  }

  #finalSha256(): Buffer {
    this.#sha256 ??= this.#digest.digest()
    return this.#sha256
  }

  /** The whole body is in the file: readers take it from there, so the last chunk can go. */
  dropLastChunk(): void {
    this.lastChunk = undefined
  }

  /**
   * Commits the received body to the store as the entry for `record`, answered by the exchange
   * that `response` timed, replacing `previous`; returns the entry. On failure the temp file is
   * still there: `discard()` it.
   */
  async commit(
    record: ResponseRecord,
    response: Pick<UpstreamResponse, 'requestAt' | 'responseAt'>,
    previous: EntryMeta | undefined,
  ): Promise<CachedEntry> {
    const meta: EntryMetaDraft = {
      v: 1,
      key: record.key,
      status: record.status,
      statusText: record.statusText,
      headers: record.headers,
      requestAt: response.requestAt,
      responseAt: response.responseAt,
      storedAt: response.responseAt,
      bodyBytes: this.#receivedBytes,
      sha256: this.#finalSha256().toString('hex'),
      vary: record.vary,
    }
    const body = this.#kept === undefined ? undefined : Buffer.concat(this.#kept, this.#receivedBytes)
    return await this.#store.commit(this.#temp, meta, previous, body)
  }

  /** The whole body, when it was small enough to keep in memory (read once it has all arrived). */
  get keptBody(): Buffer | undefined {
    return this.#kept === undefined ? undefined : Buffer.concat(this.#kept, this.#receivedBytes)
  }

  /** Removes the temp file (its handle is closed by the fill once no reader needs it). */
  async discard(): Promise<void> {
    await unlink(this.#temp.path).catch(() => {})
  }

  /** Keeps the body in memory while it fits the memory tier; once it does not, for good. */
  #keep(chunk: Buffer, pos: number): void {
    if (this.#kept === undefined) return
    if (pos + chunk.length <= this.#keepLimitBytes) this.#kept.push(chunk)
    else this.#kept = undefined
  }

  /**
   * Writes a chunk to the temp file. If the disk refuses (ENOSPC, EIO) or the body outgrows the
   * disk budget, the pump stops caching and relays the rest from memory: clients still get the
   * whole response, nothing partial is stored, and the error is logged once.
   */
  async #writeOrRelay(chunk: Buffer, pos: number): Promise<void> {
    if (!this.#store.fits(pos + chunk.length)) return this.#startRelay(undefined, 'too-large')
    try {
      let off = 0
      while (off < chunk.length) {
        const { bytesWritten } = await this.#temp.fh.write(chunk, off, chunk.length - off, pos + off)
        off += bytesWritten
      }
      this.fileBytes = pos + chunk.length
    } catch (err) {
      this.#startRelay(err, 'write-failed')
    }
  }

  #startRelay(err: unknown, reason: 'too-large' | 'write-failed'): void {
    this.relaying = true
    this.#log.warn(
      { err, key: this.#key, bytes: this.#receivedBytes, reason },
      'cache write stopped; passing the response through uncached',
    )
    // Nobody new may join: the bytes relayed so far are gone from memory.
    this.#hooks.onRelay()
    void this.discard()
  }
}
