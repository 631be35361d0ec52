// src/integrity/integrity.ts
// Trusted copies: the files of npm, apt and PyPI routes are checked against the digests their
// ecosystem publishes before they are stored or served as complete. This is the room's front: it
// picks the finder for a route's profile, hands a fill its check (FillParams.integrity), remembers
// which metadata this process stored, and counts the results for /_cachemir/health.
//
// The fill does the checking (upstream/body-pump.ts): it hashes the body as it arrives, holds back
// its last chunk, and compares once every byte is in; a mismatch fails the fill like an upstream
// that broke off mid-body (nothing stored, every client's response cut short).

import type { IncomingHttpHeaders } from 'node:http'
import type { Logger } from 'pino'
import type { Route } from '../config-types.js'
import type { CachedEntry } from '../cache/entry.js'
import type { TieredStore } from '../cache/tiered-store.js'
import type { Fill } from '../upstream/fill.js'
import { aptDigest } from './apt-digest.js'
import type { DigestFinder, IntegrityCheck, IntegrityResult } from './expected-digest.js'
import { MetadataCatalog } from './metadata-catalog.js'
import { npmDigest } from './npm-digest.js'
import { pypiDigest } from './pypi-digest.js'
import { CachedMetadata } from './stored-metadata.js'

/** The finder of each profile whose ecosystem publishes file digests. */
const FINDERS: ReadonlyMap<string, DigestFinder> = new Map([
  ['npm', npmDigest],
  ['debian', aptDigest],
  ['pypi', pypiDigest],
])

/** A request's route and path, as the proxy resolved them (proxy/route.ts Routed). */
export interface RoutedFile {
  readonly route: Route
  readonly relativePath: string
  /** The URL (or representation) key. */
  readonly key: string
}

export class Integrity {
  /** Checks by result, read by /_cachemir/health: `unchecked` when no cached metadata named the file's digest. */
  readonly counters: Record<IntegrityResult, number> = { passed: 0, failed: 0, unchecked: 0 }
  readonly #store: TieredStore
  readonly #routes: readonly Route[]
  readonly #log: Logger
  readonly #catalog = new MetadataCatalog()

  constructor(store: TieredStore, routes: readonly Route[], log: Logger) {
    this.#store = store
    this.#routes = routes
    this.#log = log
  }

  /**
   * The check a fill of this file makes, or undefined when its route's profile publishes no digest
   * for such a path (a test of the path only: the metadata is read when the fill starts).
   * `headers` are the request's, which select the variant of a document that varies.
   */
  checkFor(routed: RoutedFile, headers: IncomingHttpHeaders): IntegrityCheck | undefined {
    const finder = FINDERS.get(routed.route.profile ?? '')
    if (finder === undefined || !finder.covers(routed.relativePath)) return undefined
    const context = {
      route: routed.route,
      relativePath: routed.relativePath,
      routes: this.#routes,
      stored: new CachedMetadata(this.#store, this.#catalog, headers),
    }
    return {
      algorithms: finder.algorithms,
      // A lookup that fails (an unreadable index) means no check, never a failed file.
      lookup: () =>
        finder.find(context).catch((err: unknown) => {
          this.#log.warn({ err, key: routed.key }, 'integrity lookup failed; file not checked')
          return undefined
        }),
      record: (result) => {
        this.counters[result]++
      },
    }
  }

  /**
   * Called for each fill a request starts: when it stores (or refreshes) metadata that a finder
   * reads, the key it was stored under is remembered (see metadata-catalog.ts).
   */
  noteFill(routed: RoutedFile, fill: Fill): void {
    const kind = FINDERS.get(routed.route.profile ?? '')?.metadataKind(routed.relativePath)
    if (kind === undefined) return
    const note = (entry: CachedEntry | undefined): void => {
      if (entry !== undefined && entry.meta.status === 200)
        this.#catalog.note(routed.route.prefix, routed.key, entry.meta.key, kind === 'index')
    }
    void fill.outcome.then(async (outcome) => {
      if (outcome.kind === 'not-modified') return note(outcome.entry)
      if (outcome.kind !== 'stream') return
      await fill.whenDone()
      if (fill.stored) note(fill.entry)
    })
  }
}
