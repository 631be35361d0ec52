// src/upstream/body-pump.ts
// Copies a storable upstream body into its temp file while readers follow it, hashes it, keeps a
// copy in memory when small enough for the memory tier, and commits it to the store.
//
// The pump's only backpressure is the disk: readers never slow it (see fill.ts). If the disk
// refuses a write or the body outgrows the disk budget, the pump stops caching and relays the
// rest from memory, waiting for every reader to take each chunk before reading the next.

import { createHash } from 'node:crypto'
import { unlink } from 'node:fs/promises'
import type { Logger } from 'pino'
import { UpstreamBodyError, type CachemirError } from '../errors.js'
import type { CachedEntry, EntryMeta, EntryMetaDraft } from '../cache/entry.js'
import type { TempBody } from '../cache/disk-store.js'
import type { TieredStore } from '../cache/tiered-store.js'
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
  /** Bytes received so far; readers may take bytes below this. */
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
  readonly #keepLimitBytes: number
  /** The body so far while it fits the memory tier; undefined once it outgrew it. */
  #kept: Buffer[] | undefined = []

  /** `key` is the URL's cache key, for logs. */
  constructor(temp: TempBody, store: TieredStore, log: Logger, key: string, hooks: PumpHooks) {
    this.#temp = temp
    this.#store = store
    this.#log = log
    this.#key = key
    this.#hooks = hooks
    this.#keepLimitBytes = store.memory.maxBodyBytes
  }

  /**
   * Reads the whole upstream body into the temp file (or relays it). Resolves undefined once every
   * byte has arrived, or the error when the upstream failed mid-body or sent fewer or more bytes
   * than `totalBytes`; the upstream body is dropped then, and the temp file is left to `discard()`.
   */
  async receive(response: UpstreamResponse, totalBytes: number | undefined): Promise<CachemirError | undefined> {
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        const pos = this.committedBytes
        this.#digest.update(chunk)
        this.#keep(chunk, pos)
        // Readers that are caught up take the chunk from memory while it is being written; the
        // file serves only the bytes below fileBytes, which are on disk.
        this.lastChunk = { pos, buf: chunk }
        this.committedBytes += chunk.length
        this.#hooks.onProgress()
        if (!this.relaying) await this.#writeOrRelay(chunk, pos)
        // Relaying: this chunk lives only in memory, so every reader takes it before the next.
        if (this.relaying) await this.#hooks.waitForReaders(this.committedBytes)
      }
      if (totalBytes !== undefined && this.committedBytes !== totalBytes) {
        throw new UpstreamBodyError(response.url.href, `got ${this.committedBytes} of ${totalBytes} bytes`)
      }
      return undefined
    } catch (err) {
      discardBody(response.body)
      this.#log.warn({ err, key: this.#key, bytes: this.committedBytes }, 'upstream body failed; nothing stored')
      return err instanceof UpstreamBodyError ? err : toUpstreamError('GET', response.url, err)
    }
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
      bodyBytes: this.committedBytes,
      sha256: this.#digest.digest('hex'),
      vary: record.vary,
    }
    const body = this.#kept === undefined ? undefined : Buffer.concat(this.#kept, this.committedBytes)
    return await this.#store.commit(this.#temp, meta, previous, body)
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
      { err, key: this.#key, bytes: this.committedBytes, reason },
      'cache write stopped; passing the response through uncached',
    )
    // Nobody new may join: the bytes relayed so far are gone from memory.
    this.#hooks.onRelay()
    void this.discard()
  }
}
