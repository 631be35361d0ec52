// src/proxy/handle.ts
// The orchestrator, readable as a flowchart:
// route -> (other method: pass through) -> lookup -> usable: send | stale or miss: fill -> send.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Config, CacheRule } from '../config.js'
import type { CachedEntry } from '../cache/entry.js'
import type { TieredStore } from '../cache/tiered-store.js'
import { variantKey, varyMatches, varyRecord } from './cache-key.js'
import { canServeStaleOnError, computeFreshness, currentAgeMs, matchRule, ttlSeconds, type Freshness } from '../policy/freshness.js'
import { decideUse, NO_DIRECTIVES, parseRequestDirectives, type RequestDirectives } from '../policy/request-directives.js'
import { headerValue } from '../http/headers.js'
import { CACHE_NAME, formatCacheStatus, type CacheOutcome } from '../respond/cache-status.js'
import { sendCached } from '../respond/send-cached.js'
import { sendFill } from '../respond/send-fill.js'
import { sendError, sendFailure } from '../respond/send-error.js'
import type { Fill, FillParams } from '../upstream/fill.js'
import type { FillRegistry } from '../upstream/fill-registry.js'
import type { UpstreamClient } from '../upstream/client.js'
import { fillHeaders } from './forward-headers.js'
import { fetchPrivately, streamResponse, type PassThrough } from './pass-through.js'
import { invalidatedKeys } from './invalidation.js'
import { routeRequest, type Routed } from './route.js'
import type { Peers } from '../cluster/peers.js'

export interface Deps {
  readonly config: Config
  readonly store: TieredStore
  readonly fills: FillRegistry
  readonly upstream: UpstreamClient
  readonly passThrough: PassThrough
  readonly now: () => number
  /** The other workers, when this process is one of `serve --workers N`. */
  readonly peers: Peers | undefined
}

/** One request's context; the handler fills in what the request-completed log line reports. */
export interface Exchange {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly log: Logger
  /** Handed over by another worker of the group: answer here, never forward again. */
  readonly fromPeer: boolean
  outcome: CacheOutcome
  upstreamMs: number | undefined
}

type Fwd = 'miss' | 'vary-miss' | 'stale' | 'request' | 'bypass'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])
let privateFills = 0

/**
 * Handles one request. A fresh hit whose body is in memory is answered synchronously (returns
 * undefined: no promise, no microtask); everything else returns the promise of its async path.
 */
export function handle(x: Exchange, deps: Deps): Promise<void> | undefined {
  const routed = routeRequest(deps.config.routes, x.req.url ?? '')
  // Outside every route, or an unsafe path: refuse (never an open proxy).
  if ('status' in routed) {
    sendError(x.res, routed.status, routed.reason)
    return undefined
  }

  // Other methods and bodies: pass through; a successful unsafe method invalidates the URL.
  const method = x.req.method ?? 'GET'
  const offline = deps.config.offline
  if (method !== 'GET' && method !== 'HEAD') {
    if (offline) {
      sendError(x.res, 503, 'offline: only cached GET and HEAD are served', { fwd: 'method', detail: 'offline' })
      return undefined
    }
    return passOn(x, deps, routed, method)
  }
  // Offline: whatever the cache holds, stale included unless the response forbade it; else 504.
  if (offline) return sendOffline(x, deps, routed)

  // A route rule that forbids storing: this client's own upstream request.
  const rule = matchRule(routed.route.rules, routed.relativePath)
  if (rule?.mode === 'no-store') return fetchOwn(x, deps, routed, 'bypass')

  const rd = parseRequestDirectives(headerValue(x.req.headers['cache-control']), headerValue(x.req.headers.pragma))
  // Credentials: never answered from the shared cache; the response is stored only when it
  // says it may be shared (RFC 9111 §3.5), for later requests without credentials.
  if (x.req.headers.authorization !== undefined) {
    return lookup(x, deps, routed).then(({ storeKey }) => fillAndSend(x, deps, routed, rule, undefined, 'bypass', storeKey))
  }
  const hot = lookupHot(x, deps, routed)
  if (hot !== undefined && hot.entry.body !== undefined && deps.fills.get(hot.storeKey) === undefined) {
    const freshness = freshnessOf(hot.entry, rule)
    const now = deps.now()
    if (decideUse(freshness, hot.entry.meta.responseAt, now, rd) === 'fresh') {
      const ttl = ttlSeconds(freshness, hot.entry.meta.responseAt, now)
      x.outcome = { hit: true, ttl }
      // From memory nothing can be 'gone'; ranges and conditionals still return a promise.
      const ageSeconds = Math.floor(currentAgeMs(freshness, hot.entry.meta.responseAt, now) / 1000)
      const sent = sendCached(x.req, x.res, hot.entry, deps.store, { cacheStatus: hitStatus(ttl), ageSeconds })
      return typeof sent === 'string' ? undefined : sent.then(() => {})
    }
  }
  return handleStored(x, deps, routed, rule, rd, hot)
}

