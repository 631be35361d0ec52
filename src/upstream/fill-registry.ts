// src/upstream/fill-registry.ts
// One fill per key at a time: requests for a key being filled join it instead of going upstream.

import type { Logger } from 'pino'
import type { TieredStore } from '../cache/tiered-store.js'
import type { UpstreamClient } from './client.js'
import { Fill, type Cursor, type FillParams } from './fill.js'

/** One fill per key at a time; a fill leaves the registry as soon as its result is in the store. */
export class FillRegistry {
  readonly #fills = new Map<string, Fill>()
  /** Every fill not yet settled, joinable or not (relaying and invalidated fills leave #fills early). */
  readonly #active = new Set<Fill>()
  readonly #store: TieredStore
  readonly #upstream: UpstreamClient
  readonly #log: Logger
  /** Fills started, and how many requests joined one already running; read by health and metrics. */
  readonly counters = { started: 0, joined: 0 }

  constructor(store: TieredStore, upstream: UpstreamClient, log: Logger) {
    this.#store = store
    this.#upstream = upstream
    this.#log = log
  }

  get(key: string): Fill | undefined {
    return this.#fills.get(key)
  }

  /**
   * The running fill for `params.key`, or a new one; `joined` tells which. The caller holds a
   * reader reference on it and must `release()` it when done, so the temp file stays readable.
   */
  join(params: FillParams): { fill: Fill; joined: boolean; cursor: Cursor } {
    const running = this.#fills.get(params.registryKey)
    if (running !== undefined && running.state !== 'failed') {
      this.counters.joined++
      return { fill: running, joined: true, cursor: running.acquire() }
    }
    this.counters.started++
    const fill: Fill = new Fill(params, this.#store, this.#upstream, this.#log, () => {
      if (this.#fills.get(params.registryKey) === fill) this.#fills.delete(params.registryKey)
    })
    const cursor = fill.acquire()
    this.#fills.set(params.registryKey, fill)
    this.#active.add(fill)
    void fill.whenDone().then(() => this.#active.delete(fill))
    return { fill, joined: false, cursor }
  }

  /** Stops every running fill for the URL `key` (any variant) from storing what it fetched. */
  invalidate(key: string): void {
    for (const fill of [...this.#fills.values()]) if (fill.key === key) fill.invalidate()
  }

  get size(): number {
    return this.#fills.size
  }

  /**
   * For shutdown: fills that already have their whole body finish committing it (their clients
   * were told `stored`); fills still receiving are aborted. Resolves when all have settled.
   */
  async settleAll(): Promise<void> {
    const fills = [...this.#active]
    for (const fill of fills) if (!fill.bodyReceived) fill.abort()
    await Promise.all(fills.map((fill) => fill.whenDone()))
  }
}
