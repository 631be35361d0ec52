// src/proxy/fill-and-send.ts
// Stale or missing: join (or start) the one fill for this key and answer from what it brings,
// a stored copy standing in when the upstream fails and the response allows it.

import type { IncomingMessage } from 'node:http'
import type { CacheRule } from '../config.js'
import type { CachedEntry } from '../cache/entry.js'
import type { IntegrityCheck } from '../integrity/expected-digest.js'
import { errorCode } from '../errors.js'
import { headerValue } from '../http/headers.js'
import { canServeStaleOnError } from '../policy/freshness.js'
import { sendFill } from '../respond/send-fill.js'
import { sendFailure } from '../respond/send-error.js'
import type { Fill, FillParams } from '../upstream/fill.js'
import { varyMatches } from './cache-key.js'
import { routeTransform, type Deps, type Exchange, type Fwd } from './exchange.js'
import { fetchOwn } from './fetch-own.js'
import { fillHeaders } from './forward-headers.js'
import { freshnessOf } from './lookup.js'
import { streamResponse } from './pass-through.js'
import type { Routed } from './route.js'
import { sendStored } from './send-stored.js'
import { withOwnOrRouteCredential, withRouteCredential } from './upstream-auth.js'

let privateFills = 0

export async function fillAndSend(
  x: Exchange,
  deps: Deps,
  routed: Routed,
  rule: CacheRule | undefined,
  previous: CachedEntry | undefined,
  fwd: Fwd,
  storeKey: string,
): Promise<void> {
  const { req, res } = x
  const integrity = deps.integrity.checkFor(routed, req.headers)
  const { fill, joined, cursor } = deps.fills.join(fillParams(req, routed, rule, previous, storeKey, integrity))
  // Metadata a fill stores is remembered where the cache cannot say it (src/integrity/).
  if (!joined) deps.integrity.noteFill(routed, fill)
  try {
    const outcome = await fill.outcome
    x.upstreamMs = fill.upstreamMs
    const now = deps.now()
    switch (outcome.kind) {
      case 'stream': {
        // Joined a fill whose response varies on a header this request sends differently.
        if (joined && !varyMatches(fill.vary, req.headers)) {
          fill.detach(cursor)
          return await fetchOwn(x, deps, routed, 'vary-miss')
        }
        // `stored` states the intent when the headers go out; a body that then fails, outgrows the
        // disk budget or meets a full disk is not stored after all (see docs/http-caching.md).
        x.outcome = { fwd, stored: true, collapsed: joined, ...(previous !== undefined ? { fwdStatus: fill.status } : {}) }
        const cacheStatus = deps.cacheStatus.format(x.outcome)
        if ((await sendFill(req, res, fill, cursor, cacheStatus, routeTransform(deps, routed, x.req))) === 'sent') return
        // Several ranges, an unknown length, or a small transformed body: wait for the whole
        // object, then answer from cache.
        fill.detach(cursor)
        return await sendWhenStored(x, deps, fill, routed, rule)
      }
      case 'not-modified': {
        // 304 from upstream: the stored headers were refreshed, the body is reused.
        const entry = outcome.entry
        if (!varyMatches(entry.meta.vary, req.headers)) return await fetchOwn(x, deps, routed, 'vary-miss')
        x.outcome = { fwd, fwdStatus: 304, collapsed: joined }
        if ((await sendStored(x, deps, routed, entry, freshnessOf(entry, rule))) === 'sent') return
        return await fetchOwn(x, deps, routed, fwd)
      }
      case 'uncacheable': {
        // The upstream answered 5xx: a stale copy may stand in (stale-if-error, RFC 5861). On a
        // profile route a mirror's last copy beats a proxy's 502 as it beats an unreachable host.
        const status = outcome.response.status
        const likeUnreachable = routed.route.profile !== undefined
        if (
          previous !== undefined &&
          status >= 500 &&
          canServeStaleOnError(freshnessOf(previous, rule), previous.meta.responseAt, now, likeUnreachable)
        ) {
          x.outcome = { fwd: 'stale', fwdStatus: status, detail: 'stale-if-error' }
          if ((await sendStored(x, deps, routed, previous, freshnessOf(previous, rule))) === 'sent') return
        }
        // Not storable: the client that started the fill gets its body; joiners fetch their own.
        const body = joined ? undefined : fill.claimBody()
        if (body === undefined) return await fetchOwn(x, deps, routed, fwd)
        x.outcome = { fwd, detail: outcome.reason }
        const response = { ...outcome.response, headers: fill.headers, body }
        return await streamResponse(
          req,
          res,
          response,
          deps.cacheStatus.format(x.outcome),
          routeTransform(deps, routed, x.req),
          routed.relativePath,
        )
      }
      case 'failed': {
        // Upstream unreachable: a stale copy beats an error, unless the response forbade it.
        if (previous !== undefined && canServeStaleOnError(freshnessOf(previous, rule), previous.meta.responseAt, now, true)) {
          x.outcome = { fwd: 'stale', detail: 'stale-if-error' }
          if ((await sendStored(x, deps, routed, previous, freshnessOf(previous, rule))) === 'sent') return
        }
        x.outcome = { fwd }
        return sendFailure(res, outcome.error, deps.cacheStatus.format(x.outcome))
      }
    }
  } finally {
    fill.release(cursor)
  }
}

