// src/admin/sync.ts
// Synchronising with the original: every cached entry (or those under a prefix) is revalidated
// with a conditional request through the fill path live traffic uses (so it joins a fill a client
// started), and counted as unchanged (304), updated, gone (404/410: removed) or failed. POST
// /_cachemir/sync runs it on demand (`cachemir sync`); `serve --sync-every` on a timer.

import type { Config } from '../config-types.js'
import { matchRule } from '../policy/freshness.js'
import type { Deps } from '../proxy/exchange.js'
import { urlKeyOf } from '../proxy/cache-key.js'
import { purgeKeys } from '../proxy/purge.js'
import { routeRequest } from '../proxy/route.js'
import type { CacheStatusWriter } from '../respond/cache-status.js'
import { sendError } from '../respond/send-error.js'
import { discardBody } from '../upstream/client.js'
import { admitted } from './access.js'
import { sendJson, type AdminEndpoint } from './router.js'

export interface SyncReport {
  unchanged: number
  updated: number
  gone: number
  failed: number
  /** Entries a sync cannot revalidate alone: Vary variants and negotiated representations. */
  skipped: number
}

type SyncDeps = Pick<Deps, 'store' | 'fills' | 'peers'>

/** Revalidates, one at a time, every plain entry whose key starts with `prefix`. */
export async function syncEntries(deps: SyncDeps, config: Pick<Config, 'routes'>, prefix = '/'): Promise<SyncReport> {
  const report: SyncReport = { unchanged: 0, updated: 0, gone: 0, failed: 0, skipped: 0 }
  const keys: string[] = []
  for await (const { meta } of deps.store.list()) {
    if (!meta.key.startsWith(prefix)) continue
    // A variant's key carries request header values a sync does not have.
    if (urlKeyOf(meta.key) !== meta.key) report.skipped++
    else keys.push(meta.key)
  }
  for (const key of keys) {
    const routed = routeRequest(config.routes, key)
    const entry = await deps.store.lookup(key)
    if ('error' in routed || entry === undefined) continue
    const rule = matchRule(routed.route.rules, routed.relativePath)
    const { fill, cursor } = deps.fills.join({
      key,
      registryKey: key,
      authorized: false,
      route: routed.route,
      relativePath: routed.relativePath,
      headers: {},
      requestHeaders: {},
      requestCacheControl: 'max-age=0',
      rule,
      previous: entry,
    })
    try {
      const outcome = await fill.outcome
      // An answer not stored: its body is nobody's; read it off so the connection is free.
      if (outcome.kind === 'uncacheable') {
        const body = fill.claimBody()
        if (body !== undefined) discardBody(body)
      }
      const gone = outcome.kind !== 'not-modified' && outcome.kind !== 'failed' && (fill.status === 404 || fill.status === 410)
      if (gone) {
        // The original removed it: so does the mirror (a stored 404 too).
        if (outcome.kind === 'stream') await fill.whenDone()
        const purge = purgeKeys(deps, [key])
        await purge.everywhere
        await purge.removed
        report.gone++
      } else if (outcome.kind === 'not-modified') report.unchanged++
      else if (outcome.kind === 'stream') {
        await fill.whenDone()
        // An upstream without validators answers 200 every time: the same bytes are unchanged.
        if (!fill.stored) report.failed++
        else if (fill.entry?.meta.sha256 === entry.meta.sha256) report.unchanged++
        else report.updated++
      } else report.failed++
    } finally {
      fill.release(cursor)
    }
  }
  return report
}

export function syncEndpoint(deps: SyncDeps, config: Pick<Config, 'routes' | 'adminToken'>, cacheStatus: CacheStatusWriter): AdminEndpoint {
  return {
    path: 'sync',
    methods: ['POST'],
    handle: async (req, res) => {
      if (!admitted(req, res, config.adminToken, cacheStatus)) return
      const prefix = new URL(req.url ?? '/', 'http://mirror').searchParams.get('prefix') ?? '/'
      if (!prefix.startsWith('/')) return sendError(res, 400, 'prefix: expected a path starting with /', cacheStatus.format({}))
      sendJson(req, res, 200, await syncEntries(deps, config, prefix))
    },
  }
}
