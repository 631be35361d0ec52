// src/admin/health.ts
// GET /_cachemir/health: liveness and a summary of the store, fills, upstreams and workers.

import type { Config } from '../config.js'
import type { TieredStore } from '../cache/tiered-store.js'
import type { Peers } from '../cluster/peers.js'
import type { FillRegistry } from '../upstream/fill-registry.js'
import type { Integrity } from '../integrity/integrity.js'
import type { UpstreamClient } from '../upstream/client.js'
import { sendJson, type AdminEndpoint } from './router.js'

export interface HealthSources {
  readonly config: Config
  readonly store: TieredStore
  readonly fills: FillRegistry
  readonly upstream: UpstreamClient
  readonly peers: Peers | undefined
  /** File checks against published digests: passed, failed (not stored), unchecked (no digest cached). */
  readonly integrity?: Integrity
  /** When this process started serving (epoch ms). */
  readonly startedAt: number
}

export function healthEndpoint(s: HealthSources): AdminEndpoint {
  return {
    path: 'health',
    methods: ['GET', 'HEAD'],
    handle: (req, res) =>
      sendJson(req, res, 200, {
        status: 'ok',
        pid: process.pid,
        uptimeMs: Date.now() - s.startedAt,
        store: s.store.stats(),
        fills: { active: s.fills.size, ...s.fills.counters },
        ...(s.integrity === undefined ? {} : { integrity: s.integrity.counters }),
        offline: s.config.offline,
        upstream: s.upstream.counters,
        routes: s.config.routes.map((r) => ({ prefix: r.prefix, upstreams: s.upstream.health.report(r.upstreams) })),
        ...(s.peers === undefined ? {} : { worker: { index: s.peers.self.index, count: s.peers.self.count, ...s.peers.counters } }),
      }),
  }
}
