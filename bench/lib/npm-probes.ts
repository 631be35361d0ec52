// bench/lib/npm-probes.ts
// Single requests of the `packages` scenario, outside any npm install: warming a fresh mirror,
// timing one document or tarball miss against the origin, and reading a (large) rewritten
// document to the end while counting the URLs it holds.
import { once } from 'node:events'
import type { Readable } from 'node:stream'
import { createGunzip } from 'node:zlib'
import { request, type Dispatcher } from 'undici'
import { documentPath, tarballPath } from './npm-packages.js'

/** What npm 11 sends for the full documents `npm install` asks for (application/json, not the abbreviated form). */
export const NPM_DOCUMENT_HEADERS = { accept: 'application/json', 'accept-encoding': 'gzip,deflate' } as const

export interface Timed {
  status: number
  /** Request sent to response headers. */
  headersMs: number
  /** Request sent to the body's last byte. */
  totalMs: number
}

/** One GET, body read to the end and dropped. */
export async function timedGet(url: string, headers: Record<string, string>, dispatcher: Dispatcher): Promise<Timed> {
  const t0 = performance.now()
  const res = await request(url, { headers, dispatcher })
  const headersMs = performance.now() - t0
  await res.body.dump({ limit: Infinity })
  return { status: res.statusCode, headersMs, totalMs: performance.now() - t0 }
}

/** The document and the tarball of each of `names` through `mirror`, so a fresh process has run every path once. */
export async function warmMirror(mirror: string, names: readonly string[], dispatcher: Dispatcher): Promise<void> {
  for (const name of names) {
    await timedGet(`${mirror}/${documentPath(name)}`, NPM_DOCUMENT_HEADERS, dispatcher)
    await timedGet(`${mirror}/${tarballPath(name, '1.0.0')}`, {}, dispatcher)
  }
}

export interface MissTimes {
  documents: { mirror: Timed[]; direct: Timed[] }
  tarballs: { mirror: Timed[]; direct: Timed[] }
}

/**
 * Each of `names` once through the mirror (a miss: nothing else asks for these) and once
 * directly, alternating, one request at a time: document (as npm asks for it), then its tarball.
 */
export async function missTimes(mirror: string, origin: string, names: readonly string[], dispatcher: Dispatcher): Promise<MissTimes> {
  const out: MissTimes = { documents: { mirror: [], direct: [] }, tarballs: { mirror: [], direct: [] } }
  for (const name of names) {
    out.documents.mirror.push(await timedGet(`${mirror}/${documentPath(name)}`, NPM_DOCUMENT_HEADERS, dispatcher))
    out.documents.direct.push(await timedGet(`${origin}/${documentPath(name)}`, NPM_DOCUMENT_HEADERS, dispatcher))
    out.tarballs.mirror.push(await timedGet(`${mirror}/${tarballPath(name, '1.0.0')}`, {}, dispatcher))
    out.tarballs.direct.push(await timedGet(`${origin}/${tarballPath(name, '1.0.0')}`, {}, dispatcher))
  }
  return out
}

export interface ReadDocument {
  status: number
  contentEncoding: string
  /** Bytes on the wire, and decoded. */
  wireBytes: number
  bytes: number
  /** How often each needle occurs in the decoded body. */
  found: number[]
  ms: number
}

/** GET `url` and read it to the end, gunzipping a gzip body, counting `needles` (ASCII) across chunk edges. */
export async function readDocument(url: string, headers: Record<string, string>, needles: readonly string[]): Promise<ReadDocument> {
  const t0 = performance.now()
  const res = await request(url, { headers })
  const contentEncoding = String(res.headers['content-encoding'] ?? 'identity')
  let wireBytes = 0
  res.body.on('data', (c: Buffer) => (wireBytes += c.length))
  const decoded: Readable = contentEncoding === 'gzip' ? res.body.pipe(createGunzip()) : res.body
  const keep = Math.max(0, ...needles.map((n) => n.length - 1))
  const found = needles.map(() => 0)
  let bytes = 0
  let carry = ''
  decoded.on('data', (c: Buffer) => {
    bytes += c.length
    // latin1 keeps one character per byte, so positions and lengths stay byte counts.
    const text = carry + c.toString('latin1')
    needles.forEach((needle, k) => {
      // Count matches that start before the kept tail: a match inside the tail is counted next time.
      const limit = text.length - keep
      for (let i = text.indexOf(needle); i >= 0 && i < limit; i = text.indexOf(needle, i + needle.length)) found[k] = (found[k] ?? 0) + 1
    })
    carry = text.slice(Math.max(0, text.length - keep))
  })
  await once(decoded, 'end')
  needles.forEach((needle, k) => {
    for (let i = carry.indexOf(needle); i >= 0; i = carry.indexOf(needle, i + needle.length)) found[k] = (found[k] ?? 0) + 1
  })
  return { status: res.statusCode, contentEncoding, wireBytes, bytes, found, ms: performance.now() - t0 }
}
