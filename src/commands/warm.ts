// src/commands/warm.ts
// `cachemir warm`: prefetches paths or URLs through the running mirror, so they take the same fill
// path as live traffic (a warm of a path a client is filling joins that fill). Items come from the
// command line, a file, stdin, or an npm package-lock.json (its `resolved` URLs).

import { readFile } from 'node:fs/promises'
import { request } from 'undici'
import type { Route } from '../config-types.js'
import { targetWithinRoute } from '../proxy/route.js'
import type { ServerTarget } from './admin-client.js'

export interface WarmReport {
  readonly done: number
  readonly bytes: number
  readonly failed: readonly { readonly item: string; readonly reason: string }[]
}

/** The items of a warm list: a package-lock.json's `resolved` URLs, else one path or URL per line (`#` comments). */
export function parseWarmList(text: string): string[] {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    const lock = JSON.parse(trimmed) as {
      packages?: Record<string, { resolved?: unknown }>
      dependencies?: Record<string, { resolved?: unknown }>
    }
    const entries = Object.values(lock.packages ?? lock.dependencies ?? {})
    return [...new Set(entries.map((e) => e.resolved).filter((r): r is string => typeof r === 'string'))]
  }
  return trimmed
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
}

/** Reads `--from FILE`, or stdin for `-`. */
export async function readWarmList(from: string): Promise<string[]> {
  if (from !== '-') return parseWarmList(await readFile(from, 'utf8'))
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return parseWarmList(Buffer.concat(chunks).toString('utf8'))
}

/** The mirror path an item names: a path as is, a URL on the mirror, or a URL under a route's upstream. */
export function mirrorPath(item: string, base: string, routes: readonly Route[]): string | undefined {
  if (item.startsWith('/')) return item
  if (!URL.canParse(item)) return undefined
  if (item.startsWith(`${base}/`)) return item.slice(base.length)
  const url = new URL(item)
  for (const route of routes) {
    const target = targetWithinRoute(route, url)
    if (target !== undefined) return route.prefix + target
  }
  return undefined
}

/** GETs every item through the mirror, `concurrency` at a time; a failure does not stop the others. */
export async function warm(
  target: ServerTarget,
  items: readonly string[],
  concurrency: number,
  routes: readonly Route[] = [],
): Promise<WarmReport> {
  let done = 0
  let bytes = 0
  const failed: { item: string; reason: string }[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as string
      const path = mirrorPath(item, target.base, routes)
      if (path === undefined) {
        failed.push({ item, reason: 'neither a path, a URL on the mirror, nor under a route upstream' })
        continue
      }
      try {
        const res = await request(target.base + path, { headersTimeout: 60_000, bodyTimeout: 300_000 })
        for await (const chunk of res.body) bytes += (chunk as Buffer).length
        if (res.statusCode >= 200 && res.statusCode < 300) done++
        else failed.push({ item, reason: `HTTP ${res.statusCode}` })
      } catch (err) {
        failed.push({ item, reason: err instanceof Error && 'code' in err ? String(err.code) : String(err) })
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
  return { done, bytes, failed }
}
