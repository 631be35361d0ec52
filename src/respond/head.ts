// src/respond/head.ts
// Builds the header list sent to a client from a stored or filling response's header block.

import type { ServerResponse } from 'node:http'
import type { Writable } from 'node:stream'
import type { RawHeaders } from '../http/headers.js'

export interface HeadOptions {
  /** Age in seconds; replaces any stored Age. */
  readonly ageSeconds?: number | undefined
  /** Our Cache-Status member; appended after the ones upstream caches set (RFC 9211 §2). */
  readonly cacheStatus: string
  /** Lower-case names to leave out. */
  readonly drop?: ReadonlySet<string>
  /** Only these lower-case names are kept (e.g. for 304). */
  readonly keep?: ReadonlySet<string>
  /** Extra fields, as `[name, value, …]`. */
  readonly add?: readonly string[]
}

export function buildHead(stored: RawHeaders, o: HeadOptions): string[] {
  const out: string[] = []
  for (let i = 0; i < stored.length; i += 2) {
    const name = stored[i] as string
    const lower = name.toLowerCase()
    if (o.ageSeconds !== undefined && lower === 'age') continue
    // Our own targeted field is for this cache only (RFC 9213): never passed on.
    if (lower === 'cachemir-cache-control') continue
    if (o.drop?.has(lower) === true) continue
    if (o.keep !== undefined && !o.keep.has(lower)) continue
    out.push(name, stored[i + 1] as string)
  }
  if (o.ageSeconds !== undefined) out.push('Age', String(o.ageSeconds))
  if (o.add !== undefined) out.push(...o.add)
  out.push('Cache-Status', o.cacheStatus)
  return out
}

/**
 * A stored header block as sent with every full response, computed once per stored version
 * (metas are never modified, a refresh makes a new one): the hit path only appends Age and
 * Cache-Status instead of filtering and lower-casing every field per request.
 */
const fullHeads = new WeakMap<RawHeaders, readonly string[]>()

export function buildFullHead(stored: RawHeaders, ageSeconds: number, cacheStatus: string): string[] {
  let base = fullHeads.get(stored)
  if (base === undefined) {
    base = buildHead(stored, { ageSeconds: 0, cacheStatus: '' }).slice(0, -4)
    fullHeads.set(stored, base)
  }
  const out = base.slice()
  out.push('Age', String(ageSeconds), 'Cache-Status', cacheStatus)
  return out
}

/** Writes the status line and headers, keeping the upstream's reason phrase when there is one. */
export function writeHead(res: ServerResponse, status: number, statusText: string, headers: string[]): void {
  if (statusText !== '') res.writeHead(status, statusText, headers)
  else res.writeHead(status, headers)
}

/** Resolves true on 'drain', false if the response closes first. */
export function drained(res: Writable): Promise<boolean> {
  // A response destroyed while the caller awaited something else will never emit either event.
  if (res.destroyed || res.closed) return Promise.resolve(false)
  return new Promise((resolve) => {
    const onDrain = (): void => {
      res.off('close', onClose)
      resolve(true)
    }
    const onClose = (): void => {
      res.off('drain', onDrain)
      resolve(false)
    }
    res.once('drain', onDrain)
    res.once('close', onClose)
  })
}
