// src/proxy/fetch-own.ts
// This client's own upstream request, streamed back and never stored: credentials, uncacheable
// answers a joiner cannot share, Vary mismatches, routes that forbid storing.

import { sendFailure } from '../respond/send-error.js'
import { routeTransform, type Deps, type Exchange, type Fwd } from './exchange.js'
import { fetchPrivately } from './pass-through.js'
import type { Routed } from './route.js'

export async function fetchOwn(x: Exchange, deps: Deps, routed: Routed, fwd: Fwd): Promise<void> {
  x.outcome = { fwd }
  const cacheStatus = deps.cacheStatus.format(x.outcome)
  const t0 = Date.now()
  try {
    await fetchPrivately(x.req, x.res, routed, deps.upstream, cacheStatus, routeTransform(deps, routed, x.req))
  } catch (err) {
    sendFailure(x.res, err, cacheStatus)
  } finally {
    x.upstreamMs ??= Date.now() - t0
  }
}
