// src/proxy/handle.ts
// The orchestrator, readable as a flowchart:
// route -> (other method: pass on) -> lookup -> usable: send | stale or miss: fill -> send.

import type { IncomingHttpHeaders } from 'node:http'
import type { CacheRule } from '../config.js'
import { headerValue } from '../http/headers.js'
import { currentAgeMs, matchRule, ttlSeconds } from '../policy/freshness.js'
import { decideUse, parseRequestDirectives, type RequestDirectives } from '../policy/request-directives.js'
import { sendCached } from '../respond/send-cached.js'
import { sendError, sendFailure } from '../respond/send-error.js'
import { representationKey } from './cache-key.js'
import { routeTransform, type Deps, type Exchange, type Fwd } from './exchange.js'
import { fetchOwn } from './fetch-own.js'
import { isAbsoluteForm } from './forward-proxy.js'
import { fillAndSend, revalidateInBackground } from './fill-and-send.js'
import { freshnessOf, lookup, lookupHot, type Found } from './lookup.js'
import { sendOffline } from './offline.js'
import { askOwner } from './owner.js'
import { passOn } from './pass-on.js'
import { routeRequest, type Routed } from './route.js'
import { sendStored } from './send-stored.js'
import { canShareFetched } from './upstream-auth.js'

export type { Deps, Exchange } from './exchange.js'

/**
 * Handles one request. A fresh hit whose body is in memory is answered synchronously (returns
 * undefined: no promise, no microtask); everything else returns the promise of its async path.
 */
export function handle(x: Exchange, deps: Deps): Promise<void> | undefined {
  const url = x.req.url ?? ''
  // A path goes by the routes; an absolute-form target (the mirror as a proxy) by --proxy-allow.
  const target = deps.forward !== undefined && isAbsoluteForm(url) ? deps.forward.route(url) : routeRequest(deps.config.routes, url)
  // Outside every route or allowed host, or an unsafe path: refuse (never an open proxy).
  if ('error' in target) return void sendFailure(x.res, target.error, deps.cacheStatus.format({}))
  x.route = target.route.prefix

  // Other methods and bodies: pass on; a successful unsafe method invalidates the URL.
  const method = x.req.method ?? 'GET'
  const offline = deps.config.offline
  if (method !== 'GET' && method !== 'HEAD') {
    if (!offline) return passOn(x, deps, target, method)
    const cacheStatus = deps.cacheStatus.format({ fwd: 'method', detail: 'offline' })
    return void sendError(x.res, 503, 'offline: only cached GET and HEAD are served', cacheStatus)
  }
  // A profile route keeps the representations its Accept negotiates apart (npm, PyPI).
  const routed = target.route.profile === undefined ? target : withRepresentation(target, x.req.headers)
  // Offline: whatever the cache holds, stale included unless the response forbade it; else 504.
  if (offline) return sendOffline(x, deps, routed)

  // A route rule that forbids storing: this client's own upstream request.
  const rule = matchRule(routed.route.rules, routed.relativePath)
  if (rule?.mode === 'no-store') return fetchOwn(x, deps, routed, 'bypass')
  // A route whose credential's answers are not shared (no shareAuthenticated): the same.
  if (!canShareFetched(routed.route)) return fetchOwn(x, deps, routed, 'bypass')

  const rd = parseRequestDirectives(headerValue(x.req.headers['cache-control']), headerValue(x.req.headers.pragma))
  // Credentials: never answered from the shared cache; the response is stored only when it
  // says it may be shared (RFC 9111 §3.5), for later requests without credentials.
  if (x.req.headers.authorization !== undefined) {
    return lookup(x, deps, routed).then(({ storeKey }) => fillAndSend(x, deps, routed, rule, undefined, 'bypass', storeKey))
  }
  // The hot path: a fresh entry whose body is in memory, with no fill of it running.
  const hot = lookupHot(x, deps, routed)
  if (hot?.entry.body !== undefined && deps.fills.get(hot.storeKey) === undefined) {
    const freshness = freshnessOf(hot.entry, rule)
    const now = deps.now()
    if (decideUse(freshness, hot.entry.meta.responseAt, now, rd) === 'fresh') {
      const ttl = ttlSeconds(freshness, hot.entry.meta.responseAt, now)
      x.outcome = { hit: true, ttl }
      // From memory nothing can be 'gone'; ranges, conditionals and transforms return a promise.
      const ageSeconds = Math.floor(currentAgeMs(freshness, hot.entry.meta.responseAt, now) / 1000)
      const cacheStatus = deps.cacheStatus.hit(ttl)
      const transform = routeTransform(deps, routed, x.req)
      const options =
        transform === undefined ? { cacheStatus, ageSeconds } : { cacheStatus, ageSeconds, transform, relativePath: routed.relativePath }
      const sent = sendCached(x.req, x.res, hot.entry, deps.store, options)
      return typeof sent === 'string' ? undefined : sent.then(() => {})
    }
  }
  return handleStored(x, deps, routed, rule, rd, hot)
}

