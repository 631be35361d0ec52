// src/respond/send-cached.ts
// Sends a stored entry: Age and Cache-Status, 304 for conditional clients, 206/416 for ranges,
// headers only for HEAD; the body from memory or streamed from its disk file.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FileHandle } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { pipeline } from 'node:stream/promises'
import type { CachedEntry } from '../cache/entry.js'
import type { TieredStore } from '../cache/tiered-store.js'
import { getRaw, headerValue } from '../http/headers.js'
import { sendIfNotModified } from './conditional.js'
import { evaluateRange, type ByteRange } from './range.js'
import { buildFullHead, buildHead, writeHead } from './head.js'
import { BodyVerifier } from './body-verifier.js'
import { READ_HIGH_WATER_MARK } from './read-sizes.js'
import { transformFor, type ServedTransform } from './body-transform.js'
import { sendTransformedEntry } from './send-transformed.js'

export interface SendCachedOptions {
  readonly cacheStatus: string
  readonly ageSeconds: number
  /** The route's body transform, if it has one (see body-transform.ts), and the target below its prefix. */
  readonly transform?: ServedTransform | undefined
  readonly relativePath?: string
}

const LENGTH_FIELDS = new Set(['content-length', 'content-range'])

/**
 * Sends `entry`. Returns 'gone' without writing anything when the body file turned out missing or
 * corrupt (the store has dropped it; the caller treats the request as a miss). An entry whose body
 * is in memory is sent synchronously (no promise on the hot path); a disk body returns a promise.
 */
export function sendCached(
  req: IncomingMessage,
  res: ServerResponse,
  entry: CachedEntry,
  store: TieredStore,
  o: SendCachedOptions,
): 'sent' | Promise<'sent' | 'gone'> {
  const meta = entry.meta
  if (o.transform !== undefined) {
    const transform = transformFor(
      o.transform,
      meta.status,
      o.relativePath ?? '',
      meta.headers,
      headerValue(req.headers['accept-encoding']),
    )
    if (transform !== undefined) return sendTransformedEntry(req, res, entry, store, o, transform)
  }
  const isHead = req.method === 'HEAD'
  // The common case first: a whole 200 without conditionals or ranges, from memory.
  if (
    meta.status === 200 &&
    entry.body !== undefined &&
    req.headers.range === undefined &&
    req.headers['if-none-match'] === undefined &&
    req.headers['if-modified-since'] === undefined
  ) {
    writeHead(res, 200, meta.statusText, buildFullHead(meta.headers, o.ageSeconds, o.cacheStatus))
    return isHead ? end(res) : end(res, entry.body)
  }
  return sendEntry(req, res, entry, store, o)
}