/** Everything but a fresh memory hit: lookup on disk, stale handling, fills. */
async function handleStored(
  x: Exchange,
  deps: Deps,
  routed: Routed,
  rule: CacheRule | undefined,
  rd: RequestDirectives,
  hot: { entry: CachedEntry; storeKey: string } | undefined,
): Promise<void> {
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
    const ttl = ttlSeconds(freshness, entry.meta.responseAt, now)
    // Fresh enough for this client, or a stale copy the client (max-stale) or the origin
    // (stale-while-revalidate, refreshed in the background) accepts: send it.
    if (use !== 'revalidate') {
      // In a worker group the URL's owner refreshes it (and serves this stale copy meanwhile).
      if (use === 'stale-while-revalidate' && (await askOwner(x, deps, routed)) === 'answered') return
      x.outcome = {
        hit: true,
        ttl,
        ...(use === 'stale-ok' ? { detail: 'max-stale' } : use === 'stale-while-revalidate' ? { detail: 'stale-while-revalidate' } : {}),
      }
      if (use === 'stale-while-revalidate') revalidateInBackground(x, deps, routed, rule, entry, storeKey)
      if ((await sendStored(x, deps, entry, freshness)) === 'sent') return
      entry = undefined // the body file was gone or corrupt: fetch it again
    } else fwd = rd.noCache || rd.maxAgeMs !== undefined || rd.minFreshMs !== undefined ? 'request' : 'stale'
  }
  // only-if-cached: never contact the upstream (RFC 9111 §5.2.1.7).
  if (rd.onlyIfCached) return sendError(x.res, 504, 'not cached (only-if-cached)', { fwd: 'miss', detail: 'only-if-cached' })
  // Stale or missing: join (or start) the one fill for this key; in a worker group the fill
  // runs in the URL's owner, so there is still one per key across all workers.
  if ((await askOwner(x, deps, routed)) === 'answered') return
  return fillAndSend(x, deps, routed, rule, entry, fwd, storeKey)
}

/**
 * In a worker group, hands the request to the worker that fills this URL. 'local' when this
 * worker is the owner, the request came from a peer, or the owner is unreachable.
 */
async function askOwner(x: Exchange, deps: Deps, routed: Routed): Promise<'answered' | 'local'> {
  const owner = deps.peers?.ownerToAsk(routed.key, x.req, x.fromPeer)
  if (deps.peers === undefined || owner === undefined) return 'local'
  return deps.peers
    .forward(x.req, x.res, owner, (outcome) => (x.outcome = outcome))
    .then((r) => (r === 'unavailable' ? 'local' : 'answered'))
}

/** The URL's plain entry when the memory tier has it: no promise, no disk (the hot path). */
function lookupHot(x: Exchange, deps: Deps, routed: Routed): { entry: CachedEntry; storeKey: string } | undefined {
  const plain = deps.store.peek(routed.key)
  return plain !== undefined && varyMatches(plain.meta.vary, x.req.headers) ? { entry: plain, storeKey: routed.key } : undefined
}

/**
 * Finds the stored response for this request: the URL's plain entry, or the variant selected by
 * the request's values of the headers the URL's responses vary on. `storeKey` is the key a fill
 * for this request coalesces on.
 */
