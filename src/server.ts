// src/server.ts
// The node:http server: opens the store, wires the request pipeline and the admin room, and
// closes gracefully.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { describeListen, type Config } from './config.js'
import { ConfigError, InternalError } from './errors.js'
import type { ScanResult } from './cache/scan-disk.js'
import { TieredStore } from './cache/tiered-store.js'
import type { StoreChange } from './cache/worker-sync.js'
import { FillRegistry } from './upstream/fill-registry.js'
import { UpstreamClient } from './upstream/client.js'
import { PassThrough } from './proxy/pass-through.js'
import { routeRequest } from './proxy/route.js'
import { handle, type Deps, type Exchange } from './proxy/handle.js'
import { sendFailure } from './respond/send-error.js'
import { checkTransform, type BodyTransform } from './respond/body-transform.js'
import { CacheStatusWriter, outcomeWord, type CacheOutcome } from './respond/cache-status.js'
import { Metrics } from './admin/metrics.js'
import { metricsEndpoint, statsEndpoint } from './admin/figures.js'
import { purgeEndpoint } from './admin/purge.js'
import { readyEndpoint } from './admin/ready.js'
import { syncEndpoint, syncEntries } from './admin/sync.js'
import { AdminRouter, isAdminPath } from './admin/router.js'
import { healthEndpoint } from './admin/health.js'
import { urlRewriteFor } from './profiles/rewrite-urls.js'
import { ForwardProxy } from './proxy/forward-proxy.js'
import { connectTarget, isConnectAllowed, openTunnel } from './proxy/connect-tunnel.js'
import { Integrity } from './integrity/integrity.js'
import type { Peers } from './cluster/peers.js'
import { logCompleted } from './log.js'

export interface Mirror {
  /** Base URL clients use, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
  readonly host: string
  readonly port: number
  readonly store: TieredStore
  readonly fills: FillRegistry
  /** Resolves when the start-up scan has indexed the disk cache. */
  readonly scanned: Promise<ScanResult>
  /** Stops accepting connections, lets in-flight responses finish for up to `graceMs`, then closes the rest. */
  close(graceMs?: number): Promise<void>
}

export interface MirrorOptions {
  /** Clock for freshness decisions (epoch ms); tests may pass their own. */
  readonly now?: () => number
  /** A client socket with no traffic either way for this long is closed (default 120 s). */
  readonly clientIdleMs?: number
  /** A client must send its whole request head within this time (default 30 s). */
  readonly clientHeadersMs?: number
  /** This process is one worker of `serve --workers N`: the other workers, as seen from here. */
  readonly peers?: Peers
  /**
   * Serve-time body transforms, by route prefix: every body that route serves (cached, filling or
   * passed through) goes through the transform. Routes without one serve the stored bytes.
   */
  readonly transforms?: ReadonlyMap<string, BodyTransform>
}