async function sendEntry(
  req: IncomingMessage,
  res: ServerResponse,
  entry: CachedEntry,
  store: TieredStore,
  o: SendCachedOptions,
): Promise<'sent' | 'gone'> {
  const meta = entry.meta
  const head = (extra: Omit<Parameters<typeof buildHead>[1], 'cacheStatus' | 'ageSeconds'>): string[] =>
    buildHead(meta.headers, { ...extra, ageSeconds: o.ageSeconds, cacheStatus: o.cacheStatus })

  if (meta.status === 200 && sendIfNotModified(req, res, meta.headers, o)) return 'sent'
  const isHead = req.method === 'HEAD'
  const decision =
    meta.status === 200
      ? evaluateRange(headerValue(req.headers.range), headerValue(req.headers['if-range']), meta.bodyBytes, meta.headers)
      : ({ kind: 'full' } as const)

  if (decision.kind === 'unsatisfiable') {
    writeHead(res, 416, '', head({ drop: LENGTH_FIELDS, add: ['Content-Range', `bytes */${meta.bodyBytes}`, 'Content-Length', '0'] }))
    res.end()
    return 'sent'
  }

  // Open the body before sending anything, so a broken file can still become a miss.
  let fh: FileHandle | undefined
  if (!isHead && entry.body === undefined && meta.bodyBytes > 0) {
    fh = await store.openBody(entry)
    if (fh === undefined) return 'gone'
  }

  if (decision.kind === 'full') {
    writeHead(res, meta.status, meta.statusText, buildFullHead(meta.headers, o.ageSeconds, o.cacheStatus))
    if (isHead) return end(res)
    if (entry.body !== undefined) return end(res, entry.body)
    if (!entry.verified) return sendVerified(res, fh, entry, store)
    return sendFile(res, fh, [{ start: 0, end: meta.bodyBytes - 1 }], undefined)
  }

  const ranges = decision.ranges
  if (ranges.length === 1) {
    const r = ranges[0] as ByteRange
    const add = ['Content-Range', `bytes ${r.start}-${r.end}/${meta.bodyBytes}`, 'Content-Length', String(r.end - r.start + 1)]
    writeHead(res, 206, '', head({ drop: LENGTH_FIELDS, add }))
    if (isHead) return end(res)
    if (entry.body !== undefined) return end(res, entry.body.subarray(r.start, r.end + 1))
    return sendFile(res, fh, [r], undefined)
  }

  // Several ranges: multipart/byteranges (RFC 9110 §14.6).
  const boundary = randomBytes(12).toString('hex')
  const type = getRaw(meta.headers, 'content-type')
  const parts = ranges.map((r) => ({
    range: r,
    header: Buffer.from(
      `\r\n--${boundary}\r\n${type === undefined ? '' : `Content-Type: ${type}\r\n`}Content-Range: bytes ${r.start}-${r.end}/${meta.bodyBytes}\r\n\r\n`,
    ),
  }))
  const trailer = Buffer.from(`\r\n--${boundary}--\r\n`)
  const length = parts.reduce((n, p) => n + p.header.length + p.range.end - p.range.start + 1, trailer.length)
  const add = ['Content-Type', `multipart/byteranges; boundary=${boundary}`, 'Content-Length', String(length)]
  writeHead(res, 206, '', head({ drop: new Set([...LENGTH_FIELDS, 'content-type']), add }))
  if (isHead) return end(res)
  if (entry.body !== undefined) {
    const body = entry.body
    return end(res, Buffer.concat([...parts.flatMap((p) => [p.header, body.subarray(p.range.start, p.range.end + 1)]), trailer]))
  }
  return sendFile(
    res,
    fh,
    parts.map((p) => p.range),
    { headers: parts.map((p) => p.header), trailer },
  )
}

export function end(res: ServerResponse, body?: Buffer): 'sent' {
  if (body === undefined) res.end()
  else res.end(body)
  return 'sent'
}

/** Streams byte ranges of an open body file with backpressure; closes the file on every path. */
async function sendFile(
  res: ServerResponse,
  fh: FileHandle | undefined,
  ranges: readonly ByteRange[],
  multipart: { headers: Buffer[]; trailer: Buffer } | undefined,
): Promise<'sent'> {
  if (fh === undefined) return end(res)
  try {
    for (const [i, r] of ranges.entries()) {
      if (multipart !== undefined) res.write(multipart.headers[i])
      const stream = fh.createReadStream({ start: r.start, end: r.end, highWaterMark: READ_HIGH_WATER_MARK, autoClose: false })
      await pipeline(stream, res, { end: false })
    }
    if (multipart !== undefined) res.end(multipart.trailer)
    else res.end()
  } catch {
    // The client went away mid-body (ERR_STREAM_PREMATURE_CLOSE): normal traffic, nothing to do.
    res.destroy()
  } finally {
    await fh.close().catch(() => {})
  }
  return 'sent'
}

/**
 * Streams a whole body that has not been checked in this process, hashing it on the way and
 * holding back its last chunk until the digest matches. A mismatch closes the connection before
 * the announced length (the client sees a broken download, never corrupt bytes as complete) and
 * drops the entry, so the next request refetches it.
 */
async function sendVerified(res: ServerResponse, fh: FileHandle | undefined, entry: CachedEntry, store: TieredStore): Promise<'sent'> {
  if (fh === undefined) return end(res)
  const verifier = new BodyVerifier(entry.meta.sha256, () => store.reportCorrupt(entry))
  try {
    const stream = fh.createReadStream({ highWaterMark: READ_HIGH_WATER_MARK, autoClose: false })
    await pipeline(stream, verifier, res)
    entry.verified = true
  } catch {
    res.destroy()
  } finally {
    await fh.close().catch(() => {})
  }
  return 'sent'
}
