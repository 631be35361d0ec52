// src/proxy/send-stored.ts
// Sends a stored entry with Age, our Cache-Status and the route's body transform.

import type { CachedEntry } from '../cache/entry.js'
import { currentAgeMs, type Freshness } from '../policy/freshness.js'
import { sendCached } from '../respond/send-cached.js'
import { routeTransform, type Deps, type Exchange } from './exchange.js'
import type { Routed } from './route.js'

/** 'gone' (nothing written) when the body file turned out missing or corrupt: the caller refetches. */
export function sendStored(
  x: Exchange,
  deps: Deps,
  routed: Routed,
  entry: CachedEntry,
  freshness: Freshness,
  cacheStatus = deps.cacheStatus.format(x.outcome),
): 'sent' | Promise<'sent' | 'gone'> {
  const ageSeconds = Math.floor(currentAgeMs(freshness, entry.meta.responseAt, deps.now()) / 1000)
  const transform = routeTransform(deps, routed, x.req)
  const options =
    transform === undefined ? { cacheStatus, ageSeconds } : { cacheStatus, ageSeconds, transform, relativePath: routed.relativePath }
  return sendCached(x.req, x.res, entry, deps.store, options)
}
