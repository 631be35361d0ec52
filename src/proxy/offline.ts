// src/proxy/offline.ts
// --offline: whatever the cache holds, stale included unless the response forbade it; else 504.

import { matchRule, ttlSeconds } from '../policy/freshness.js'
import { decideUse, NO_DIRECTIVES } from '../policy/request-directives.js'
import { sendError } from '../respond/send-error.js'
import type { Deps, Exchange } from './exchange.js'
import { freshnessOf, lookup } from './lookup.js'
import type { Routed } from './route.js'
import { sendStored } from './send-stored.js'
import { canShareFetched } from './upstream-auth.js'

export async function sendOffline(x: Exchange, deps: Deps, routed: Routed): Promise<void> {
  const rule = matchRule(routed.route.rules, routed.relativePath)
  // Never from the cache: a client with its own credentials, or a route that does not share what its
  // credential fetches (an entry may be left from a config that did).
  const shared = x.req.headers.authorization === undefined && canShareFetched(routed.route)
  const { entry } = shared ? await lookup(x, deps, routed) : { entry: undefined }
  if (entry !== undefined) {
    const freshness = freshnessOf(entry, rule)
    const now = deps.now()
    const ttl = ttlSeconds(freshness, entry.meta.responseAt, now)
    const fresh = decideUse(freshness, entry.meta.responseAt, now, NO_DIRECTIVES) === 'fresh'
    if (fresh || !freshness.mustRevalidate) {
      x.outcome = { hit: true, ttl, ...(fresh ? {} : { detail: 'offline' }) }
      if ((await sendStored(x, deps, routed, entry, freshness)) === 'sent') return
    }
  }
  sendError(x.res, 504, 'offline: not in cache', deps.cacheStatus.format({ fwd: 'miss', detail: 'offline' }))
}
