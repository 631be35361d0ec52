// src/upstream/fill.ts
// One fill per cache key: fetches the object once, writes it to a temp file, and lets any number
// of readers follow it while it grows.
//
// Readers never slow the fill: the fill writes each upstream chunk to the temp file (its only
// backpressure is the disk) and raises `committedBytes`. Each reader reads from the file at its
// own position, at its own pace, holding at most one chunk; a reader that is caught up takes the
// chunk just written straight from memory. So memory stays flat however large the object and
// however slow or many the clients. A slow client simply falls behind and reads older bytes
// from the file later; the fill finishes (and is stored) even if every client has gone.
//
// If the upstream fails mid-body the temp file is deleted and every reader is told, so each
// client's response ends abnormally (connection closed before the announced length).

import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { unlink, type FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { CacheRule, Route } from '../config.js'
import { InternalError, isCachemirError, UpstreamBodyError, type CachemirError } from '../errors.js'
import type { CachedEntry, EntryMeta, EntryMetaDraft } from '../cache/entry.js'
import type { TempBody } from '../cache/disk-store.js'
import type { TieredStore } from '../cache/tiered-store.js'
import { getRaw, stripHopByHop, varyNames, withoutFields } from '../http/headers.js'
import { canStore, fieldsNotStored, type StoreDecision } from '../policy/freshness.js'
import { varyRecord, variantKey } from '../proxy/cache-key.js'
import { isRedirect, redirectWithinRoute, rewriteLocation } from './redirects.js'
import { discardBody, toUpstreamError, type UpstreamClient, type UpstreamResponse } from './client.js'

/** Where one reader is in the body. */
export interface Cursor {
  pos: number
  /** Ends this reader's response early (set while it follows the body). */
  cut?: () => void
}

/** What the upstream's answer turned out to be, known once its headers are in. */
export type FillOutcome =
  /** A storable response: read the body with `readAt`/`waitForProgress`. */
  | { readonly kind: 'stream' }
  /** 304 to our conditional request: the stored entry was refreshed. */
  | { readonly kind: 'not-modified'; readonly entry: CachedEntry }
  /** Not storable: only the initiator may `claimBody()`; other waiters fetch for themselves. */
  | { readonly kind: 'uncacheable'; readonly response: UpstreamResponse; readonly reason: string }
  /** No usable answer from any upstream. */
  | { readonly kind: 'failed'; readonly error: CachemirError }

export interface FillParams {
  /** The URL's cache key (path and query). */
  readonly key: string
  /**
   * Which fill this is for coalescing: the variant's key when the URL's Vary names are known, the
   * URL's key otherwise, or a unique key for a request that must not be shared (credentials).
   */
  readonly registryKey: string
  /** The request carried Authorization: stored only when the response allows it (RFC 9111 §3.5). */
  readonly authorized: boolean
  readonly route: Route
  readonly relativePath: string
  /** End-to-end request headers to send upstream (no conditionals; the fill adds its own). */
  readonly headers: Record<string, string>
  /** The initiating client's request headers, for recording Vary values. */
  readonly requestHeaders: IncomingHttpHeaders
  readonly requestCacheControl: string | undefined
  readonly rule: CacheRule | undefined
  /** The stale entry being revalidated, if any. */
  readonly previous: CachedEntry | undefined
}

/** Redirect hops a fill follows at most (routes with followRedirects). */
const MAX_REDIRECTS = 5

/** RFC 9111 §3.2: fields a 304 must not overwrite in the stored response. */
const NOT_UPDATED_BY_304 = new Set(['content-length', 'content-encoding', 'content-range', 'transfer-encoding'])

export class Fill {
  readonly key: string
  readonly params: FillParams
  readonly outcome: Promise<FillOutcome>
  state: 'waiting' | 'streaming' | 'complete' | 'failed' = 'waiting'
  status = 0
  statusText = ''
  /** The header block that is being stored (hop-by-hop removed). */
  headers: string[] = []
  /** Announced body length, when the upstream sent Content-Length. */
  totalBytes: number | undefined
  /** The whole body is in the temp file and checked (it may still be committing to the store). */
  bodyComplete = false

  /**
   * Every byte of the body has arrived (its last chunk may still be on its way to disk). Clients
   * can have the whole response by then, so a request that follows sees this fill as committing.
   */
  get bodyReceived(): boolean {
    return this.bodyComplete || (this.state === 'streaming' && this.totalBytes !== undefined && this.committedBytes >= this.totalBytes)
  }
  /** Bytes received so far; readers may take bytes below this. */
  committedBytes = 0
  /** Bytes in the temp file; below this a reader may read the file. */
  fileBytes = 0
  /** The disk failed or the body outgrew the budget: later chunks exist only as `lastChunk`. */
  relaying = false
  /** The most recent chunk and where it starts, for readers that are caught up. */
  lastChunk: { readonly pos: number; readonly buf: Buffer } | undefined
  error: Error | undefined
  /** The stored entry, once the fill completed and was committed. */
  entry: CachedEntry | undefined
  /** Whether the response was written to cache (false for a failed commit). */
  stored = false
  /** Milliseconds until the upstream's headers arrived. */
  upstreamMs = 0
  /** For a response with Vary: the initiating request's values of the named headers. */
  vary: Record<string, string> | undefined
  /** The key the response is stored under: the URL's, or its variant's when the response varies. */
  storeKey: string

  readonly #store: TieredStore
  readonly #log: Logger
  readonly #abort = new AbortController()
  #temp: TempBody | undefined
  #readers = 0
  readonly #cursors = new Set<Cursor>()
  #cursorWaiter: (() => void) | undefined
  #waiters: (() => void)[] = []
  #claimable: Readable | undefined
  #invalidated = false
  readonly #onDone: () => void

  constructor(params: FillParams, store: TieredStore, upstream: UpstreamClient, log: Logger, onDone: () => void) {
    this.key = params.key
    this.storeKey = params.key
    this.params = params
    this.#store = store
    this.#log = log
    this.#onDone = onDone
    this.outcome = this.#run(upstream)
  }

  /** The file to read committed bytes from (valid while the reader holds a reference). */
  get file(): FileHandle | undefined {
    return this.#temp?.fh
  }

  /**
   * Registers a reader and returns its cursor; the temp file stays open until every reader has
   * released it. A reader advances `cursor.pos` (and calls `moved()`) as it takes bytes.
   */
  acquire(): Cursor {
    this.#readers++
    const cursor: Cursor = { pos: 0 }
    this.#cursors.add(cursor)
    return cursor
  }

  release(cursor: Cursor): void {
    this.#readers--
    this.#cursors.delete(cursor)
    this.moved()
    this.#closeIfIdle()
  }

  /** This reader will not read the body (it waits for the store, or fetches its own): never wait for it. */
  detach(cursor: Cursor): void {
    cursor.pos = Number.POSITIVE_INFINITY
    this.moved()
  }

  /** A reader's cursor advanced. */
  moved(): void {
    const wake = this.#cursorWaiter
    this.#cursorWaiter = undefined
    wake?.()
  }

  /** Resolves at the next change: more bytes, completion or failure. */
  waitForProgress(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Resolves once the fill is complete (stored or not) or failed. */
  async whenDone(): Promise<void> {
    while (this.state !== 'complete' && this.state !== 'failed') await this.waitForProgress()
  }

  /** Hands the uncacheable upstream body to one consumer (the client that started the fill). */
  claimBody(): Readable | undefined {
    const body = this.#claimable
    this.#claimable = undefined
    return body
  }

  /**
   * The URL was invalidated (a successful unsafe request) while this fill ran: its clients still
   * get the response they asked for, but it is not stored and no later request joins it.
   */
  invalidate(): void {
    this.#invalidated = true
    this.#onDone()
  }

  /** Stops the fill (server shutdown): readers see a failure. */
  abort(): void {
    this.#abort.abort()
    this.moved()
  }

  async #run(upstream: UpstreamClient): Promise<FillOutcome> {
    const { route, relativePath, previous } = this.params
    const headers = { ...this.params.headers }
    if (previous !== undefined) Object.assign(headers, conditionalHeaders(previous.meta))
    const t0 = Date.now()
    // A miss will most likely be stored: open its temp file while the upstream thinks, so the
    // first byte is not held up by the file system once the answer is in.
    const early = previous === undefined ? settle(this.#store.createTemp(this.storeKey)) : undefined
    const earlyKey = this.storeKey
    let response: UpstreamResponse
    try {
      response = await upstream.request(route, { method: 'GET', relativePath, headers, signal: this.#abort.signal })
      // §4.3.4: a 304 naming a different strong validator does not select the stored response.
      // Ask again, unconditionally, rather than pair the old body with new headers.
      if (response.status === 304 && previous !== undefined && !selectsStored(previous.meta, response.headers)) {
        response.body.resume()
        response = await upstream.request(route, { method: 'GET', relativePath, headers: this.params.headers, signal: this.#abort.signal })
      }
      // Redirects within the route are followed when the route says so; the final answer is
      // stored under the key that was asked for.
      for (let hop = 0; route.followRedirects && hop < MAX_REDIRECTS && isRedirect(response.status); hop++) {
        const next = redirectWithinRoute(route, response.url, getRaw(response.headers, 'location'))
        if (next === undefined) break
        discardBody(response.body)
        response = await upstream.request(route, {
          method: 'GET',
          relativePath: next,
          headers: this.params.headers,
          signal: this.#abort.signal,
        })
      }
    } catch (err) {
      this.upstreamMs = Date.now() - t0
      discardTemp(early)
      return this.#finishEarly({
        kind: 'failed',
        error: isCachemirError(err) ? err : new InternalError(`fill failed: GET ${this.key}`, { cause: err }),
      })
    }
    this.upstreamMs = Date.now() - t0
    this.status = response.status
    this.statusText = response.statusText
    // Fields the response keeps from shared caches (private="x", no-cache="x") never reach joiners or disk.
    const hidden = fieldsNotStored(response.headers)
    const kept = hidden.size === 0 ? stripHopByHop(response.headers) : withoutFields(stripHopByHop(response.headers), hidden)
    // A redirect to one of the route's upstreams sends the client back through the mirror.
    this.headers = isRedirect(response.status) ? rewriteLocation(kept, route, response.url) : kept
    const names = varyNames(getRaw(this.headers, 'vary'))
    if (names !== undefined) {
      this.vary = varyRecord(names, this.params.requestHeaders)
      const { generation } = await this.#store.varyFor(this.key)
      this.storeKey = variantKey(this.key, generation, this.vary)
    }

    if (response.status === 304 && previous !== undefined) {
      response.body.resume()
      if (this.#invalidated) {
        const entry: CachedEntry = { ...previous, meta: this.#metaAfter304(previous.meta, response), freshness: undefined }
        return this.#finishEarly({ kind: 'not-modified', entry })
      }
      try {
        const entry = await this.#store.refresh(previous, this.#metaAfter304(previous.meta, response))
        return this.#finishEarly({ kind: 'not-modified', entry })
      } catch (err) {
        this.#log.warn({ err, key: this.key }, 'cache metadata update failed')
        const entry: CachedEntry = { ...previous, meta: this.#metaAfter304(previous.meta, response), freshness: undefined }
        return this.#finishEarly({ kind: 'not-modified', entry })
      }
    }

    const decision = this.#decide(response)
    // The early temp file is of no use for an answer not stored, or stored under a variant key.
    const pre = decision.storable && this.storeKey === earlyKey ? early : (discardTemp(early), undefined)
    if (!decision.storable) {
      this.#claimable = response.body
      // Nobody claimed it (the initiator left, or the fill was started by a tool): drop the body.
      setImmediate(() => {
        const body = this.claimBody()
        if (body !== undefined) discardBody(body)
      })
      return this.#finishEarly({ kind: 'uncacheable', response, reason: decision.reason })
    }
    try {
      const made = pre === undefined ? undefined : await pre
      if (made instanceof Error) throw made
      this.#temp = made ?? (await this.#store.createTemp(this.storeKey))
    } catch (err) {
      this.#log.warn({ err, key: this.key }, 'cannot create cache file; passing through')
      this.#claimable = response.body
      setImmediate(() => {
        const body = this.claimBody()
        if (body !== undefined) discardBody(body)
      })
      return this.#finishEarly({ kind: 'uncacheable', response, reason: 'disk' })
    }
    this.state = 'streaming'
    void this.#pump(response)
    return { kind: 'stream' }
  }

  #decide(response: UpstreamResponse): StoreDecision {
    const decision = canStore(
      { status: response.status, headers: this.headers, requestAt: response.requestAt, responseAt: response.responseAt },
      { cacheControl: this.params.requestCacheControl, authorized: this.params.authorized },
      this.params.rule,
    )
    if (!decision.storable) return decision
    const length = getRaw(this.headers, 'content-length')
    if (length !== undefined) {
      this.totalBytes = Number(length)
      if (!Number.isSafeInteger(this.totalBytes) || this.totalBytes < 0) return { storable: false, reason: 'bad-length' }
      if (!this.#store.fits(this.totalBytes)) return { storable: false, reason: 'too-large' }
    }
    return decision
  }

  /**
   * Writes a chunk to the temp file. If the disk refuses (ENOSPC, EIO) or the body outgrows the
   * disk budget, the fill stops caching and relays the rest from memory: clients still get the
   * whole response, nothing partial is stored, and the error is logged once.
   */
  async #writeOrRelay(temp: TempBody, chunk: Buffer, pos: number): Promise<void> {
    if (!this.#store.fits(pos + chunk.length)) return this.#startRelay(temp, undefined, 'larger than the disk budget')
    try {
      let off = 0
      while (off < chunk.length) {
        const { bytesWritten } = await temp.fh.write(chunk, off, chunk.length - off, pos + off)
        off += bytesWritten
      }
      this.fileBytes = pos + chunk.length
    } catch (err) {
      this.#startRelay(temp, err, 'cache write failed')
    }
  }

  #startRelay(temp: TempBody, err: unknown, reason: string): void {
    this.relaying = true
    this.#log.warn({ err, key: this.key, bytes: this.committedBytes }, `${reason}; passing the response through uncached`)
    // Nobody new may join: the bytes relayed so far are gone from memory.
    this.#onDone()
    void unlink(temp.path).catch(() => {})
  }

  /**
   * Resolves once every reader has taken the bytes below `pos` (or left). A reader still behind
   * after the route's body idle time is cut off (its connection closed before the end), so one
   * stalled client cannot freeze the others.
   */
  async #allReadersPast(pos: number): Promise<void> {
    const deadline = Date.now() + this.params.route.timeouts.bodyIdleMs
    for (;;) {
      const behind = [...this.#cursors].filter((cursor) => cursor.pos < pos)
      if (behind.length === 0 || this.#abort.signal.aborted) return
      const left = deadline - Date.now()
      if (left <= 0) {
        for (const cursor of behind) {
          this.#cursors.delete(cursor)
          cursor.cut?.()
        }
        return
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#cursorWaiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  /** Copies the upstream body into the temp file, then commits it to the store. */
  async #pump(response: UpstreamResponse): Promise<void> {
    const temp = this.#temp as TempBody
    const digest = createHash('sha256')
    const keepLimit = this.#store.memory.maxBodyBytes
    let kept: Buffer[] | undefined = []
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        const pos = this.committedBytes
        digest.update(chunk)
        if (kept !== undefined) kept = pos + chunk.length <= keepLimit ? (kept.push(chunk), kept) : undefined
        // Readers that are caught up take the chunk from memory while it is being written; the
        // file serves only the bytes below fileBytes, which are on disk.
        this.lastChunk = { pos, buf: chunk }
        this.committedBytes += chunk.length
        this.#notify()
        if (!this.relaying) await this.#writeOrRelay(temp, chunk, pos)
        // Relaying: this chunk lives only in memory, so every reader takes it before the next.
        if (this.relaying) await this.#allReadersPast(this.committedBytes)
      }
      if (this.totalBytes !== undefined && this.committedBytes !== this.totalBytes) {
        throw new UpstreamBodyError(response.url.href, `got ${this.committedBytes} of ${this.totalBytes} bytes`)
      }
    } catch (err) {
      discardBody(response.body)
      this.error = err instanceof UpstreamBodyError ? err : toUpstreamError('GET', response.url, err)
      this.state = 'failed'
      this.#log.warn({ err, key: this.key, bytes: this.committedBytes }, 'upstream body failed; nothing stored')
      // Leave the registry before any await, so no new request joins a failed fill.
      this.#finish()
      await unlink(temp.path).catch(() => {})
      return
    }
    // Readers can finish their responses now; committing to the store happens behind them.
    this.bodyComplete = true
    this.#notify()
    if (this.relaying) {
      this.state = 'complete'
      this.#finish()
      return
    }
    this.lastChunk = undefined
    if (this.#invalidated) {
      await unlink(temp.path).catch(() => {})
      this.state = 'complete'
      this.#finish()
      return
    }
    try {
      const meta: EntryMetaDraft = {
        v: 1,
        key: this.storeKey,
        status: this.status,
        statusText: this.statusText,
        headers: this.headers,
        requestAt: response.requestAt,
        responseAt: response.responseAt,
        storedAt: response.responseAt,
        bodyBytes: this.committedBytes,
        sha256: digest.digest('hex'),
        vary: this.vary,
      }
      const body = kept === undefined ? undefined : Buffer.concat(kept, this.committedBytes)
      this.entry = await this.#store.commit(temp, meta, this.params.previous?.meta, body)
      await this.#store.setVaryNames(this.key, varyNames(getRaw(this.headers, 'vary')))
      this.stored = true
      // Invalidated while committing: the purge ran before our commit landed; undo it.
      if (this.#invalidated) {
        this.stored = false
        this.entry = undefined
        await this.#store.purge(this.key)
      }
    } catch (err) {
      this.#log.warn({ err, key: this.key }, 'cache write failed; response served but not stored')
      await unlink(temp.path).catch(() => {})
    }
    this.state = 'complete'
    this.#finish()
  }

  #metaAfter304(old: EntryMeta, response: UpstreamResponse): EntryMeta {
    // Fields a shared cache may not keep (Set-Cookie, private="…", no-cache="…") never join the entry.
    const drop = new Set([...NOT_UPDATED_BY_304, 'set-cookie', ...fieldsNotStored(response.headers)])
    const update = withoutFields(stripHopByHop(response.headers), drop)
    const names = new Set<string>()
    for (let i = 0; i < update.length; i += 2) names.add((update[i] as string).toLowerCase())
    const headers = [...withoutFields(old.headers, names), ...update]
    return { ...old, headers, requestAt: response.requestAt, responseAt: response.responseAt }
  }

  #finishEarly(outcome: FillOutcome): FillOutcome {
    this.state = outcome.kind === 'failed' ? 'failed' : 'complete'
    if (outcome.kind === 'failed') this.error = outcome.error
    this.#finish()
    return outcome
  }

  #finish(): void {
    this.#onDone()
    this.#notify()
    this.#closeIfIdle()
  }

  #notify(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  #closeIfIdle(): void {
    if (this.#readers > 0 || (this.state !== 'complete' && this.state !== 'failed')) return
    const temp = this.#temp
    this.#temp = undefined
    if (temp !== undefined) void temp.fh.close().catch(() => {})
  }
}

/** §4.3.4: does a 304 apply to the stored response? Not when it carries a different strong ETag. */
function selectsStored(meta: EntryMeta, headers: readonly string[]): boolean {
  const fresh = getRaw(headers, 'etag')
  const stored = getRaw(meta.headers, 'etag')
  if (fresh === undefined || fresh.startsWith('W/')) return true
  return stored !== undefined && stored === fresh
}

/** Conditional request headers that revalidate a stored response (RFC 9111 §4.3.1). */
export function conditionalHeaders(meta: EntryMeta): Record<string, string> {
  const out: Record<string, string> = {}
  const etag = getRaw(meta.headers, 'etag')
  const lastModified = getRaw(meta.headers, 'last-modified')
  if (etag !== undefined) out['if-none-match'] = etag
  if (lastModified !== undefined) out['if-modified-since'] = lastModified
  return out
}

/** A promise that never rejects: its error becomes its value. */
function settle<T>(promise: Promise<T>): Promise<T | Error> {
  return promise.catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
}

/** Closes and removes a temp file made in advance and not used. */
function discardTemp(early: Promise<TempBody | Error> | undefined): void {
  void early?.then(async (temp) => {
    if (temp instanceof Error) return
    await temp.fh.close().catch(() => {})
    await unlink(temp.path).catch(() => {})
  })
}