/** Everything but a fresh memory hit: lookup on disk, stale handling, fills. */
async function handleStored(x: Exchange, deps: Deps, routed: Routed, rule: CacheRule | undefined, rd: RequestDirectives, hot?: Found) {
  let { entry, storeKey } = hot ?? (await lookup(x, deps, routed))
  // A fill that already has the whole body is only committing it: wait, then it is a plain hit.
  const committing = deps.fills.get(storeKey)
  if (committing?.bodyReceived === true) {
    await committing.whenDone()
    ;({ entry, storeKey } = await lookup(x, deps, routed))
  }
  let fwd: Fwd = 'miss'
  if (entry !== undefined) {
    const freshness = freshnessOf(entry, rule)
    const now = deps.now()
    const use = decideUse(freshness, entry.meta.responseAt, now, rd)
    // Fresh enough for this client, or a stale copy the client (max-stale) or the origin
    // (stale-while-revalidate, refreshed in the background) accepts: send it.
    if (use !== 'revalidate') {
      // In a worker group the URL's owner refreshes it (and serves this stale copy meanwhile).
      if (use === 'stale-while-revalidate' && (await askOwner(x, deps, routed)) === 'answered') return
      const detail = use === 'stale-ok' ? 'max-stale' : use === 'stale-while-revalidate' ? use : undefined
      x.outcome = { hit: true, ttl: ttlSeconds(freshness, entry.meta.responseAt, now), ...(detail === undefined ? {} : { detail }) }
      if (use === 'stale-while-revalidate') revalidateInBackground(x, deps, routed, rule, entry, storeKey)
      if ((await sendStored(x, deps, routed, entry, freshness)) === 'sent') return
      entry = undefined // the body file was gone or corrupt: fetch it again
    } else fwd = rd.noCache || rd.maxAgeMs !== undefined || rd.minFreshMs !== undefined ? 'request' : 'stale'
  }
  // only-if-cached: never contact the upstream (RFC 9111 §5.2.1.7).
  if (rd.onlyIfCached) {
    return sendError(x.res, 504, 'not cached (only-if-cached)', deps.cacheStatus.format({ fwd: 'miss', detail: 'only-if-cached' }))
  }
  // Stale or missing: join (or start) the one fill for this key; in a worker group the fill
  // runs in the URL's owner, so there is still one per key across all workers.
  if ((await askOwner(x, deps, routed)) === 'answered') return
  return fillAndSend(x, deps, routed, rule, entry, fwd, storeKey)
}

function withRepresentation(routed: Routed, headers: IncomingHttpHeaders): Routed {
  const key = representationKey(routed.route, routed.relativePath, routed.key, headers)
  return key === routed.key ? routed : { ...routed, key }
}

export type { Routed }
