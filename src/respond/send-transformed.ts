// src/respond/send-transformed.ts
// Sends a stored entry through its route's body transform: the derived headers of
// body-transform.ts, 304 on the derived validator, the whole transformed body (never a range).

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FileHandle } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { CachedEntry } from '../cache/entry.js'
import type { TieredStore } from '../cache/tiered-store.js'
import { transformedHeaders, WHOLE_TRANSFORM_BYTES, type AppliedTransform } from './body-transform.js'
import { BodyVerifier } from './body-verifier.js'
import { buildHead, writeHead } from './head.js'
import { READ_HIGH_WATER_MARK } from './read-sizes.js'
import { sendIfNotModified } from './conditional.js'
import type { SendCachedOptions } from './send-cached.js'

/** Like sendCached for a 200 whose body the route transforms; 'gone' when the body file is missing or corrupt. */
export async function sendTransformedEntry(
  req: IncomingMessage,
  res: ServerResponse,
  entry: CachedEntry,
  store: TieredStore,
  o: SendCachedOptions,
  transform: AppliedTransform,
): Promise<'sent' | 'gone'> {
  const meta = entry.meta
  const headers = transformedHeaders(meta.headers, transform)
  if (sendIfNotModified(req, res, headers, o)) return 'sent'
  let fh: FileHandle | undefined
  if (req.method !== 'HEAD' && entry.body === undefined) {
    fh = await store.openBody(entry)
    if (fh === undefined) return 'gone'
  }
  // A small body in memory is transformed whole first, so the response can say its length (npm's
  // own cache keeps only documents whose size it was told).
  if (entry.body !== undefined && entry.body.length <= WHOLE_TRANSFORM_BYTES && req.method !== 'HEAD') {
    return sendWhole(res, entry, store, o, transform, headers)
  }
  writeHead(res, meta.status, meta.statusText, buildHead(headers, { ageSeconds: o.ageSeconds, cacheStatus: o.cacheStatus }))
  if (req.method === 'HEAD') {
    res.end()
    return 'sent'
  }
  const source =
    entry.body !== undefined
      ? Readable.from([entry.body])
      : (fh as FileHandle).createReadStream({ highWaterMark: READ_HIGH_WATER_MARK, autoClose: false })
  // A body not yet checked in this process is verified before the transform sees its last chunk.
  const verifier = entry.verified ? undefined : new BodyVerifier(meta.sha256, () => store.reportCorrupt(entry))
  try {
    if (verifier === undefined) await pipeline(source, transform.create(), res)
    else await pipeline(source, verifier, transform.create(), res)
    entry.verified = true
  } catch {
    // Headers are out (no Content-Length: chunked): closing before the last chunk says "incomplete".
    res.destroy()
  } finally {
    await fh?.close().catch(() => {})
  }
  return 'sent'
}

async function sendWhole(
  res: ServerResponse,
  entry: CachedEntry,
  store: TieredStore,
  o: SendCachedOptions,
  transform: AppliedTransform,
  headers: readonly string[],
): Promise<'sent' | 'gone'> {
  const meta = entry.meta
  const stored = entry.body as Buffer
  // A copy not yet checked in this process is checked whole before anything is sent.
  if (!entry.verified) {
    if (createHash('sha256').update(stored).digest('hex') !== meta.sha256) {
      await store.reportCorrupt(entry)
      return 'gone'
    }
    entry.verified = true
  }
  return sendWholeTransformed(res, { status: meta.status, statusText: meta.statusText, headers }, stored, o, transform)
}

/**
 * Transforms a small body whole and sends it with its length: a stored entry's, or a fill's
 * once all of it has arrived (and been checked), before it is committed.
 */
export async function sendWholeTransformed(
  res: ServerResponse,
  head: { readonly status: number; readonly statusText: string; readonly headers: readonly string[] },
  stored: Buffer,
  o: { readonly cacheStatus: string; readonly ageSeconds?: number },
  transform: AppliedTransform,
): Promise<'sent'> {
  let body: Buffer
  try {
    body = await transform.whole(stored)
  } catch {
    // Nothing was sent yet: a body the transform cannot read (a broken coding) closes the connection.
    res.destroy()
    return 'sent'
  }
  const add = ['Content-Length', String(body.length)]
  writeHead(res, head.status, head.statusText, buildHead(head.headers, { ...o, add }))
  res.end(body)
  return 'sent'
}
