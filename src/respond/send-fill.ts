// src/respond/send-fill.ts
// Sends a response that is still arriving: the bytes already in the fill's temp file, then the
// rest as it lands. Each client reads at its own pace (see upstream/fill.ts).

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Cursor, Fill } from '../upstream/fill.js'
import { headerValue } from '../http/headers.js'
import { buildHead, drained, writeHead } from './head.js'
import { evaluateRange, type ByteRange } from './range.js'
import { isNotModified, NOT_MODIFIED_FIELDS } from './conditional.js'
import { READ_CHUNK_BYTES } from './read-sizes.js'
import { transformedHeaders, transformFor, WHOLE_TRANSFORM_BYTES, type ServedTransform } from './body-transform.js'
import { sendWholeTransformed } from './send-transformed.js'

const LENGTH_FIELDS = new Set(['content-length', 'content-range'])

/**
 * Decides what this client gets from a streaming fill and sends it. Returns 'wait' without sending
 * anything when the request cannot be answered from a growing file (several ranges, or a range
 * on a body of unknown length): the caller waits for the fill to finish and serves from cache.
 */
export async function sendFill(
  req: IncomingMessage,
  res: ServerResponse,
  fill: Fill,
  cursor: Cursor,
  cacheStatus: string,
  routeTransform?: ServedTransform,
): Promise<'sent' | 'wait'> {
  const acceptEncoding = headerValue(req.headers['accept-encoding'])
  const transform = transformFor(routeTransform, fill.status, fill.params.relativePath, fill.headers, acceptEncoding)
  const headers = transform === undefined ? fill.headers : transformedHeaders(fill.headers, transform)
  if (
    fill.status === 200 &&
    isNotModified(headerValue(req.headers['if-none-match']), headerValue(req.headers['if-modified-since']), headers)
  ) {
    writeHead(res, 304, '', buildHead(headers, { cacheStatus, keep: NOT_MODIFIED_FIELDS }))
    res.end()
    return 'sent'
  }
  // A small transformed body is sent whole, with its length, as soon as all of it is in.
  if (transform !== undefined && fill.totalBytes !== undefined && fill.totalBytes <= WHOLE_TRANSFORM_BYTES && req.method !== 'HEAD') {
    const whole = await fill.wholeBody()
    if (whole === undefined) return 'wait'
    return sendWholeTransformed(res, { status: fill.status, statusText: fill.statusText, headers }, whole, { cacheStatus }, transform)
  }
  let range: ByteRange | undefined
  const rangeHeader = headerValue(req.headers.range)
  // A transformed body has other bytes than the stored one: ranges of it are never served.
  if (rangeHeader !== undefined && fill.status === 200 && transform === undefined) {
    // A range may end before the bytes an integrity check holds back: it is served once stored.
    if (fill.totalBytes === undefined || fill.checksIntegrity) return 'wait'
    const decision = evaluateRange(rangeHeader, headerValue(req.headers['if-range']), fill.totalBytes, fill.headers)
    if (decision.kind === 'unsatisfiable') return 'wait'
    if (decision.kind === 'partial') {
      if (decision.ranges.length > 1) return 'wait'
      range = decision.ranges[0]
    }
  }
  if (range === undefined) {
    writeHead(res, fill.status, fill.statusText, buildHead(headers, { cacheStatus }))
  } else {
    const add = [
      'Content-Range',
      `bytes ${range.start}-${range.end}/${fill.totalBytes}`,
      'Content-Length',
      String(range.end - range.start + 1),
    ]
    writeHead(res, 206, '', buildHead(fill.headers, { cacheStatus, drop: LENGTH_FIELDS, add }))
  }
  if (req.method === 'HEAD') {
    res.end()
    return 'sent'
  }
  if (transform === undefined) {
    await follow(res, res, fill, cursor, range?.start ?? 0, range === undefined ? Infinity : range.end + 1)
    return 'sent'
  }
  // The transform writes to the client; this reader writes to the transform, with its backpressure.
  const sink = transform.create()
  const sent = pipeline(sink, res).catch(() => res.destroy())
  await follow(res, sink, fill, cursor, 0, Infinity)
  if (res.destroyed) sink.destroy()
  await sent
  return 'sent'
}

