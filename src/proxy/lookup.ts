// src/proxy/lookup.ts
// request -> the stored response that answers it: the URL's plain entry, or the variant its Vary
// record selects; and the freshness derived once per entry.

import type { CacheRule } from '../config.js'
import type { CachedEntry } from '../cache/entry.js'
import { computeFreshness, type Freshness } from '../policy/freshness.js'
import { variantKey, varyMatches, varyRecord } from './cache-key.js'
import type { Deps, Exchange } from './exchange.js'
import type { Routed } from './route.js'

/** A lookup's answer: the entry (if any) and `storeKey`, the key a fill for this request coalesces on. */
export interface Found {
  readonly entry: CachedEntry | undefined
  readonly storeKey: string
}

/** The URL's plain entry when the memory tier has it: no promise, no disk (the hot path). */
export function lookupHot(x: Exchange, deps: Deps, routed: Routed): { entry: CachedEntry; storeKey: string } | undefined {
  const plain = deps.store.peek(routed.key)
  return plain !== undefined && varyMatches(plain.meta.vary, x.req.headers) ? { entry: plain, storeKey: routed.key } : undefined
}

/**
 * Finds the stored response for this request: the URL's plain entry, or the variant selected by
 * the request's values of the headers the URL's responses vary on.
 */
export async function lookup(x: Exchange, deps: Deps, routed: Routed): Promise<Found> {
  const plain = await deps.store.lookup(routed.key)
  if (plain !== undefined && varyMatches(plain.meta.vary, x.req.headers)) return { entry: plain, storeKey: routed.key }
  const { names, generation } = await deps.store.varyFor(routed.key)
  if (names === null) return { entry: undefined, storeKey: routed.key }
  const key = variantKey(routed.key, generation, varyRecord(names, x.req.headers))
  const variant = await deps.store.lookup(key)
  if (variant !== undefined && varyMatches(variant.meta.vary, x.req.headers)) return { entry: variant, storeKey: key }
  return { entry: undefined, storeKey: key }
}

/** The entry's freshness under the route's rule, computed once (the rules never change at run time). */
export function freshnessOf(entry: CachedEntry, rule: CacheRule | undefined): Freshness {
  entry.freshness ??= computeFreshness(entry.meta, rule)
  return entry.freshness
}