export async function startMirror(config: Config, log: Logger, options: MirrorOptions = {}): Promise<Mirror> {
  const peers = options.peers
  const store = await TieredStore.open({
    cacheDir: config.cacheDir,
    maxDiskBytes: config.maxDiskBytes,
    maxMemoryBytes: config.maxMemoryBytes,
    log: log.child({ component: 'store' }),
    ...(peers === undefined ? {} : { leftoversBefore: peers.self.startedAt, onChange: (change: StoreChange) => peers.publish(change) }),
  })
  const now = options.now ?? Date.now
  const upstream = new UpstreamClient({ now, ca: config.ca, env: process.env })
  const fills = new FillRegistry(store, upstream, log.child({ component: 'fill' }))
  const cacheStatus = new CacheStatusWriter(config.name)
  const passThrough = new PassThrough(log.child({ component: 'pass-through' }), upstream, cacheStatus)
  const transforms = checkedTransforms(config, options.transforms)
  const metrics = new Metrics({ store, fills, upstream })
  upstream.observe = (origin, seconds) => metrics.observeUpstream(origin, seconds)
  const forward = config.proxyAllow.length === 0 ? undefined : new ForwardProxy(config)
  const integrity = new Integrity(store, config.routes, log.child({ component: 'integrity' }))
  const deps: Deps = { config, store, fills, upstream, passThrough, now, peers, cacheStatus, transforms, forward, integrity }
  // Other workers' changes apply from now on, before this worker serves anything.
  const unsubscribe = peers?.subscribe(store, fills)
  // Set once the start-up scan has finished (or failed: entries are then found on demand).
  let indexed = false
  const admin = new AdminRouter(cacheStatus)
    .add(healthEndpoint({ config, store, fills, upstream, peers, integrity, startedAt: Date.now() }))
    .add(metricsEndpoint(metrics))
    .add(statsEndpoint(metrics))
    .add(purgeEndpoint(deps, config.routes, config.adminToken, cacheStatus))
    .add(readyEndpoint(config.cacheDir, () => indexed))
    .add(syncEndpoint(deps, config, cacheStatus))
  let nextId = 0
  let inFlight = 0
  let idle: (() => void) | undefined
  const tunnels = new Set<Socket>()

  // Slow-loris clients get clientHeadersMs for their request head; a client that stops reading
  // (or sending) for clientIdleMs is disconnected, which releases its file and fill.
  const onRequest =
    (fromPeer: boolean) =>
    (req: IncomingMessage, res: ServerResponse): void => {
      const t0 = Date.now()
      const x = new RequestContext(req, res, log, ++nextId, fromPeer)
      const socket = req.socket
      const written0 = socket.bytesWritten
      inFlight++
      // 'close' comes once per response; `on` spares the once-wrapper per request.
      res.on('close', () => {
        const bytes = socket.bytesWritten - written0
        logCompleted(log, x, t0, bytes)
        if (x.route !== undefined) metrics.countRequest(x.route, outcomeWord(x.outcome), x.outcome.hit === true, bytes)
        if (--inFlight === 0) idle?.()
      })
      try {
        dispatch(x)?.catch((err: unknown) => failed(x, err))
      } catch (err) {
        failed(x, err)
      }
    }
  // A thrown error in one request becomes a 500 for that request and a log line, never a crash.
  const failed = (x: Exchange, err: unknown): void => {
    x.log.error({ err, url: x.req.url }, 'request failed')
    sendFailure(x.res, new InternalError('internal error', { cause: err }), cacheStatus.format({}))
  }
  const server = createServer(
    {
      headersTimeout: options.clientHeadersMs ?? 30_000,
      connectionsCheckingInterval: Math.min(1_000, options.clientHeadersMs ?? 30_000),
      requestTimeout: 0,
      keepAliveTimeout: 5_000,
    },
    onRequest(false),
  )

  /** Undefined when the request was answered synchronously (a fresh memory hit). */
  function dispatch(x: Exchange): Promise<void> | undefined {
    const url = x.req.url ?? ''
    if (url.startsWith('/_cachemir') && isAdminPath(url.split('?', 1)[0] ?? '')) return admin.handle(x.req, x.res)
    return handle(x, deps)
  }

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // Node leaves upgraded sockets without an error listener: a reset must not crash the server.
    socket.on('error', () => socket.destroy())
    const path = (req.url ?? '').split('?')[0] as string
    const routed = isAdminPath(path) ? ({ status: 404 } as const) : routeRequest(config.routes, req.url ?? '')
    if ('status' in routed) {
      refuse(
        socket,
        `HTTP/1.1 ${routed.status} ${routed.status === 404 ? 'Not Found' : 'Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      )
      return
    }
    // Upgraded connections leave the http server's bookkeeping: track them so close() ends them.
    tunnels.add(socket)
    socket.once('close', () => tunnels.delete(socket))
    passThrough.ws(req, socket, head, routed)
  })
  // CONNECT would make us a tunnel to anywhere: never (the mirror is not an open proxy).
  // Only the targets in --connect-allow get a tunnel (uncached); every other CONNECT is refused.
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    if (config.connectAllow.length === 0) {
      refuse(
        socket,
        'HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      )
      return
    }
    const target = connectTarget(req.url)
    if (target === undefined || !isConnectAllowed(config.connectAllow, target)) {
      refuse(socket, 'HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    const track = (s: Socket): void => {
      tunnels.add(s)
      s.once('close', () => tunnels.delete(s))
    }
    track(socket)
    openTunnel(socket, head, target, log.child({ component: 'tunnel' }), track)
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    log.info({ err: { code: err.code, message: err.message } }, 'client error')
    if (socket.writable) refuse(socket, 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    else socket.destroy()
  })

  server.setTimeout(options.clientIdleMs ?? 120_000, (socket) => socket.destroy())
  await listen(server, config)
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  const shown = describeListen({ host: config.host, port })
  if (peers === undefined) {
    log.info({ listen: shown, cacheDir: config.cacheDir, routes: config.routes.map((r) => r.prefix) }, 'listening')
  } else {
    // The primary logs the one `listening` line once every worker is up.
    await peers.listen(onRequest(true))
    log.info({ worker: peers.self.index, address: shown }, 'worker listening')
    peers.announce(shown)
  }

  const scanned = store.scan().then(
    (result) => {
      indexed = true
      log.info(result, 'disk index ready')
      return result
    },
    (err: unknown) => {
      indexed = true
      log.error({ err }, 'disk scan failed; entries are still found on demand')
      return { entries: store.disk.index.entries, removedFiles: 0, durationMs: 0 }
    },
  )

  // --sync-every: the same sync as POST /_cachemir/sync, on a timer (one worker of a group runs it).
  let syncing: Promise<void> | undefined
  const syncTimer =
    config.syncEveryMs === undefined || (peers !== undefined && peers.self.index !== 0)
      ? undefined
      : setInterval(() => {
          syncing ??= syncEntries(deps, config)
            .then(
              (report) => log.info(report, 'background sync done'),
              (err: unknown) => log.warn({ err }, 'background sync failed'),
            )
            .finally(() => (syncing = undefined))
        }, config.syncEveryMs)
  syncTimer?.unref()

  let closing: Promise<void> | undefined
  async function close(graceMs = 10_000): Promise<void> {
    closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceMs)
          idle = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
      clearInterval(syncTimer)
      await syncing
      await fills.settleAll()
      server.closeAllConnections()
      for (const socket of tunnels) socket.destroy()
      await stopped
      passThrough.close()
      unsubscribe?.()
      await peers?.close()
      await upstream.close()
      await scanned
    })()
    return closing
  }

  return { url: `http://${shown}`, host: config.host, port, store, fills, scanned, close }
}

/**
 * An Exchange whose per-request logger (the root logger with a `reqId`) is made on first use:
 * most requests never log anything but the request-completed line.
 */
class RequestContext implements Exchange {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  outcome: CacheOutcome = {}
  upstreamMs: number | undefined = undefined
  route: string | undefined = undefined
  readonly #root: Logger
  readonly fromPeer: boolean
  readonly #id: number
  #log: Logger | undefined

  constructor(req: IncomingMessage, res: ServerResponse, root: Logger, id: number, fromPeer: boolean) {
    this.req = req
    this.res = res
    this.#root = root
    this.#id = id
    this.fromPeer = fromPeer
  }

  get log(): Logger {
    return (this.#log ??= this.#root.child({ reqId: this.#id }))
  }
}

/** The transforms given for configured routes, each checked; a prefix without a route is a mistake. */
function checkedTransforms(config: Config, given: ReadonlyMap<string, BodyTransform> | undefined): ReadonlyMap<string, BodyTransform> {
  const transforms = new Map<string, BodyTransform>()
  // Profiles whose metadata points at the upstreams (npm, PyPI) rewrite it to point at the mirror.
  for (const route of config.routes) {
    const rewrite = urlRewriteFor(route, config.routes)
    if (rewrite !== undefined) transforms.set(route.prefix, rewrite)
  }
  if (given === undefined) return transforms
  for (const [prefix, transform] of given) {
    if (!config.routes.some((r) => r.prefix === prefix)) throw new ConfigError([`transforms: no route has the prefix ${prefix}`])
    transforms.set(prefix, checkTransform(transform))
  }
  return transforms
}

/** Answers a connection node:http has handed over (CONNECT, refused upgrades) and closes it fully. */
function refuse(socket: Socket, response: string): void {
  // end() alone leaves the socket half-open until the client closes its side, which would keep
  // the server from closing; destroy once the answer is flushed.
  socket.end(response, () => socket.destroy())
}

/** Listens, turning the usual failures into a one-line ConfigError naming --listen. */
function listen(server: Server, config: Config): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const where = describeListen(config)
      const why =
        err.code === 'EADDRINUSE'
          ? 'address already in use'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.code === 'EADDRNOTAVAIL'
              ? 'address not available on this machine'
              : (err.code ?? err.message)
      reject(new ConfigError([`--listen: cannot listen on ${where}: ${why}`], { cause: err }))
    }
    server.once('error', onError)
    server.listen(config.port, config.host, () => {
      server.off('error', onError)
      resolve()
    })
  })
}
