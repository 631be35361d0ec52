// test/helpers/client.ts
// Test clients that see raw bytes and headers: undici request (no decompression), a slow reader, raw TCP.
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { Client } from 'undici'
import type { Dispatcher } from 'undici'

export interface Fetched {
  status: number
  /** lower-case names; repeated headers joined with ', ' */
  headers: Record<string, string>
  /** [name, value, name, value, ...] as received, original case */
  rawHeaders: string[]
  body: Buffer
  /** false if the body stream errored or ended early (e.g. the connection closed before Content-Length) */
  complete: boolean
  error?: Error
}

export interface GetOptions {
  method?: string
  headers?: Record<string, string>
  body?: string | Buffer
  /** undici headersTimeout and bodyTimeout; default 30 s so a stalled body fails the read, not the run */
  timeoutMs?: number
}

export interface FirstBytes {
  status: number
  headers: Record<string, string>
  rawHeaders: string[]
  /** at least n body bytes, unless the body was shorter */
  first: Buffer
  /** from the call until the first body byte arrived (or the body ended) */
  msToFirstByte: number
  /** reads the remainder and returns the whole response; the connection is closed afterwards */
  rest: () => Promise<Fetched>
  /** drops the connection without reading further (a client abort); rest() then reports complete=false */
  abort: () => Promise<void>
}

const DEFAULT_TIMEOUT_MS = 30_000

/** Builds the lower-case header record from [name, value, ...]. */
export function headersFromRaw(rawHeaders: string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase()
    const value = rawHeaders[i + 1] ?? ''
    const previous = headers[name]
    headers[name] = previous === undefined ? value : `${previous}, ${value}`
  }
  return headers
}

/** The response's Cache-Status field ('' when it has none). */
export function cacheStatus(r: { readonly headers: Readonly<Record<string, string>> }): string {
  return r.headers['cache-status'] ?? ''
}

interface Opened {
  client: Client
  status: number
  rawHeaders: string[]
  iterator: AsyncIterator<Buffer>
}

