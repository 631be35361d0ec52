// src/cache/worker-sync.ts
// Keeping the workers of one cache directory in step: the changes a worker announces to the
// others, and the purges the others are running (which this one must wait for).

/**
 * A change to the shared cache: an entry stored, refreshed or removed (`version` null), or a URL
 * invalidated with all its variants. Other workers drop their memory copy and update their index.
 */
export type StoreChange =
  | { readonly kind: 'entry'; readonly hash: string; readonly version: string | null }
  | { readonly kind: 'url'; readonly key: string; readonly done: boolean }

/** A purge announced by another worker that never says it is done (the worker died) ends after this. */
const REMOTE_PURGE_MS = 10_000

/** Purges of one URL by other workers: how many are running, and when the last one is over. */
interface RemotePurge {
  count: number
  readonly over: Promise<void>
  readonly end: () => void
}

export class WorkerSync {
  readonly #publish: (change: StoreChange) => void
  /** Keys (by hash) other workers are purging. */
  readonly #remotePurging = new Map<string, RemotePurge>()

  /** `publish` carries a change to the other workers (a no-op for a store of its own). */
  constructor(publish: (change: StoreChange) => void) {
    this.#publish = publish
  }

  /** This worker stored or refreshed the entry `hash` (its body `version`), or removed it (null). */
  announceEntry(hash: string, version: string | null): void {
    this.#publish({ kind: 'entry', hash, version })
  }

  /** This worker began purging the URL `key` with all its variants, or (`done`) finished. */
  announcePurge(key: string, done: boolean): void {
    this.#publish({ kind: 'url', key, done })
  }

  /**
   * Another worker began (or finished) purging the URL hashed to `hash`. Until it is done, the old
   * files may still be on disk: the key is a miss here.
   */
  receivePurge(hash: string, done: boolean): void {
    const running = this.#remotePurging.get(hash)
    if (!done) {
      if (running !== undefined) running.count++
      else this.#remotePurging.set(hash, this.#remotePurge(hash))
    } else if (running !== undefined && --running.count <= 0) running.end()
  }

  /** Whether any other worker is purging anything (lets the hot path skip the lookup by hash). */
  get isAnyPurging(): boolean {
    return this.#remotePurging.size > 0
  }

  isPurging(hash: string): boolean {
    return this.#remotePurging.has(hash)
  }

  /** Settles when the other workers' purges of `hash` are over; undefined when none is running. */
  purgeOver(hash: string): Promise<void> | undefined {
    return this.#remotePurging.get(hash)?.over
  }

  /** Another worker's purge of `hash`: ends when it says done, or after REMOTE_PURGE_MS. */
  #remotePurge(hash: string): RemotePurge {
    let resolve: () => void = () => {}
    const over = new Promise<void>((r) => (resolve = r))
    const purge: RemotePurge = {
      count: 1,
      over,
      end: () => {
        clearTimeout(timer)
        if (this.#remotePurging.get(hash) === purge) this.#remotePurging.delete(hash)
        resolve()
      },
    }
    const timer = setTimeout(() => purge.end(), REMOTE_PURGE_MS)
    timer.unref()
    return purge
  }
}
