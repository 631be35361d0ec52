// test/helpers/origin.ts
// A real HTTP origin on 127.0.0.1:0 that records every request, plus building blocks for its handlers.
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { TestContext } from 'node:test'

export interface OriginRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  /** epoch milliseconds when the request arrived */
  at: number
}

export interface Origin {
  /** 'http://127.0.0.1:PORT', no trailing slash */
  url: string
  port: number
  /** every request so far, in arrival order; reset() empties this same array */
  requests: OriginRequest[]
  /** requests so far, optionally only those whose url equals path */
  count(path?: string): number
  reset(): void
  /** closes every connection and the server; safe to call more than once */
  close(): Promise<void>
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

export interface OriginOptions {
  /** Listen on this port (an origin started again where a mirror expects it); default 0, a free one. */
  port?: number
}

export async function startOrigin(t: TestContext | undefined, handler: Handler, options: OriginOptions = {}): Promise<Origin> {
  const requests: OriginRequest[] = []
  const sockets = new Set<Socket>()

  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, at: Date.now() })
    void runHandler(handler, req, res)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo

  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      // close() stops listening; the callback runs once every connection is gone.
      server.close(() => resolve())
      server.closeAllConnections()
      for (const socket of sockets) socket.destroy()
    })
    return closing
  }
  t?.after(close)

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (path) => (path === undefined ? requests.length : requests.filter((r) => r.url === path).length),
    reset: () => {
      requests.length = 0
    },
    close,
  }
}

/** An origin that answers every request with a body naming itself and the target it saw, fresh for a minute. */
export function startEchoOrigin(t: TestContext, name: string): Promise<Origin> {
  return startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(`${name} ${req.url ?? ''}`), { headers: { 'cache-control': 'max-age=60' } }),
  )
}

async function runHandler(handler: Handler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    await handler(req, res)
  } catch (err) {
    if (res.headersSent) {
      res.destroy(err instanceof Error ? err : new Error(String(err)))
    } else if (!res.destroyed) {
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end(`origin handler failed: ${String(err)}`)
    }
  }
}

/** Deterministic pseudo-random bytes (xorshift32); 64 MiB takes well under a second. */
export function makeBody(size: number, seed = 1): Buffer {
  const words = new Uint32Array(Math.ceil(size / 4))
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x
  }
  return Buffer.from(words.buffer, 0, size)
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Reads a request body to the end, as a string. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.once('end', () => resolve(Buffer.concat(chunks).toString()))
    req.once('error', reject)
  })
}

export interface SendOptions {
  /** default 200 */
  status?: number
  headers?: OutgoingHttpHeaders
  /** default 64 KiB; when throttled and not given, at most 1/20 s worth of bytes so the rate is smooth */
  chunkBytes?: number
  /** throttle: sleep between chunks so the average rate is this */
  bytesPerSecond?: number
  /** write this many body bytes, then destroy the socket (the announced Content-Length stays the full length) */
  abortAfterBytes?: number
  /** write this many body bytes, then never write again (until the client or the server closes) */
  stallAfterBytes?: number
  /** default true: set Content-Length (unless headers already has one); false = chunked */
  contentLength?: boolean
  /** delay before writing headers */
  firstByteDelayMs?: number
}

/**
 * Writes headers, then the body in chunks, honouring backpressure and the options above.
 * HEAD gets headers only (with the full Content-Length). Resolves when the response is
 * finished, aborted, stalled-then-closed, or the client went away; all timers are cleared.
 */
