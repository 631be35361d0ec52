// src/proxy/pass-on.ts
// Methods other than GET and HEAD: passed to the upstream with their bodies; a successful unsafe
// one invalidates what it changed.

import type { Deps, Exchange } from './exchange.js'
import { invalidatedKeys } from './invalidation.js'
import { purgeKeys, type Purge } from './purge.js'
import type { Routed } from './route.js'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

export async function passOn(x: Exchange, deps: Deps, routed: Routed, method: string): Promise<void> {
  x.outcome = { fwd: 'method' }
  let purge: Purge | undefined
  // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI and the
  // same-origin Location and Content-Location. Done when the upstream's headers arrive, so that
  // no request sent after the client has the response can still find the old entry.
  await deps.passThrough.web(x.req, x.res, routed, (status, headers) => {
    if (SAFE_METHODS.has(method) || status < 200 || status >= 400) return
    purge = purgeKeys(deps, invalidatedKeys(deps.config.routes, routed, headers))
    // Other workers have dropped the URLs before this response goes out.
    return deps.peers === undefined ? undefined : purge.everywhere
  })
  for (const result of (await purge?.removed) ?? []) {
    if (result.status === 'rejected') x.log.warn({ err: result.reason }, 'cache invalidation failed')
  }
}
