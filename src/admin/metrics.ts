// src/admin/metrics.ts
// The mirror's figures: counted per request with plain numbers (the hot path pays a Map lookup),
// read into prom-client's registry when /_cachemir/metrics is scraped, and as JSON for /stats.

import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { TieredStore } from '../cache/tiered-store.js'
import type { FillRegistry } from '../upstream/fill-registry.js'
import type { UpstreamClient } from '../upstream/client.js'

/** Upper bounds of the upstream duration histogram, in seconds (time to response headers). */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export interface MetricSources {
  readonly store: TieredStore
  readonly fills: FillRegistry
  readonly upstream: UpstreamClient
}

export class Metrics {
  readonly registry = new Registry()
  /** `route\0cache_status` -> requests. */
  readonly #requests = new Map<string, number>()
  readonly #servedBytes = { cache: 0, upstream: 0 }
  readonly #durations: Histogram<'upstream'>

  constructor(s: MetricSources) {
    const requests = this.#requests
    const served = this.#servedBytes
    const registry = this.registry
    new Counter({
      name: 'cachemir_requests_total',
      help: 'Requests answered through a route, by route prefix and cache outcome (the Cache-Status word).',
      labelNames: ['route', 'cache_status'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [key, n] of requests) {
          const [route = '', cacheStatus = ''] = key.split('\u0000')
          this.inc({ route, cache_status: cacheStatus }, n)
        }
      },
    })
    new Counter({
      name: 'cachemir_served_bytes_total',
      help: 'Bytes sent to clients (headers included), by where the response came from.',
      labelNames: ['source'],
      registers: [registry],
      collect() {
        this.reset()
        this.inc({ source: 'cache' }, served.cache)
        this.inc({ source: 'upstream' }, served.upstream)
      },
    })
    new Gauge({
      name: 'cachemir_cache_bytes',
      help: 'Bytes held by each cache tier.',
      labelNames: ['tier'],
      registers: [registry],
      collect() {
        const st = s.store.stats()
        this.set({ tier: 'memory' }, st.memoryBytes)
        this.set({ tier: 'disk' }, st.diskBytes)
      },
    })
    new Gauge({
      name: 'cachemir_cache_entries',
      help: 'Entries held by each cache tier.',
      labelNames: ['tier'],
      registers: [registry],
      collect() {
        const st = s.store.stats()
        this.set({ tier: 'memory' }, st.memoryEntries)
        this.set({ tier: 'disk' }, st.diskEntries)
      },
    })
    new Counter({
      name: 'cachemir_evictions_total',
      help: 'Entries evicted to keep a tier within its budget.',
      labelNames: ['tier'],
      registers: [registry],
      collect() {
        this.reset()
        this.inc({ tier: 'disk' }, s.store.stats().evictions)
      },
    })
    new Gauge({
      name: 'cachemir_fills_in_flight',
      help: 'Upstream fills running now.',
      registers: [registry],
      collect() {
        this.set(s.fills.size)
      },
    })
    new Counter({
      name: 'cachemir_coalesced_requests_total',
      help: 'Requests that joined a fill already running instead of asking the upstream.',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(s.fills.counters.joined)
      },
    })
    new Counter({
      name: 'cachemir_upstream_errors_total',
      help: 'Upstream requests that failed (unreachable, timed out, or 5xx).',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(s.upstream.counters.failures)
      },
    })
    this.#durations = new Histogram({
      name: 'cachemir_upstream_request_duration_seconds',
      help: 'Time from sending an upstream request to its response headers, by upstream origin.',
      labelNames: ['upstream'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    })
  }

  /** One request answered through a route (`route` its prefix); `bytes` as written to the socket. */
  countRequest(route: string, cacheStatus: string, fromCache: boolean, bytes: number): void {
    const key = `${route}\u0000${cacheStatus}`
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1)
    if (fromCache) this.#servedBytes.cache += bytes
    else this.#servedBytes.upstream += bytes
  }

  /** One upstream exchange reached its response headers (or failed) after `seconds`. */
  observeUpstream(origin: string, seconds: number): void {
    this.#durations.observe({ upstream: origin }, seconds)
  }

  /** The same figures as JSON, for /_cachemir/stats and `cachemir stats`. */
  async snapshot(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {}
    for (const metric of await this.registry.getMetricsAsJSON()) out[metric.name] = metric.values
    return out
  }
}
