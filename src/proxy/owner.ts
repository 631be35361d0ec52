// src/proxy/owner.ts
// In a worker group: hands a request to the worker that owns (fills) its URL.

import type { Exchange, Deps } from './exchange.js'
import type { Routed } from './route.js'

/**
 * 'answered' when the owner answered the client; 'local' when this worker is the owner, the
 * request came from a peer, or the owner is unreachable (this worker then serves it itself).
 */
export async function askOwner(x: Exchange, deps: Deps, routed: Routed): Promise<'answered' | 'local'> {
  const peers = deps.peers
  const owner = peers?.ownerToAsk(routed.key, x.req, x.fromPeer)
  if (peers === undefined || owner === undefined) return 'local'
  const result = await peers.forward(x.req, x.res, owner, (outcome) => (x.outcome = outcome))
  return result === 'unavailable' ? 'local' : 'answered'
}
