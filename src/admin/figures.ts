// src/admin/figures.ts
// GET /_cachemir/metrics (Prometheus text exposition) and GET /_cachemir/stats (the same figures as JSON).

import type { Metrics } from './metrics.js'
import { sendJson, type AdminEndpoint } from './router.js'

export function metricsEndpoint(metrics: Metrics): AdminEndpoint {
  return {
    path: 'metrics',
    methods: ['GET', 'HEAD'],
    handle: async (req, res) => {
      const body = await metrics.registry.metrics()
      res.writeHead(200, {
        'Content-Type': metrics.registry.contentType,
        'Cache-Control': 'no-store',
        'Content-Length': Buffer.byteLength(body),
      })
      res.end(req.method === 'HEAD' ? undefined : body)
    },
  }
}

export function statsEndpoint(metrics: Metrics): AdminEndpoint {
  return { path: 'stats', methods: ['GET', 'HEAD'], handle: async (req, res) => sendJson(req, res, 200, await metrics.snapshot()) }
}
