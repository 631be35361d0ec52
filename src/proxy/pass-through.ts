// src/proxy/pass-through.ts
// Requests the cache does not handle: other methods and upgrades go to the route's first
// upstream through httpxy; GETs that must not be shared are streamed through undici for one
// client only. Nothing here is stored.

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createProxyServer, type ProxyServer } from 'httpxy'
import type { Logger } from 'pino'
import type { Routed } from './route.js'
import { isRedirect, rewriteLocation } from '../upstream/redirects.js'
import { discardBody, type UpstreamClient, type UpstreamResponse } from '../upstream/client.js'
import { stripHopByHop } from '../http/headers.js'
import { buildHead, writeHead } from '../respond/head.js'
import { privateHeaders } from './forward-headers.js'

export class PassThrough {
  readonly #proxy: ProxyServer
  readonly #log: Logger

  /** Errors httpxy reported for a request (it reports them as events, then resolves web()). */
  readonly #failures = new WeakMap<object, Error>()

  readonly #ca: string | undefined

  /** `ca`: trusted CAs for https upstreams (the upstream client's, so both trust the same). */
  constructor(log: Logger, ca?: string) {
    this.#log = log
    this.#ca = ca
    this.#proxy = createProxyServer({ changeOrigin: true, ignorePath: true, xfwd: false, ws: true })
    this.#proxy.on('error', (err, req) => {
      if (req !== undefined) this.#failures.set(req, err)
    })
  }

  /**
   * Proxies a request with a body or an unsafe method. `onResponse` runs as soon as the upstream's
   * status and headers are in, before they are passed on. Resolves once the response is complete
   * with that status and headers; status 0 when no upstream response arrived (the client got a
   * 502, or had already gone).
   */
  async web(
    req: IncomingMessage,
    res: ServerResponse,
    routed: Routed,
    onResponse?: (status: number, headers: IncomingHttpHeaders) => void,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; target: URL }> {
    const target = upstreamUrl(routed)
    let upstream: IncomingMessage | undefined
    // Called when the upstream's headers arrive, before the client sees any of the response.
    const onProxyRes = (proxyRes: IncomingMessage, r: IncomingMessage): void => {
      if (r !== req) return
      upstream = proxyRes
      onResponse?.(proxyRes.statusCode ?? 0, proxyRes.headers)
    }
    this.#proxy.on('proxyRes', onProxyRes)
    res.setHeader('Cache-Status', 'cachemir; fwd=method')
    // The route's headers timeout bounds the wait for the upstream's answer (then 504).
    const limitMs = routed.route.timeouts.headersMs
    let timedOut = false
    const timer = setTimeout(() => (timedOut = upstream === undefined), limitMs)
    let failure: unknown
    try {
      await this.#proxy.web(req, res, { target, proxyTimeout: limitMs, ...(this.#ca === undefined ? {} : { ca: this.#ca }) })
      failure = this.#failures.get(req)
    } catch (err) {
      failure = err
    } finally {
      clearTimeout(timer)
      this.#proxy.off('proxyRes', onProxyRes)
    }
    if (failure !== undefined && upstream === undefined) {
      this.#log.warn({ err: failure, method: req.method, target: target.href }, 'pass-through failed')
      if (!res.headersSent && !res.destroyed) {
        const [status, text] = timedOut ? [504, 'upstream timed out'] : [502, 'upstream unreachable']
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-status': 'cachemir; fwd=method' })
        res.end(`${text}: ${req.method} ${target.href}\n`)
      } else res.destroy()
      return { status: 0, headers: {}, target }
    }
    await finished(res)
    return { status: upstream?.statusCode ?? 0, headers: upstream?.headers ?? {}, target }
  }

  /** Proxies an upgrade (e.g. WebSocket) to the route's first upstream. */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, routed: Routed): void {
    const target = upstreamUrl(routed)
    this.#proxy.ws(req, socket as never, { target }, head).catch((err: unknown) => {
      this.#log.warn({ err, target: target.href }, 'upgrade pass-through failed')
      socket.destroy()
    })
  }

  close(): void {
    this.#proxy.close()
  }
}

/** The first upstream's URL for this request (pass-through does not fail over: bodies are not replayable). */
export function upstreamUrl(routed: Routed): URL {
  const base = routed.route.upstreams[0] as URL
  return new URL(`./${routed.relativePath}`, base)
}

function finished(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.writableFinished || res.destroyed) resolve()
    else {
      res.once('finish', () => resolve())
      res.once('close', () => resolve())
    }
  })
}

/**
 * Fetches a GET/HEAD for this client alone (credentials, uncacheable answers, Vary mismatches) and
 * streams it back unchanged but for hop-by-hop fields.
 */
export async function fetchPrivately(
  req: IncomingMessage,
  res: ServerResponse,
  routed: Routed,
  upstream: UpstreamClient,
  cacheStatus: string,
): Promise<UpstreamResponse> {
  const response = await upstream.request(routed.route, {
    method: req.method === 'HEAD' ? 'HEAD' : 'GET',
    relativePath: routed.relativePath,
    headers: privateHeaders(req.headers),
  })
  const headers = isRedirect(response.status) ? rewriteLocation(response.headers, routed.route, response.url) : response.headers
  await streamResponse(req, res, { ...response, headers }, cacheStatus)
  return response
}

/** Sends an upstream response to one client as it arrives; a broken body closes the connection. */
export async function streamResponse(
  req: IncomingMessage,
  res: ServerResponse,
  response: UpstreamResponse,
  cacheStatus: string,
): Promise<void> {
  writeHead(res, response.status, response.statusText, buildHead(stripHopByHop(response.headers), { cacheStatus }))
  if (req.method === 'HEAD') {
    // The body (of a GET made on a HEAD's behalf) is not wanted: drop it rather than download it.
    discardBody(response.body)
    res.end()
    return
  }
  try {
    await pipeline(response.body, res)
  } catch {
    discardBody(response.body)
    res.destroy()
  }
}