async function lookup(x: Exchange, deps: Deps, routed: Routed): Promise<{ entry: CachedEntry | undefined; storeKey: string }> {
  const plain = await deps.store.lookup(routed.key)
  if (plain !== undefined && varyMatches(plain.meta.vary, x.req.headers)) return { entry: plain, storeKey: routed.key }
  const { names, generation } = await deps.store.varyFor(routed.key)
  if (names === null) return { entry: undefined, storeKey: routed.key }
  const key = variantKey(routed.key, generation, varyRecord(names, x.req.headers))
  const variant = await deps.store.lookup(key)
  if (variant !== undefined && varyMatches(variant.meta.vary, x.req.headers)) return { entry: variant, storeKey: key }
  return { entry: undefined, storeKey: key }
}

async function fillAndSend(
  x: Exchange,
  deps: Deps,
  routed: Routed,
  rule: CacheRule | undefined,
  previous: CachedEntry | undefined,
  fwd: Fwd,
  storeKey: string,
): Promise<void> {
  const { req, res } = x
  const { fill, joined, cursor } = deps.fills.join(fillParams(req, routed, rule, previous, storeKey))
  try {
    const outcome = await fill.outcome
    x.upstreamMs = fill.upstreamMs
    const revalidating = previous !== undefined
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
        x.outcome = { fwd, stored: true, collapsed: joined, ...(revalidating ? { fwdStatus: fill.status } : {}) }
        if ((await sendFill(req, res, fill, cursor, formatCacheStatus(x.outcome))) === 'sent') return
        // Several ranges or an unknown length: wait for the whole object, then answer from cache.
        fill.detach(cursor)
        return await sendWhenStored(x, deps, fill, routed, rule)
      }
      case 'not-modified': {
        // 304 from upstream: the stored headers were refreshed, the body is reused.
        const entry = outcome.entry
        if (!varyMatches(entry.meta.vary, req.headers)) return await fetchOwn(x, deps, routed, 'vary-miss')
        x.outcome = { fwd, fwdStatus: 304, collapsed: joined }
        if ((await sendStored(x, deps, entry, freshnessOf(entry, rule))) === 'sent') return
        return await fetchOwn(x, deps, routed, fwd)
      }
      case 'uncacheable': {
        // The upstream answered 5xx: a stale copy may stand in (stale-if-error, RFC 5861).
        const status = outcome.response.status
        if (
          previous !== undefined &&
          status >= 500 &&
          canServeStaleOnError(freshnessOf(previous, rule), previous.meta.responseAt, now, false)
        ) {
          x.outcome = { fwd: 'stale', fwdStatus: status, detail: 'stale-if-error' }
          if ((await sendStored(x, deps, previous, freshnessOf(previous, rule))) === 'sent') return
        }
        // Not storable: the client that started the fill gets its body; joiners fetch their own.
        const body = joined ? undefined : fill.claimBody()
        if (body === undefined) return await fetchOwn(x, deps, routed, fwd)
        x.outcome = { fwd, detail: outcome.reason }
        return await streamResponse(req, res, { ...outcome.response, headers: fill.headers, body }, formatCacheStatus(x.outcome))
      }
      case 'failed': {
        // Upstream unreachable: a stale copy beats an error, unless the response forbade it.
        if (previous !== undefined && canServeStaleOnError(freshnessOf(previous, rule), previous.meta.responseAt, now, true)) {
          x.outcome = { fwd: 'stale', detail: 'stale-if-error' }
          if ((await sendStored(x, deps, previous, freshnessOf(previous, rule))) === 'sent') return
        }
        x.outcome = { fwd }
        return sendFailure(res, outcome.error, x.outcome)
      }
    }
  } finally {
    fill.release(cursor)
  }
}

function fillParams(
  req: IncomingMessage,
  routed: Routed,
  rule: CacheRule | undefined,
  previous: CachedEntry | undefined,
  storeKey: string,
): FillParams {
  const authorized = req.headers.authorization !== undefined
  const headers = fillHeaders(req.headers)
  // Credentials go upstream only on this client's own fill, which nobody else joins.
  if (authorized) headers.authorization = headerValue(req.headers.authorization) as string
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
  }
}

