// bench/soak/objects.ts
// The object set both origins serve: deterministic bodies of mixed sizes and caching headers.

import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { isNotModified, makeBody, sendBody, sha256, type SendOptions, type Validators } from '../../test/helpers/origin.js'
import { MiB } from '../lib/util.js'

export const KiB = 1024

export type Rand = () => number

export interface SoakObject {
  readonly id: number
  readonly body: Buffer
  readonly digest: string
  readonly headers: OutgoingHttpHeaders
  readonly validators: Validators
}

/** mulberry32: small, seedable, good enough to pick sizes and actions. */
export function mulberry32(seed: number): Rand {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function pick<T>(rand: Rand, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T
}

/** Half under 16 KiB, 5 % from 2 to 8 MiB; log-uniform within each tier. */
function randomSize(rand: Rand): number {
  const r = rand()
  const [lo, hi] = r < 0.5 ? [KiB, 16 * KiB] : r < 0.8 ? [16 * KiB, 256 * KiB] : r < 0.95 ? [256 * KiB, 2 * MiB] : [2 * MiB, 8 * MiB]
  return Math.round(lo * (hi / lo) ** rand())
}

/** `count` objects with ids 0 … count-1; the same `seed` gives the same bodies and headers. */
export function makeObjects(count: number, seed: number): SoakObject[] {
  const rand = mulberry32(seed)
  const objects: SoakObject[] = []
  for (let id = 0; id < count; id++) {
    // Object 0 is the largest allowed size and object 1 the smallest, whatever the seed.
    const size = id === 0 ? 8 * MiB : id === 1 ? KiB : randomSize(rand)
    const body = makeBody(size, (seed * 7919 + id + 1) >>> 0)
    const digest = sha256(body)
    const r = rand()
    let cacheControl = r < 0.05 ? 'no-store' : r < 0.1 ? 'no-cache' : `max-age=${pick(rand, [0, 0, 1, 2, 5, 10, 30, 60, 120, 300, 600])}`
    if (r >= 0.1 && rand() < 0.25) cacheControl += ', stale-while-revalidate=30'
    if (r >= 0.1 && rand() < 0.3) cacheControl += ', stale-if-error=600'
    const validators: Validators = {}
    if (rand() < 0.55) validators.etag = `${rand() < 0.1 ? 'W/' : ''}"${digest.slice(0, 16)}"`
    if (rand() < 0.5) validators.lastModified = new Date(Date.UTC(2024, 0, 1) + id * 3_600_000).toUTCString()
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'cache-control': cacheControl }
    if (validators.etag !== undefined) headers['etag'] = validators.etag
    if (validators.lastModified !== undefined) headers['last-modified'] = validators.lastModified
    objects.push({ id, body, digest, headers, validators })
  }
  return objects
}

/** Origin and mirror paths are the same: `/m/o/ID` or `/d/o/ID`. */
export function objectAt(objects: readonly SoakObject[], url: string | undefined): SoakObject | undefined {
  const m = /^\/[md]\/o\/(\d+)$/.exec(url ?? '')
  return m === null ? undefined : objects[Number(m[1])]
}

/** A 304 when the request's validators match (RFC 9110 §13.1), else the body with `send` options. */
export async function serveObject(req: IncomingMessage, res: ServerResponse, obj: SoakObject, send: SendOptions): Promise<void> {
  if (isNotModified(req, obj.validators)) {
    res.writeHead(304, obj.headers)
    res.end()
    return
  }
  await sendBody(req, res, obj.body, { ...send, headers: obj.headers })
}
