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
// client's response ends abnormally (connection closed before the announced length). A body that
// fails its integrity check (params.integrity, src/integrity/) ends the same way.
//
// This file is the state machine. Its parts: fill-params.ts (what a fill is asked, what it
// answers), fetch-fill-response.ts (the upstream exchange), early-temp.ts, body-pump.ts (the body
// and its commit), fill-readers.ts, and the pure decisions in policy/store-decision.ts (store it
// or not) and policy/revalidation.ts (conditional requests and 304s).

import type { FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { InternalError, isCachemirError } from '../errors.js'
import type { CachedEntry } from '../cache/entry.js'
import type { TempBody } from '../cache/disk-store.js'
import type { TieredStore } from '../cache/tiered-store.js'
import { getRaw, varyNames } from '../http/headers.js'
import { applyNotModified } from '../policy/revalidation.js'
import { decideStore, selectStoredHeaders } from '../policy/store-decision.js'
import { varyRecord, variantKey } from '../proxy/cache-key.js'
import { BodyPump, type PumpHooks } from './body-pump.js'
import { EarlyTemp } from './early-temp.js'
import { discardBody, type UpstreamClient, type UpstreamResponse } from './client.js'
import { fetchFillResponse } from './fetch-fill-response.js'
import type { FillOutcome, FillParams } from './fill-params.js'
import { FillReaders, type Cursor } from './fill-readers.js'
import { isRedirect, rewriteLocation } from './redirects.js'

export type { Cursor } from './fill-readers.js'
export type { FillOutcome, FillParams } from './fill-params.js'

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
   * The body's last bytes wait for an integrity check (params.integrity): a client that would end
   * its response before them (a range) must wait for the stored entry instead.
   */
  get checksIntegrity(): boolean {
    return this.params.integrity !== undefined && !this.bodyComplete && this.state !== 'complete'
  }

  /**
   * Every byte of the body has arrived (its last chunk may still be on its way to disk). Clients
   * can have the whole response by then, so a request that follows sees this fill as committing.
   */
  get bodyReceived(): boolean {
    return this.bodyComplete || (this.state === 'streaming' && this.totalBytes !== undefined && this.committedBytes >= this.totalBytes)
  }
  /** Bytes received so far; readers may take bytes below this. */
  get committedBytes(): number {
    return this.#body?.committedBytes ?? 0
  }
  /** Bytes in the temp file; below this a reader may read the file. */
  get fileBytes(): number {
    return this.#body?.fileBytes ?? 0
  }
  /** The disk failed or the body outgrew the budget: later chunks exist only as `lastChunk`. */
  get relaying(): boolean {
    return this.#body?.relaying ?? false
  }
  /** The most recent chunk and where it starts, for readers that are caught up. */
  get lastChunk(): { readonly pos: number; readonly buf: Buffer } | undefined {
    return this.#body?.lastChunk
  }
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
  /** The removal of an early temp file the fill did not use (whenDone waits for it). */
  #discarding: Promise<void> | undefined
  #body: BodyPump | undefined
  readonly #readers = new FillReaders()
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
    return this.#readers.acquire()
  }

  release(cursor: Cursor): void {
    this.#readers.release(cursor)
    this.#closeIfIdle()
  }

  /** This reader will not read the body (it waits for the store, or fetches its own): never wait for it. */
  detach(cursor: Cursor): void {
    this.#readers.detach(cursor)
  }

  /** A reader's cursor advanced. */
  moved(): void {
    this.#readers.moved()
  }

  /** Resolves at the next change: more bytes, completion or failure. */
  waitForProgress(): Promise<void> {
    return this.#readers.waitForProgress()
  }

  /**
   * The whole body once all of it has arrived and passed its checks, when it was small enough to
   * be kept in memory; undefined when it was not, or the fill failed.
   */
  async wholeBody(): Promise<Buffer | undefined> {
    while (!this.bodyComplete && this.state !== 'complete' && this.state !== 'failed') await this.waitForProgress()
    return this.bodyComplete && this.state !== 'failed' ? this.#body?.keptBody : undefined
  }

  /** Resolves once the fill is complete (stored or not) or failed. */
  async whenDone(): Promise<void> {
    while (this.state !== 'complete' && this.state !== 'failed') await this.waitForProgress()
    // Done means tidy: an early temp file it did not use is gone from the disk too.
    await this.#discarding
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
    const { route, previous } = this.params
    const t0 = Date.now()
    // A miss will most likely be stored: open its temp file while the upstream thinks, so the
    // first byte is not held up by the file system once the answer is in.
    const early = previous === undefined ? new EarlyTemp(this.#store, this.storeKey) : undefined
    // Integrity: the published digest is looked up while the upstream answers (the lookup never rejects).
    const expected = this.params.integrity?.lookup()
    let response: UpstreamResponse
    try {
      response = await fetchFillResponse(upstream, this.params, this.#abort.signal)
    } catch (err) {
      this.upstreamMs = Date.now() - t0
      this.#discarding = early?.discard()
      return this.#finishEarly({
        kind: 'failed',
        error: isCachemirError(err) ? err : new InternalError(`fill failed: GET ${this.key}`, { cause: err }),
      })
    }
    this.upstreamMs = Date.now() - t0
    this.status = response.status
    this.statusText = response.statusText
    // Fields the response keeps from shared caches (private="x", no-cache="x") never reach joiners or disk.
    const kept = selectStoredHeaders(response.headers)
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
      return this.#finishEarly({ kind: 'not-modified', entry: await this.#refresh(previous, response) })
    }

    const decision = decideStore(
      { status: response.status, headers: this.headers, requestAt: response.requestAt, responseAt: response.responseAt },
      { cacheControl: this.params.requestCacheControl, authorized: this.params.authorized },
      this.params.rule,
      (bodyBytes) => this.#store.fits(bodyBytes),
    )
    this.totalBytes = decision.totalBytes
    // The early temp file is of no use for an answer not stored, or stored under a variant key.
    const pre = decision.storable && this.storeKey === early?.key ? early : ((this.#discarding = early?.discard()), undefined)
    if (!decision.storable) return this.#passThrough(response, decision.reason)
    let temp: TempBody
    try {
      temp = pre === undefined ? await this.#store.createTemp(this.storeKey) : await pre.take()
    } catch (err) {
      this.#log.warn({ err, key: this.key }, 'cannot create cache file; passing through')
      return this.#passThrough(response, 'disk')
    }
    this.#temp = temp
    this.state = 'streaming'
    // Integrity: the pump holds the last chunk back until the body matches the published digest.
    const check = this.params.integrity
    const integrity = check === undefined || expected === undefined ? undefined : { check, expected }
    const hooks: PumpHooks = {
      onProgress: () => this.#readers.notify(),
      onRelay: () => this.#onDone(),
      waitForReaders: (pos) => this.#readers.waitForAllPast(pos, route.timeouts.bodyIdleMs, this.#abort.signal),
    }
    const body = new BodyPump(temp, this.#store, this.#log, this.key, hooks, integrity)
    this.#body = body
    void this.#pump(response, body)
    return { kind: 'stream' }
  }

  /**
   * Applies a 304 to the stored entry and returns the refreshed entry. Not stored when the URL was
   * invalidated meanwhile, nor when the store refuses (logged): the client still gets the response.
   */
  async #refresh(previous: CachedEntry, response: UpstreamResponse): Promise<CachedEntry> {
    const meta = applyNotModified(previous.meta, response)
    if (this.#invalidated) return { ...previous, meta, freshness: undefined }
    try {
      return await this.#store.refresh(previous, meta)
    } catch (err) {
      this.#log.warn({ err, key: this.key }, 'cache metadata update failed')
      return { ...previous, meta, freshness: undefined }
    }
  }

  /** Not stored: the initiator may claim the body; if nobody does (it left, or a tool started the fill), it is dropped. */
  #passThrough(response: UpstreamResponse, reason: string): FillOutcome {
    this.#claimable = response.body
    setImmediate(() => {
      const body = this.claimBody()
      if (body !== undefined) discardBody(body)
    })
    return this.#finishEarly({ kind: 'uncacheable', response, reason })
  }

  /** Receives the body while readers follow it, then commits it to the store behind them. */
  async #pump(response: UpstreamResponse, body: BodyPump): Promise<void> {
    const error = await body.receive(response, this.totalBytes)
    if (error !== undefined) {
      this.error = error
      this.state = 'failed'
      // Leave the registry before any await, so no new request joins a failed fill.
      this.#finish()
      await body.discard()
      return
    }
    // Readers can finish their responses now; committing to the store happens behind them.
    this.bodyComplete = true
    this.#readers.notify()
    if (body.relaying) return this.#complete()
    body.dropLastChunk()
    if (this.#invalidated) {
      await body.discard()
      return this.#complete()
    }
    try {
      const record = { key: this.storeKey, status: this.status, statusText: this.statusText, headers: this.headers, vary: this.vary }
      this.entry = await body.commit(record, response, this.params.previous?.meta)
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
      await body.discard()
    }
    this.#complete()
  }

  #complete(): void {
    this.state = 'complete'
    this.#finish()
  }

  #finishEarly(outcome: FillOutcome): FillOutcome {
    this.state = outcome.kind === 'failed' ? 'failed' : 'complete'
    if (outcome.kind === 'failed') this.error = outcome.error
    this.#finish()
    return outcome
  }

  #finish(): void {
    this.#onDone()
    this.#readers.notify()
    this.#closeIfIdle()
  }

  #closeIfIdle(): void {
    if (this.#readers.hasReaders || (this.state !== 'complete' && this.state !== 'failed')) return
    const temp = this.#temp
    this.#temp = undefined
    if (temp !== undefined) void temp.fh.close().catch(() => {})
  }
}