// One fresh connection per call, so no keep-alive socket outlives the test.
async function open(url: string, opts: GetOptions): Promise<Opened> {
  const target = new URL(url)
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const client = new Client(target.origin, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  const options: Dispatcher.RequestOptions = {
    path: target.pathname + target.search,
    method: opts.method ?? 'GET',
    responseHeaders: 'raw',
  }
  if (opts.headers !== undefined) options.headers = opts.headers
  if (opts.body !== undefined) options.body = opts.body
  try {
    const res = await client.request(options)
    // With responseHeaders: 'raw', undici hands back [name, value, ...] instead of an object.
    const rawHeaders = res.headers as unknown as string[]
    const iterator = res.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>
    return { client, status: res.statusCode, rawHeaders, iterator }
  } catch (err) {
    await client.destroy().catch(() => {})
    throw err
  }
}

/** Reads the rest of the body; never throws. */
async function drain(opened: Opened, chunks: Buffer[]): Promise<{ complete: boolean; error?: Error }> {
  try {
    for (;;) {
      const next = await opened.iterator.next()
      if (next.done === true) return { complete: true }
      chunks.push(next.value)
    }
  } catch (err) {
    return { complete: false, error: err instanceof Error ? err : new Error(String(err)) }
  }
}

async function finish(opened: Opened, chunks: Buffer[], result: { complete: boolean; error?: Error }): Promise<Fetched> {
  if (result.complete) await opened.client.close().catch(() => {})
  else await opened.client.destroy().catch(() => {})
  const fetched: Fetched = {
    status: opened.status,
    headers: headersFromRaw(opened.rawHeaders),
    rawHeaders: opened.rawHeaders,
    body: Buffer.concat(chunks),
    complete: result.complete,
  }
  if (result.error !== undefined) fetched.error = result.error
  return fetched
}

/** One request over a fresh connection. Throws only if no response headers arrive. */
export async function get(url: string, opts: GetOptions = {}): Promise<Fetched> {
  const opened = await open(url, opts)
  const chunks: Buffer[] = []
  return finish(opened, chunks, await drain(opened, chunks))
}

/**
 * Resolves as soon as at least n body bytes have arrived, then stops reading until
 * rest() (or abort()) is called. Call one of them, or the connection stays open.
 */
export async function getFirstBytes(url: string, n: number, opts: GetOptions = {}): Promise<FirstBytes> {
  const startedAt = performance.now()
  const opened = await open(url, opts)
  const chunks: Buffer[] = []
  let received = 0
  let firstByteAt: number | undefined
  let early: { complete: boolean; error?: Error } | undefined
  try {
    while (received < n || n <= 0) {
      const next = await opened.iterator.next()
      if (next.done === true) {
        early = { complete: true }
        break
      }
      firstByteAt ??= performance.now()
      chunks.push(next.value)
      received += next.value.length
      if (n <= 0) break
    }
  } catch (err) {
    early = { complete: false, error: err instanceof Error ? err : new Error(String(err)) }
  }
  const msToFirstByte = (firstByteAt ?? performance.now()) - startedAt
  const first = Buffer.concat(chunks)

  let aborted = false
  let restPromise: Promise<Fetched> | undefined
  const rest = (): Promise<Fetched> => {
    restPromise ??= (async () => {
      if (aborted) return finish(opened, chunks, { complete: false, error: new Error('aborted by the test client') })
      return finish(opened, chunks, early ?? (await drain(opened, chunks)))
    })()
    return restPromise
  }
  const abort = async (): Promise<void> => {
    if (restPromise !== undefined) return
    aborted = true
    await opened.client.destroy().catch(() => {})
  }

  return {
    status: opened.status,
    headers: headersFromRaw(opened.rawHeaders),
    rawHeaders: opened.rawHeaders,
    first,
    msToFirstByte,
    rest,
    abort,
  }
}

/**
 * GET over node:http on a fresh connection, reading the body at roughly bytesPerSecond by
 * pausing the response between chunks, so the server sees TCP backpressure.
 */
export function slowGet(url: string, bytesPerSecond: number, opts: Pick<GetOptions, 'headers'> = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: opts.headers ?? {} })
    let timer: NodeJS.Timeout | undefined
    let settled = false

    req.once('error', (err) => {
      if (!settled) {
        settled = true
        reject(err)
      }
    })
    req.once('response', (res) => {
      const chunks: Buffer[] = []
      let received = 0
      const startedAt = Date.now()

      const done = (complete: boolean, error?: Error): void => {
        if (settled) return
        settled = true
        if (timer !== undefined) clearTimeout(timer)
        const fetched: Fetched = {
          status: res.statusCode ?? 0,
          headers: headersFromRaw(res.rawHeaders),
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
          complete,
        }
        if (error !== undefined) fetched.error = error
        req.destroy()
        resolve(fetched)
      }

      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        received += chunk.length
        const waitMs = startedAt + (received / bytesPerSecond) * 1000 - Date.now()
        if (waitMs > 0) {
          res.pause()
          timer = setTimeout(() => {
            timer = undefined
            res.resume()
          }, waitMs)
        }
      })
      // 'end' can follow the last chunk even while paused, so pace the end as well.
      let ended = false
      res.once('end', () => {
        ended = true
        const waitMs = startedAt + (received / bytesPerSecond) * 1000 - Date.now()
        if (timer !== undefined) clearTimeout(timer)
        if (waitMs > 0) timer = setTimeout(() => done(res.complete), waitMs)
        else done(res.complete)
      })
      res.once('error', (err) => done(false, err))
      res.once('close', () => {
        if (!ended) done(false, new Error('response closed before the end of the body'))
      })
    })
    req.end()
  })
}

/**
 * Writes text as raw bytes over TCP and resolves with everything received (latin1) until the
 * server closes the connection or 2 s pass in silence. For malformed-request tests.
 */
export function rawRequest(port: number, text: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let connected = false
    let settled = false
    const socket = connect({ port, host })
    const done = (): void => {
      if (settled) return
      settled = true
      socket.destroy()
      resolve(Buffer.concat(chunks).toString('latin1'))
    }
    socket.setTimeout(2000, done)
    socket.once('connect', () => {
      connected = true
      socket.write(text, 'latin1')
    })
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.once('end', done)
    socket.once('close', done)
    socket.once('error', (err) => {
      if (connected) return done()
      settled = true
      socket.destroy()
      reject(err)
    })
  })
}
