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
import { sendFailure } from '../respond/send-error.js'
import type { CacheStatusWriter } from '../respond/cache-status.js'
import { stripHopByHop } from '../http/headers.js'
import { buildHead, writeHead } from '../respond/head.js'
import { privateHeaders } from './forward-headers.js'
import { transformedHeaders, transformFor, type ServedTransform } from '../respond/body-transform.js'
import { headerValue } from '../http/headers.js'
import { upgradeCredential, withOwnOrRouteCredential } from './upstream-auth.js'

export class PassThrough {
  readonly #proxy: ProxyServer
  readonly #log: Logger
  readonly #upstream: UpstreamClient
  readonly #ca: string | undefined
  /** Every passed-through response says `fwd=method`. */
  readonly #cacheStatus: string

  /**
   * Other methods go through the same undici client as fills (proxies, CAs, timeouts and
   * keep-alive apply alike); WebSocket upgrades go through httpxy, which speaks that protocol.
   */
  constructor(log: Logger, upstream: UpstreamClient, cacheStatus: CacheStatusWriter) {
    this.#cacheStatus = cacheStatus.format({ fwd: 'method' })
    this.#log = log
    this.#upstream = upstream
    this.#ca = upstream.ca
    this.#proxy = createProxyServer({ changeOrigin: true, ignorePath: true, xfwd: false, ws: true })
    // Upgrade failures reject ws(); the listener only keeps httpxy from throwing.
    this.#proxy.on('error', () => {})
  }

  /**
   * Passes a request with any method (and its body) to the route's first upstream and streams
   * the answer back. `onResponse` runs as soon as the upstream's status and headers are in,
   * before the client sees them. Resolves once the response is done, with that status and
   * headers; status 0 when no upstream answer arrived (the client got a 502 or 504).
   */
  async web(
    req: IncomingMessage,
    res: ServerResponse,
    routed: Routed,
    onResponse?: (status: number, headers: IncomingHttpHeaders) => void | Promise<void>,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; target: URL }> {
    const target = upstreamUrl(routed)
    const abort = new AbortController()
    const onClose = (): void => {
      if (!res.writableFinished) abort.abort()
    }
    res.once('close', onClose)
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    let response: UpstreamResponse
    try {
      response = await this.#upstream.forward(
        routed.route,
        target,
        req.method ?? 'GET',
        withOwnOrRouteCredential(privateHeaders(req.headers), routed.route),
        hasBody ? req : null,
        abort.signal,
      )
    } catch (err) {
      res.off('close', onClose)
      if (!abort.signal.aborted) this.#log.warn({ err, method: req.method, target: target.href }, 'pass-through failed')
      sendFailure(res, err, this.#cacheStatus)
      return { status: 0, headers: {}, target }
    }
    const headers = headersObject(response.headers)
    try {
      await onResponse?.(response.status, headers)
      await streamResponse(req, res, response, this.#cacheStatus)
    } finally {
      res.off('close', onClose)
    }
    return { status: response.status, headers, target }
  }

  /** Proxies an upgrade (e.g. WebSocket) to the route's first upstream. */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, routed: Routed): void {
    const target = upstreamUrl(routed)
    const options = { target, headers: upgradeCredential(req.headers, routed.route), ...(this.#ca === undefined ? {} : { ca: this.#ca }) }
    this.#proxy.ws(req, socket as never, options, head).catch((err: unknown) => {
      this.#log.warn({ err, target: target.href }, 'upgrade pass-through failed')
      socket.destroy()
    })
  }

  close(): void {
    this.#proxy.close()
  }

  /** Trusted CAs handed to upgrades, the same as for every other upstream request. */
  get ca(): string | undefined {
    return this.#ca
  }
}

/** The first upstream's URL for this request (pass-through does not fail over: bodies are not replayable). */
export function upstreamUrl(routed: Routed): URL {
  const base = routed.route.upstreams[0] as URL
  return new URL(`./${routed.relativePath}`, base)
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
  transform?: ServedTransform,
): Promise<UpstreamResponse> {
  const response = await upstream.request(routed.route, {
    method: req.method === 'HEAD' ? 'HEAD' : 'GET',
    relativePath: routed.relativePath,
    headers: withOwnOrRouteCredential(privateHeaders(req.headers), routed.route),
  })
  const headers = isRedirect(response.status) ? rewriteLocation(response.headers, routed.route, response.url) : response.headers
  await streamResponse(req, res, { ...response, headers }, cacheStatus, transform, routed.relativePath)
  return response
}

/** Sends an upstream response to one client as it arrives; a broken body closes the connection. */
export async function streamResponse(
  req: IncomingMessage,
  res: ServerResponse,
  response: UpstreamResponse,
  cacheStatus: string,
  routeTransform?: ServedTransform,
  relativePath = '',
): Promise<void> {
  const stripped = stripHopByHop(response.headers)
  const transform = transformFor(routeTransform, response.status, relativePath, stripped, headerValue(req.headers['accept-encoding']))
  const headers = transform === undefined ? stripped : transformedHeaders(stripped, transform)
  writeHead(res, response.status, response.statusText, buildHead(headers, { cacheStatus }))
  if (req.method === 'HEAD') {
    // The body (of a GET made on a HEAD's behalf) is not wanted: drop it rather than download it.
    discardBody(response.body)
    res.end()
    return
  }
  try {
    if (transform === undefined) await pipeline(response.body, res)
    else await pipeline(response.body, transform.create(), res)
  } catch {
    discardBody(response.body)
    res.destroy()
  }
}

/** Raw header list -> node's lower-case object (repeated fields joined, set-cookie as a list). */
function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {}
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    const value = raw[i + 1] as string
    const prev = out[name]
    if (name === 'set-cookie') out['set-cookie'] = [...(out['set-cookie'] ?? []), value]
    else out[name] = prev === undefined ? value : `${String(prev)}, ${value}`
  }
  return out
}