async function sendOffline(x: Exchange, deps: Deps, routed: Routed): Promise<void> {
  const rule = matchRule(routed.route.rules, routed.relativePath)
  const { entry } = x.req.headers.authorization === undefined ? await lookup(x, deps, routed) : { entry: undefined }
  if (entry !== undefined) {
    const freshness = freshnessOf(entry, rule)
    const now = deps.now()
    const ttl = ttlSeconds(freshness, entry.meta.responseAt, now)
    const fresh = decideUse(freshness, entry.meta.responseAt, now, NO_DIRECTIVES) === 'fresh'
    if (fresh || !freshness.mustRevalidate) {
      x.outcome = { hit: true, ttl, ...(fresh ? {} : { detail: 'offline' }) }
      if ((await sendStored(x, deps, entry, freshness)) === 'sent') return
    }
  }
  sendError(x.res, 504, 'offline: not in cache', { fwd: 'miss', detail: 'offline' })
}

/** stale-while-revalidate: the client got the stale copy; refresh it without anyone waiting. */
function revalidateInBackground(
  x: Exchange,
  deps: Deps,
  routed: Routed,
  rule: CacheRule | undefined,
  entry: CachedEntry,
  storeKey: string,
): void {
  const params = { ...fillParams(x.req, routed, rule, entry, storeKey), requestCacheControl: undefined }
  // Background refreshes carry no credentials: the result is shared.
  if (params.authorized) return
  const { fill, cursor } = deps.fills.join(params)
  fill.release(cursor)
}

/** Waits until the fill is in the store and serves the stored entry (ranges, 416 and so on). */
async function sendWhenStored(x: Exchange, deps: Deps, fill: Fill, routed: Routed, rule: CacheRule | undefined): Promise<void> {
  await fill.whenDone()
  const entry = fill.entry
  if (fill.state === 'failed' || entry === undefined) return fetchOwn(x, deps, routed, 'miss')
  if ((await sendStored(x, deps, entry, freshnessOf(entry, rule))) === 'gone') return fetchOwn(x, deps, routed, 'miss')
}

/** `formatCacheStatus({ hit: true, ttl })`, without its generic field checks (the hot path). */
function hitStatus(ttl: number): string {
  return Number.isFinite(ttl) ? `${CACHE_NAME}; hit; ttl=${ttl}` : `${CACHE_NAME}; hit`
}

/** Sends a stored entry with Age and our Cache-Status. */
function sendStored(x: Exchange, deps: Deps, entry: CachedEntry, freshness: Freshness): 'sent' | Promise<'sent' | 'gone'> {
  const ageSeconds = Math.floor(currentAgeMs(freshness, entry.meta.responseAt, deps.now()) / 1000)
  return sendCached(x.req, x.res, entry, deps.store, { cacheStatus: formatCacheStatus(x.outcome), ageSeconds })
}

/** This client's own upstream request; nothing is stored. */
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
  const purges: Promise<boolean>[] = []
  // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and the
  // same-origin Location and Content-Location. Done when the upstream's headers arrive, so that
  // no request sent after the client has the response can still find the old entry.
  await deps.passThrough.web(x.req, x.res, routed, (status, headers) => {
    if (SAFE_METHODS.has(method) || status < 200 || status >= 400) return
    for (const key of invalidatedKeys(deps.config.routes, routed, headers)) {
      deps.fills.invalidate(key)
      purges.push(deps.store.purge(key))
    }
    // Other workers have dropped the URLs before this response goes out.
    return deps.peers?.barrier()
  })
  for (const result of await Promise.allSettled(purges)) {
    if (result.status === 'rejected') x.log.warn({ err: result.reason }, 'cache invalidation failed')
  }
}

function freshnessOf(entry: CachedEntry, rule: CacheRule | undefined): Freshness {
  entry.freshness ??= computeFreshness(entry.meta, rule)
  return entry.freshness
}