export async function sendBody(req: IncomingMessage, res: ServerResponse, body: Buffer, opts: SendOptions = {}): Promise<void> {
  let closed = res.destroyed
  const timers = new Set<NodeJS.Timeout>()
  const wakers = new Set<() => void>()
  res.once('close', () => {
    closed = true
    for (const timer of timers) clearTimeout(timer)
    timers.clear()
    for (const wake of [...wakers]) wake()
  })

  // Resolves after ms, or at once when the connection closes.
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (closed) return resolve()
      const wake = (): void => {
        clearTimeout(timer)
        timers.delete(timer)
        wakers.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      timers.add(timer)
      wakers.add(wake)
    })

  // Resolves on emitter's event, or at once when the connection closes.
  const waitFor = (emitter: NodeJS.EventEmitter, event: string): Promise<void> =>
    new Promise((resolve) => {
      if (closed) return resolve()
      const wake = (): void => {
        emitter.off(event, wake)
        wakers.delete(wake)
        resolve()
      }
      emitter.on(event, wake)
      wakers.add(wake)
    })

  if (opts.firstByteDelayMs !== undefined && opts.firstByteDelayMs > 0) await sleep(opts.firstByteDelayMs)
  if (closed) return

  const status = opts.status ?? 200
  const headers: OutgoingHttpHeaders = { ...opts.headers }
  const hasLength = Object.keys(headers).some((name) => name.toLowerCase() === 'content-length')
  const bodyless = req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)
  if (opts.contentLength !== false && !hasLength && status !== 204 && status !== 304) {
    headers['content-length'] = body.length
  }
  res.writeHead(status, headers)

  if (bodyless) {
    res.end()
    await waitFor(res, 'finish')
    return
  }
  res.flushHeaders()

  const rate = opts.bytesPerSecond
  const chunkBytes = Math.max(1, opts.chunkBytes ?? (rate ? Math.min(64 * 1024, Math.floor(rate / 20)) : 64 * 1024))
  const limit = Math.min(body.length, opts.abortAfterBytes ?? Infinity, opts.stallAfterBytes ?? Infinity)
  const startedAt = Date.now()
  let sent = 0
  while (sent < limit && !closed) {
    const end = Math.min(sent + chunkBytes, limit)
    const ok = res.write(body.subarray(sent, end))
    sent = end
    if (!ok) await waitFor(res, 'drain')
    if (rate && !closed) {
      const waitMs = startedAt + (sent / rate) * 1000 - Date.now()
      if (waitMs > 0) await sleep(waitMs)
    }
  }
  if (closed) return

  if (opts.abortAfterBytes !== undefined && opts.abortAfterBytes < body.length) {
    // Let what was written reach the kernel, then cut the connection short.
    await sleep(0)
    const socket = res.socket
    if (socket && !closed && socket.writableLength > 0) await waitFor(socket, 'drain')
    res.socket?.destroy()
    return
  }
  if (opts.stallAfterBytes !== undefined && opts.stallAfterBytes < body.length) {
    await waitFor(res, 'close')
    return
  }
  res.end()
  await waitFor(res, 'finish')
}

export interface Validators {
  etag?: string
  lastModified?: string
}

/**
 * True when If-None-Match matches etag (weak comparison; lists and `*`), or, when
 * If-None-Match is absent, If-Modified-Since is at or after lastModified.
 */
export function isNotModified(req: Pick<IncomingMessage, 'headers'>, validators: Validators): boolean {
  const ifNoneMatch = req.headers['if-none-match']
  if (ifNoneMatch !== undefined) {
    const tags: string[] = ifNoneMatch.match(/(?:W\/)?"[^"]*"|[^\s,]+/g) ?? []
    if (tags.includes('*')) return true
    if (validators.etag === undefined) return false
    const opaque = stripWeak(validators.etag)
    return tags.some((tag) => stripWeak(tag) === opaque)
  }
  const ifModifiedSince = req.headers['if-modified-since']
  if (ifModifiedSince === undefined || validators.lastModified === undefined) return false
  const since = Date.parse(ifModifiedSince)
  const modified = Date.parse(validators.lastModified)
  if (Number.isNaN(since) || Number.isNaN(modified)) return false
  return modified <= since
}

function stripWeak(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

export interface StaticFile {
  body: Buffer | string
  headers?: OutgoingHttpHeaders
  etag?: string
  lastModified?: string
  send?: SendOptions
}

/**
 * A handler serving files by exact req.url: 404 if unknown, 304 (validators plus the given
 * headers, minus Content-Length) when isNotModified, otherwise sendBody. The files object is
 * read at request time, so a test may change it between requests.
 */
export function serveStatic(files: Record<string, StaticFile>): Handler {
  return async (req, res) => {
    const url = req.url ?? ''
    const file = Object.hasOwn(files, url) ? files[url] : undefined
    if (file === undefined) {
      await sendBody(req, res, Buffer.from('not found'), { status: 404, headers: { 'content-type': 'text/plain' } })
      return
    }
    const headers: OutgoingHttpHeaders = { ...file.headers, ...file.send?.headers }
    if (file.etag !== undefined) headers['etag'] = file.etag
    if (file.lastModified !== undefined) headers['last-modified'] = file.lastModified

    if (isNotModified(req, file)) {
      for (const name of Object.keys(headers)) {
        if (name.toLowerCase() === 'content-length') delete headers[name]
      }
      res.writeHead(304, headers)
      res.end()
      return
    }
    const body = typeof file.body === 'string' ? Buffer.from(file.body) : file.body
    await sendBody(req, res, body, { ...file.send, headers })
  }
}
