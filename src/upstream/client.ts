// src/upstream/client.ts
// Talks to upstreams: one undici Pool per upstream origin, timeouts, and trying a route's
// equivalent upstreams in order until one answers.

import type { Readable } from 'node:stream'
import { Pool } from 'undici'
import type { Route } from '../config.js'
import { UpstreamError, UpstreamTimeoutError, type CachemirError } from '../errors.js'
import { rawFromBuffers } from '../http/headers.js'

export interface UpstreamTimeouts {
  /** TCP/TLS connect. */
  readonly connectMs: number
  /** From sending the request to the end of the response headers. */
  readonly headersMs: number
  /** Longest silence between two body chunks. */
  readonly bodyIdleMs: number
}

export const DEFAULT_TIMEOUTS: UpstreamTimeouts = { connectMs: 10_000, headersMs: 30_000, bodyIdleMs: 60_000 }

export interface UpstreamResponse {
  readonly status: number
  readonly statusText: string
  /** Raw header list as received (hop-by-hop fields still present). */
  readonly headers: string[]
  readonly body: Readable
  /** The upstream URL that answered. */
  readonly url: URL
  readonly requestAt: number
  readonly responseAt: number
}

export interface UpstreamRequest {
  readonly method: 'GET' | 'HEAD'
  /** Request target below the route prefix, query included, without a leading slash. */
  readonly relativePath: string
  readonly headers: Record<string, string>
  readonly signal?: AbortSignal
}

export class UpstreamClient {
  readonly #pools = new Map<string, Pool>()
  readonly #timeouts: UpstreamTimeouts
  readonly #now: () => number
  /** Requests sent upstream, by outcome; read by health and, later, metrics. */
  readonly counters = { requests: 0, failures: 0, failovers: 0 }

  /** `now` stamps request and response times (epoch ms); it must be the clock the policy uses. */
  constructor(timeouts: UpstreamTimeouts = DEFAULT_TIMEOUTS, now: () => number = Date.now) {
    this.#timeouts = timeouts
    this.#now = now
  }

  #pool(url: URL): Pool {
    let pool = this.#pools.get(url.origin)
    if (pool === undefined) {
      pool = new Pool(url.origin, {
        connect: { timeout: this.#timeouts.connectMs },
        headersTimeout: this.#timeouts.headersMs,
        bodyTimeout: this.#timeouts.bodyIdleMs,
        keepAliveTimeout: 30_000,
      })
      this.#pools.set(url.origin, pool)
    }
    return pool
  }

  /**
   * Sends the request to the route's upstreams in order. A connection error, a timeout or a 5xx
   * moves on to the next upstream (nothing has reached the client yet). When every upstream
   * failed, the last 5xx response is returned if there was one, else the last error is thrown.
   */
  async request(route: Route, req: UpstreamRequest): Promise<UpstreamResponse> {
    let lastError: CachemirError | undefined
    let lastResponse: UpstreamResponse | undefined
    for (const [i, base] of route.upstreams.entries()) {
      // './' keeps a relative path that starts with '/' or looks like a scheme ('a:b') under the base.
      const url = new URL(`./${req.relativePath}`, base)
      if (i > 0) this.counters.failovers++
      this.counters.requests++
      const requestAt = this.#now()
      try {
        const res = await this.#pool(url).request({
          path: url.pathname + url.search,
          method: req.method,
          headers: { ...req.headers, host: url.host },
          responseHeaders: 'raw',
          signal: req.signal ?? null,
        })
        const response: UpstreamResponse = {
          status: res.statusCode,
          statusText: res.statusText,
          headers: rawFromBuffers(res.headers as unknown as Buffer[]),
          body: res.body,
          url,
          requestAt,
          responseAt: this.#now(),
        }
        if (lastResponse !== undefined) discardBody(lastResponse.body)
        if (res.statusCode < 500 || i === route.upstreams.length - 1) return response
        lastResponse = response
        this.counters.failures++
      } catch (err) {
        this.counters.failures++
        lastError = toUpstreamError(req.method, url, err)
      }
    }
    if (lastResponse !== undefined) return lastResponse
    throw lastError ?? new UpstreamError(req.method, route.prefix)
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(pools.map((p) => p.destroy()))
  }
}

/** Maps undici's failure codes onto ours: timeouts are 504, everything else 502. */
export function toUpstreamError(method: string, url: URL, err: unknown): CachemirError {
  const code = (err as { code?: string }).code ?? ''
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new UpstreamTimeoutError(method, url.href, { cause: err })
  }
  return new UpstreamError(method, url.href, { cause: err })
}

/**
 * Drops an upstream body nobody will read. undici's body emits an error when destroyed before its
 * end; without a listener that error would crash the process.
 */
export function discardBody(body: Readable): void {
  body.on('error', () => {})
  body.destroy()
}
