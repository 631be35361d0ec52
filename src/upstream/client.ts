// src/upstream/client.ts
// Talks to upstreams: one undici Pool per upstream origin (or the proxy from HTTP(S)_PROXY),
// per-route timeouts, and trying a route's equivalent upstreams in order of health.

import type { Readable } from 'node:stream'
import { rootCertificates } from 'node:tls'
import { EnvHttpProxyAgent, Pool, type Dispatcher } from 'undici'
import type { Route, Timeouts } from '../config.js'
import { errorCode, UpstreamError, UpstreamTimeoutError, type CachemirError } from '../errors.js'
import { rawFromBuffers } from '../http/headers.js'
import { HealthTracker } from './health.js'

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

export interface ClientOptions {
  /** Stamps request and response times (epoch ms); must be the clock the policy uses. */
  readonly now?: () => number
  /** Extra trusted CA certificates (PEM) for https upstreams. */
  readonly ca?: string | undefined
  /** The process environment, for HTTP_PROXY / HTTPS_PROXY / NO_PROXY. */
  readonly env?: Record<string, string | undefined>
}

const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']

export class UpstreamClient {
  readonly #pools = new Map<string, Dispatcher>()
  readonly #now: () => number
  readonly #ca: string | undefined
  /** Trusted CAs for https upstreams (public roots plus --ca-file), for pass-through too. */
  get ca(): string | undefined {
    return this.#ca
  }
  readonly #useProxy: boolean
  readonly health: HealthTracker
  /** Requests sent upstream, by outcome; read by health and, later, metrics. */
  readonly counters = { requests: 0, failures: 0, failovers: 0 }
  /** Told how long each upstream exchange took to its headers (or to failing), by origin: the metrics. */
  observe: ((origin: string, seconds: number) => void) | undefined

  constructor(options: ClientOptions = {}) {
    this.#now = options.now ?? Date.now
    // Node's `ca` replaces the default trust store: keep the public roots and add the bundle.
    this.#ca = options.ca === undefined ? undefined : [...rootCertificates, options.ca].join('\n')
    const env = options.env ?? {}
    this.#useProxy = PROXY_VARIABLES.some((name) => (env[name] ?? '') !== '')
    this.health = new HealthTracker(this.#now)
  }

  /** One dispatcher per origin and connect timeout; with a proxy configured, one per timeout. */
  #dispatcher(url: URL, timeouts: Timeouts): Dispatcher {
    const connect = { timeout: timeouts.connectMs, ...(this.#ca === undefined ? {} : { ca: this.#ca }) }
    const key = this.#useProxy ? `proxy|${timeouts.connectMs}` : `${url.origin}|${timeouts.connectMs}`
    let dispatcher = this.#pools.get(key)
    if (dispatcher === undefined) {
      // EnvHttpProxyAgent reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either case) itself.
      dispatcher = this.#useProxy
        ? new EnvHttpProxyAgent({
            connect,
            // Plain-http upstreams go to the proxy as absolute-form requests, as proxies expect;
            // only https upstreams are tunnelled with CONNECT.
            proxyTunnel: false,
            ...(this.#ca === undefined ? {} : { proxyTls: { ca: this.#ca }, requestTls: { ca: this.#ca } }),
          })
        : new Pool(url.origin, { connect, keepAliveTimeout: 30_000 })
      this.#pools.set(key, dispatcher)
    }
    return dispatcher
  }

  /**
   * Sends the request to the route's upstreams: those in rotation first, in configured order. A
   * connection error, a timeout or a 5xx marks the upstream down for a back-off and moves on to
   * the next (nothing has reached the client yet). When every upstream failed, the last 5xx
   * response is returned if there was one, else the last error is thrown.
   */
  async request(route: Route, req: UpstreamRequest): Promise<UpstreamResponse> {
    let lastError: CachemirError | undefined
    let lastResponse: UpstreamResponse | undefined
    const order = this.health.order(route.upstreams)
    for (const [i, base] of order.entries()) {
      // './' keeps a relative path that starts with '/' or looks like a scheme ('a:b') under the base.
      const url = new URL(`./${req.relativePath}`, base)
      if (i > 0) this.counters.failovers++
      this.counters.requests++
      const sentAt = performance.now()
      try {
        const response = await this.#send(route, url, req.method, req.headers, null, req.signal ?? null)
        this.observe?.(url.origin, (performance.now() - sentAt) / 1000)
        if (lastResponse !== undefined) discardBody(lastResponse.body)
        if (response.status < 500) {
          this.health.succeeded(base)
          return response
        }
        this.health.failed(base, `HTTP ${response.status}`)
        this.counters.failures++
        if (i === order.length - 1) return response
        lastResponse = response
      } catch (err) {
        this.observe?.(url.origin, (performance.now() - sentAt) / 1000)
        if (req.signal?.aborted === true) throw toUpstreamError(req.method, url, err)
        this.counters.failures++
        lastError = toUpstreamError(req.method, url, err)
        this.health.failed(base, lastError.message)
      }
    }
    if (lastResponse !== undefined) return lastResponse
    throw lastError ?? new UpstreamError(req.method, route.prefix)
  }

  /**
   * Sends a request with any method and an optional streamed body to one URL (the route's first
   * upstream: a body cannot be replayed to another). Same dispatchers as fills, so proxies, CAs,
   * keep-alive and timeouts apply alike.
   */
  async forward(
    route: Route,
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: Readable | null,
    signal: AbortSignal,
  ): Promise<UpstreamResponse> {
    this.counters.requests++
    try {
      return await this.#send(route, url, method, headers, body, signal)
    } catch (err) {
      this.counters.failures++
      throw toUpstreamError(method, url, err)
    }
  }

  /** One exchange with one upstream URL, under the route's timeouts. */
  async #send(
    route: Route,
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: Readable | null,
    signal: AbortSignal | null,
  ): Promise<UpstreamResponse> {
    const requestAt = this.#now()
    const res = await this.#dispatcher(url, route.timeouts).request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: method,
      headers: { ...headers, host: url.host },
      body,
      responseHeaders: 'raw',
      headersTimeout: route.timeouts.headersMs,
      bodyTimeout: route.timeouts.bodyIdleMs,
      signal,
    })
    return {
      status: res.statusCode,
      statusText: res.statusText,
      headers: rawFromBuffers(res.headers as unknown as Buffer[]),
      body: res.body,
      url,
      requestAt,
      responseAt: this.#now(),
    }
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(pools.map((p) => p.destroy()))
  }
}

/** Maps undici's failure codes onto ours: timeouts are 504, everything else 502. */
export function toUpstreamError(method: string, url: URL, err: unknown): CachemirError {
  const code = errorCode(err) ?? ''
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