/** stale-while-revalidate: the client got the stale copy; refresh it without anyone waiting. */
export function revalidateInBackground(
  x: Exchange,
  deps: Deps,
  routed: Routed,
  rule: CacheRule | undefined,
  entry: CachedEntry,
  storeKey: string,
): void {
  const integrity = deps.integrity.checkFor(routed, x.req.headers)
  const params = { ...fillParams(x.req, routed, rule, entry, storeKey, integrity), requestCacheControl: undefined }
  // Background refreshes carry no credentials: the result is shared.
  if (params.authorized) return
  const { fill, joined, cursor } = deps.fills.join(params)
  if (!joined) deps.integrity.noteFill(routed, fill)
  fill.release(cursor)
}

function fillParams(
  req: IncomingMessage,
  routed: Routed,
  rule: CacheRule | undefined,
  previous: CachedEntry | undefined,
  storeKey: string,
  integrity: IntegrityCheck | undefined,
): FillParams {
  // Only the client's own Authorization makes the fill `authorized` (§3.5): the route's credential
  // is the operator's, and a route reaches a fill only when it shares what it fetches (handle.ts).
  const authorized = req.headers.authorization !== undefined
  const headers = fillHeaders(req.headers)
  // Credentials go upstream only on this client's own fill, which nobody else joins.
  if (authorized) headers.authorization = headerValue(req.headers.authorization) as string
  // The route's credential; on a client's own fill, that client's value for the header wins.
  if (authorized) withOwnOrRouteCredential(headers, routed.route)
  else withRouteCredential(headers, routed.route)
  return {
    key: routed.key,
    registryKey: authorized ? `${storeKey}\u0000private${++privateFills}` : storeKey,
    authorized,
    route: routed.route,
    relativePath: routed.relativePath,
    headers,
    requestHeaders: req.headers,
    requestCacheControl: headerValue(req.headers['cache-control']),
    rule,
    previous,
    integrity,
  }
}

/** Waits until the fill is in the store and serves the stored entry (ranges, 416 and so on). */
async function sendWhenStored(x: Exchange, deps: Deps, fill: Fill, routed: Routed, rule: CacheRule | undefined): Promise<void> {
  await fill.whenDone()
  const entry = fill.entry
  // A body that failed its integrity check is not fetched again for this client, unchecked: 502.
  if (errorCode(fill.error) === 'CACHEMIR_INTEGRITY_MISMATCH') {
    x.outcome = { fwd: x.outcome.fwd ?? 'miss' }
    return sendFailure(x.res, fill.error, deps.cacheStatus.format(x.outcome))
  }
  if (fill.state === 'failed' || entry === undefined) return fetchOwn(x, deps, routed, 'miss')
  if ((await sendStored(x, deps, routed, entry, freshnessOf(entry, rule))) === 'gone') return fetchOwn(x, deps, routed, 'miss')
}
