// src/proxy/handle.ts
// The orchestrator, readable as a flowchart:
// route -> (other method: pass through) -> lookup -> fresh: send | stale or miss: fill -> send.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Config, CacheRule } from '../config.js'
import type { CachedEntry } from '../cache/entry.js'
import type { TieredStore } from '../cache/tiered-store.js'
import { computeFreshness, currentAgeMs, isFresh, matchRule, ttlSeconds, type Freshness } from '../policy/freshness.js'
import { parseCacheControl } from '../http/cache-control.js'
import { headerValue } from '../http/headers.js'
import { formatCacheStatus, type CacheOutcome } from '../respond/cache-status.js'
import { sendCached } from '../respond/send-cached.js'
import { sendFill } from '../respond/send-fill.js'
import { sendError, sendFailure } from '../respond/send-error.js'
import type { FillRegistry, Fill } from '../upstream/fill.js'
import type { UpstreamClient } from '../upstream/client.js'
import { fillHeaders, varyMatches, varyValue } from './forward-headers.js'
import { fetchPrivately, streamResponse, type PassThrough } from './pass-through.js'
import { routeRequest, type Routed } from './route.js'

export interface Deps {
  readonly config: Config
  readonly store: TieredStore
  readonly fills: FillRegistry
  readonly upstream: UpstreamClient
  readonly passThrough: PassThrough
  readonly now: () => number
}

