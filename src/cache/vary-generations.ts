// src/cache/vary-generations.ts
// Which headers a URL's responses vary on, and the URL's generation: raised by a purge, so the
// variants stored before it can never be found again. Kept in memory in front of the Vary records.

import { LRUCache } from 'lru-cache'
import type { VaryMarker, VaryRecords } from './vary-records.js'

const NO_VARY: VaryMarker = { names: null, generation: 0 }

/** The purges a reader of a URL's generation must wait for. */
export interface PurgesInFlight {
  /** This process's purge of `hash`, when one is running. */
  readonly local: (hash: string) => Promise<unknown> | undefined
  /** Settles when other workers' purges of `hash` are over; undefined when none is running. */
  readonly remote: (hash: string) => Promise<void> | undefined
}

export class VaryGenerations {
  /** URL key hash -> the Vary names its responses use (null: none) and its generation. */
  readonly #markers = new LRUCache<string, VaryMarker>({ max: 100_000 })
  readonly #records: VaryRecords
  readonly #purges: PurgesInFlight

  constructor(records: VaryRecords, purges: PurgesInFlight) {
    this.#records = records
    this.#purges = purges
  }

  /** The Vary record of the URL hashed to `hash`, once no purge is moving it to a new generation. */
  async current(hash: string): Promise<VaryMarker> {
    // During a purge the record is being moved to a new generation: wait for it, so nothing is
    // stored under the generation being retired.
    const purging = this.#purges.local(hash)
    if (purging !== undefined) await purging.catch(() => false)
    // Another worker is moving it to a new generation: its old record must not be read meanwhile.
    const remote = this.#purges.remote(hash)
    if (remote !== undefined) await remote
    const known = this.#markers.get(hash)
    if (known !== undefined) return known
    const marker = (await this.#records.read(hash)) ?? NO_VARY
    this.#markers.set(hash, marker)
    return marker
  }

  /**
   * Records that responses for the URL `urlKey` (hashed to `hash`) vary on `names` (or on nothing).
   * A URL that starts to vary first loses its plain entry through `dropPlainEntry`, since it would
   * otherwise answer every variant.
   */
  async setNames(
    hash: string,
    urlKey: string,
    names: readonly string[] | undefined,
    dropPlainEntry: () => Promise<unknown>,
  ): Promise<void> {
    const current = await this.current(hash)
    if (JSON.stringify(current.names ?? undefined) === JSON.stringify(names)) return
    const next: VaryMarker = { names: names ?? null, generation: current.generation }
    this.#markers.set(hash, next)
    if (names !== undefined) await dropPlainEntry()
    await this.#records.write(hash, urlKey, next)
  }

  /** For a purge: moves a URL that has variants to a new generation. True if it had variants. */
  async retire(hash: string, urlKey: string): Promise<boolean> {
    const current = this.#markers.get(hash) ?? (await this.#records.read(hash)) ?? NO_VARY
    if (current.names === null) return false
    const next: VaryMarker = { names: null, generation: current.generation + 1 }
    this.#markers.set(hash, next)
    await this.#records.write(hash, urlKey, next)
    return true
  }

  /** Another worker changed the URL's record: the next reader reads it from disk. */
  forget(hash: string): void {
    this.#markers.delete(hash)
  }
}