/**
 * Copies bytes [from, to) of the fill to the client, waiting for the fill where it is ahead.
 * The caller holds a reader reference on the fill (taken when it joined), so the file stays open.
 */
async function follow(res: ServerResponse, out: Writable, fill: Fill, cursor: Cursor, from: number, to: number): Promise<void> {
  let pos = from
  cursor.pos = from
  cursor.cut = () => res.destroy()
  fill.moved()
  const buffers = new ReadBuffers(res)
  while (pos < to && !res.destroyed && !out.destroyed) {
    if (pos < fill.committedBytes) {
      const chunk = await nextChunk(fill, pos, Math.min(to, fill.committedBytes), buffers)
      // Bytes no longer to be had (a relayed fill moved on): never end such a response cleanly.
      if (chunk === undefined) {
        res.destroy()
        return
      }
      pos += chunk.length
      // A transform may hold on to what it was given: it gets its own copy, not a reused buffer.
      const flushed = out === res ? buffers.write(res, chunk) : out.write(Buffer.from(chunk))
      cursor.pos = pos
      fill.moved()
      if (!flushed && !(await drained(out))) return
      continue
    }
    // Caught up: done if the fill is over, else wait for its next chunk.
    if (fill.state === 'failed' || fill.bodyComplete || fill.state === 'complete') break
    await fill.waitForProgress()
  }
  if (res.destroyed || out.destroyed) return
  if (fill.state === 'failed' || (to !== Infinity && pos < to)) {
    // Headers are out: the only honest signal left is to close the connection early.
    res.destroy()
    return
  }
  out.end()
}

/**
 * Two read buffers per reader that has fallen behind, used in turn: a buffer is read into again
 * only once the socket has taken what was written from it. A herd of readers then holds a fixed
 * 2 x 64 KiB each instead of leaving a fresh buffer per read to the garbage collector (with 100
 * readers that garbage made the peak RSS vary by tens of MiB between runs).
 */
class ReadBuffers {
  readonly #buffers: (Buffer | undefined)[] = [undefined, undefined]
  readonly #writing: (Promise<void> | undefined)[] = [undefined, undefined]
  #next = 0
  /** Resolves when the response closes: a write that never calls back must not hold the reader. */
  readonly #closed: Promise<void>

  constructor(res: ServerResponse) {
    this.#closed = res.destroyed || res.closed ? Promise.resolve() : new Promise((resolve) => res.once('close', () => resolve()))
  }

  /** The next buffer to read into, once the socket is done with it. */
  async take(): Promise<Buffer> {
    const i = this.#next
    const writing = this.#writing[i]
    if (writing !== undefined) await Promise.race([writing, this.#closed])
    this.#buffers[i] ??= Buffer.allocUnsafe(READ_CHUNK_BYTES)
    return this.#buffers[i]
  }

  /** Writes `chunk`; if it lies in one of our buffers, that buffer is busy until the write is done. */
  write(res: ServerResponse, chunk: Buffer): boolean {
    const i = this.#next
    if (chunk.buffer !== this.#buffers[i]?.buffer || this.#buffers[i] === undefined) return res.write(chunk)
    this.#next = 1 - i
    let flushed = true
    // A destroyed response calls back with an error: the buffer is free either way.
    this.#writing[i] = new Promise<void>((resolve) => {
      flushed = res.write(chunk, () => resolve())
    })
    return flushed
  }
}

/** The bytes at `pos` (up to `limit`): the chunk just written if it starts there, else a file read. */
async function nextChunk(fill: Fill, pos: number, limit: number, buffers: ReadBuffers): Promise<Buffer | undefined> {
  const last = fill.lastChunk
  if (last !== undefined && last.pos <= pos && pos < last.pos + last.buf.length) {
    return last.buf.subarray(pos - last.pos, Math.min(limit, last.pos + last.buf.length) - last.pos)
  }
  const file = fill.file
  // Past what the file holds (a relaying fill): only the chunk in memory could have served it.
  if (file === undefined || pos >= fill.fileBytes) return undefined
  const want = Math.min(limit, fill.fileBytes, pos + READ_CHUNK_BYTES) - pos
  if (want <= 0) return undefined
  const buf = await buffers.take()
  const { bytesRead } = await file.read(buf, 0, want, pos)
  return bytesRead === 0 ? undefined : buf.subarray(0, bytesRead)
}