/** One request's context; the handler fills in what the request-completed log line reports. */
export interface Exchange {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly log: Logger
  outcome: CacheOutcome
  upstreamMs: number | undefined
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

export async function handle(x: Exchange, deps: Deps): Promise<void> {
  const routed = routeRequest(deps.config.routes, x.req.url ?? '')
  // Outside every route, or an unsafe path: refuse (never an open proxy).
  if ('status' in routed) return sendError(x.res, routed.status, routed.reason)

  // Other methods and bodies: pass through; a successful unsafe method invalidates the URL.
  const method = x.req.method ?? 'GET'
  if (method !== 'GET' && method !== 'HEAD') return passOn(x, deps, routed, method)

  // Credentials, or a route rule that forbids storing: this client's own upstream request.
  const rule = matchRule(routed.route.rules, routed.relativePath)
  if (x.req.headers.authorization !== undefined || rule?.mode === 'no-store') return bypass(x, deps, routed)

  // A fill that already has the whole body is only committing it: wait, then it is a plain hit.
  const committing = deps.fills.get(routed.key)
  if (committing?.bodyComplete === true) await committing.whenDone()
  let entry = await deps.store.lookup(routed.key)
  let fwd: 'miss' | 'vary-miss' | 'stale' | 'request' = 'miss'
  // One stored variant per URL: a request that differs in a Vary header is a miss.
  if (entry !== undefined && !varyMatches(entry.meta.vary, x.req.headers)) {
    entry = undefined
    fwd = 'vary-miss'
  }
  if (entry !== undefined) {
    const freshness = freshnessOf(entry, rule)
    const now = deps.now()
    // Fresh, and the client does not insist on revalidation: a hit.
    if (!clientWantsRevalidation(x.req) && isFresh(freshness, entry.meta.responseAt, now)) {
      x.outcome = { hit: true, ttl: ttlSeconds(freshness, entry.meta.responseAt, now) }
      if ((await sendStored(x, deps, entry, freshness)) === 'sent') return
      entry = undefined // the body file was gone or corrupt: fetch it again
    } else fwd = clientWantsRevalidation(x.req) ? 'request' : 'stale'
  }
  // Stale or missing: join (or start) the one fill for this key.
  return fillAndSend(x, deps, routed, rule, entry, fwd)
}

async function fillAndSend(
  x: Exchange,
  deps: Deps,
  routed: Routed,
  rule: CacheRule | undefined,
  previous: CachedEntry | undefined,
  fwd: 'miss' | 'vary-miss' | 'stale' | 'request',
): Promise<void> {
  const { req, res } = x
  const { fill, joined } = deps.fills.join({
    key: routed.key,
    route: routed.route,
    relativePath: routed.relativePath,
    headers: fillHeaders(req.headers),
    varyValues: (name) => varyValue(req.headers, name),
    requestCacheControl: headerValue(req.headers['cache-control']),
    rule,
    previous,
  })
  try {
    const outcome = await fill.outcome
    x.upstreamMs = fill.upstreamMs
    const revalidating = previous !== undefined
    switch (outcome.kind) {
      case 'stream': {
        // Joined a fill whose response varies on a header this request sends differently.
        if (joined && !varyMatches(fill.vary, req.headers)) return await fetchOwn(x, deps, routed, 'vary-miss')
        x.outcome = { fwd, stored: true, collapsed: joined, ...(revalidating ? { fwdStatus: fill.status } : {}) }
        if ((await sendFill(req, res, fill, formatCacheStatus(x.outcome))) === 'sent') return
        // Several ranges or an unknown length: wait for the whole object, then answer from cache.
        return await sendWhenStored(x, deps, fill, routed, rule)
      }
      case 'not-modified': {
        // 304 from upstream: the stored headers were refreshed, the body is reused.
        x.outcome = { fwd, fwdStatus: 304, collapsed: joined }
        const entry = outcome.entry
        if ((await sendStored(x, deps, entry, freshnessOf(entry, rule))) === 'sent') return
        return await fetchOwn(x, deps, routed, fwd)
      }
      case 'uncacheable': {
        // Not storable: the client that started the fill gets its body; joiners fetch their own.
        const body = joined ? undefined : fill.claimBody()
        if (body === undefined) return await fetchOwn(x, deps, routed, fwd)
        x.outcome = { fwd, detail: outcome.reason }
        return await streamResponse(req, res, { ...outcome.response, body }, formatCacheStatus(x.outcome))
      }
      case 'failed': {
        // Upstream down: a stale copy beats an error, unless the response forbade it.
        if (previous !== undefined && !freshnessOf(previous, rule).mustRevalidate) {
          x.outcome = { fwd: 'stale', detail: 'stale-if-error' }
          if ((await sendStored(x, deps, previous, freshnessOf(previous, rule))) === 'sent') return
        }
        x.outcome = { fwd }
        return sendFailure(res, outcome.error, x.outcome)
      }
    }
  } finally {
    fill.release()
  }
}

/** Waits until the fill is in the store and serves the stored entry (ranges, 416 and so on). */
async function sendWhenStored(x: Exchange, deps: Deps, fill: Fill, routed: Routed, rule: CacheRule | undefined): Promise<void> {
  await fill.whenDone()
  const entry = fill.entry
  if (fill.state === 'failed' || entry === undefined) return fetchOwn(x, deps, routed, 'miss')
  if ((await sendStored(x, deps, entry, freshnessOf(entry, rule))) === 'gone') return fetchOwn(x, deps, routed, 'miss')
}

/** Sends a stored entry with Age and our Cache-Status. */
function sendStored(x: Exchange, deps: Deps, entry: CachedEntry, freshness: Freshness): Promise<'sent' | 'gone'> {
  const ageSeconds = Math.floor(currentAgeMs(freshness, entry.meta.responseAt, deps.now()) / 1000)
  return sendCached(x.req, x.res, entry, deps.store, { cacheStatus: formatCacheStatus(x.outcome), ageSeconds })
}

/** A GET this client must not share (credentials, no-store rule): its own request, nothing stored. */
async function bypass(x: Exchange, deps: Deps, routed: Routed): Promise<void> {
  await fetchOwn(x, deps, routed, 'bypass')
}

async function fetchOwn(x: Exchange, deps: Deps, routed: Routed, fwd: NonNullable<CacheOutcome['fwd']>): Promise<void> {
  x.outcome = { fwd }
  const t0 = Date.now()
  try {
    await fetchPrivately(x.req, x.res, routed, deps.upstream, formatCacheStatus(x.outcome))
  } catch (err) {
    sendFailure(x.res, err, x.outcome)
  } finally {
    x.upstreamMs ??= Date.now() - t0
  }
}

async function passOn(x: Exchange, deps: Deps, routed: Routed, method: string): Promise<void> {
  x.outcome = { fwd: 'method' }
  const status = await deps.passThrough.web(x.req, x.res, routed)
  // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI.
  if (!SAFE_METHODS.has(method) && status >= 200 && status < 400) await deps.store.purge(routed.key)
}

function freshnessOf(entry: CachedEntry, rule: CacheRule | undefined): Freshness {
  entry.freshness ??= computeFreshness(entry.meta, rule)
  return entry.freshness
}

/** Request `Cache-Control: no-cache` (or `Pragma: no-cache` without Cache-Control) forces revalidation. */
function clientWantsRevalidation(req: IncomingMessage): boolean {
  const cc = headerValue(req.headers['cache-control'])
  if (cc !== undefined) return parseCacheControl(cc).has('no-cache')
  return /(^|,)\s*no-cache\s*(,|$)/i.test(headerValue(req.headers.pragma) ?? '')
}
