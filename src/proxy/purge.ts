// src/proxy/purge.ts
// The one purge sequence, for invalidation by unsafe methods and for the admin purge: fills in
// flight stop being stored, the store drops every variant, and the other workers follow.

import type { Deps } from './exchange.js'

export interface Purge {
  /**
   * Resolves once every other worker has dropped the keys (at once outside a worker group). From
   * then on no request, in any worker, finds the old entries: answer the client after this.
   */
  readonly everywhere: Promise<void>
  /** Resolves when the files are gone too: per key, whether anything was stored (or the error). */
  readonly removed: Promise<PromiseSettledResult<boolean>[]>
}

/**
 * Purges `keys`. Synchronously, before any await, fills of those keys are marked not to store and
 * lookups of them find nothing (the store hides a key from the moment its purge starts).
 */
export function purgeKeys(deps: Pick<Deps, 'store' | 'fills' | 'peers'>, keys: Iterable<string>): Purge {
  const removals: Promise<boolean>[] = []
  for (const key of keys) {
    deps.fills.invalidate(key)
    removals.push(deps.store.purge(key))
  }
  return { everywhere: deps.peers?.barrier() ?? Promise.resolve(), removed: Promise.allSettled(removals) }
}
