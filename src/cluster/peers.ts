// src/cluster/peers.ts
// A worker's view of the other workers of `serve --workers N`: who fills which URL, how to hand
// a request to that worker, and how cache changes reach every worker's memory tier and index.
//
// Each URL has one owner worker (its key's hash modulo N). A worker answers fresh hits itself,
// from its memory tier or the shared disk; anything that needs the upstream goes to the owner
// over a Unix socket, so the owner's one fill per key serves every worker's clients: still one
// upstream request per object across the whole process group.

import { createServer, request, Agent, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import { unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Logger } from 'pino'
import { hashKey } from '../cache/disk-layout.js'
import type { TieredStore } from '../cache/tiered-store.js'
import type { StoreChange } from '../cache/worker-sync.js'
import type { FillRegistry } from '../upstream/fill-registry.js'
import { memberOf, parseCacheStatus, type CacheOutcome } from '../respond/cache-status.js'
import { HOP_BY_HOP, headerValue } from '../http/headers.js'

/** Environment the primary gives each worker. */
export const WORKER_ENV = {
  index: 'CACHEMIR_WORKER_INDEX',
  count: 'CACHEMIR_WORKER_COUNT',
  /** A private directory (0700) the primary made for the workers' sockets. */
  group: 'CACHEMIR_WORKER_GROUP',
  startedAt: 'CACHEMIR_WORKER_GROUP_STARTED',
} as const

/** Messages between workers, relayed by the primary to every other worker. */
export type PeerMessage =
  | { readonly t: 'cachemir:change'; readonly change: StoreChange }
  | { readonly t: 'cachemir:listening'; readonly index: number; readonly address: string }
  /** Sender -> primary -> others; others ack; the primary says `barrier-done` once all live peers did. */
  | { readonly t: 'cachemir:barrier'; readonly id: string; readonly from: number }
  | { readonly t: 'cachemir:barrier-ack'; readonly id: string; readonly from: number }
  | { readonly t: 'cachemir:barrier-done'; readonly id: string }

/** The longest a barrier waits for the other workers (one may be restarting). */
const BARRIER_TIMEOUT_MS = 1000

export interface WorkerIdentity {
  readonly index: number
  readonly count: number
  /** The group's private socket directory. */
  readonly group: string
  /** When the primary started: files older than this in the cache are leftovers. */
  readonly startedAt: number
}

/** This process's place in a worker group, from the environment; undefined outside one. */
export function workerIdentity(env: NodeJS.ProcessEnv): WorkerIdentity | undefined {
  const index = Number(env[WORKER_ENV.index])
  const count = Number(env[WORKER_ENV.count])
  const group = env[WORKER_ENV.group]
  const startedAt = Number(env[WORKER_ENV.startedAt])
  if (!Number.isInteger(index) || !Number.isInteger(count) || count < 2 || group === undefined || !Number.isFinite(startedAt))
    return undefined
  return { index, count, group, startedAt }
}

export function peerSocketPath(group: string, index: number): string {
  return join(group, `${index}.sock`)
}

/**
 * Not passed to the owner: hop-by-hop fields, and those announcing a request body (only requests
 * without one are handed over; a stray Content-Length would make the owner read the next request
 * on the shared connection as this one's body).
 */
const NOT_HANDED_OVER = new Set([...HOP_BY_HOP, 'content-length', 'expect', 'host'])

export class Peers {
  readonly self: WorkerIdentity
  readonly #log: Logger
  readonly #agent = new Agent({ keepAlive: true, maxFreeSockets: 64 })
  #server: Server | undefined
  /** Requests handed to another worker, and those that fell back to this one (owner unreachable). */
  readonly counters = { forwarded: 0, fallbacks: 0, changesSent: 0, changesApplied: 0, barrierTimeouts: 0 }
  readonly #barriers = new Map<string, () => void>()
  #nextBarrier = 0

  /** The name every worker's Cache-Status member carries (the group shares one configuration). */
  readonly #cacheName: string

  constructor(self: WorkerIdentity, log: Logger, cacheName: string) {
    this.self = self
    this.#log = log
    this.#cacheName = cacheName
  }

  /** The worker that fills `urlKey`. */
  ownerOf(urlKey: string): number {
    return Number.parseInt(hashKey(urlKey).slice(0, 8), 16) % this.self.count
  }

  /**
   * The owner to ask for this request, or undefined when this worker does the work itself: it is
   * the owner, the request came from a peer, or it carries a body (a GET with a body is rare and
   * is served where it arrived rather than streamed on).
   */
  ownerToAsk(urlKey: string, req: IncomingMessage, fromPeer: boolean): number | undefined {
    if (fromPeer || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) return undefined
    const owner = this.ownerOf(urlKey)
    return owner === this.self.index ? undefined : owner
  }

  /** Listens on this worker's socket for requests other workers hand over. */
  async listen(handler: RequestListener): Promise<void> {
    const path = peerSocketPath(this.self.group, this.self.index)
    await unlink(path).catch(() => {})
    const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0 }, handler)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(path, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.#server = server
  }

  /**
   * Sends the request to the owner and relays its answer. Resolves 'unavailable' (nothing sent)
   * when the owner cannot be reached, e.g. while it restarts: the caller then serves it itself.
   * `onAnswer` learns the owner's cache outcome when its headers arrive (before the body).
   */
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    owner: number,
    onAnswer: (outcome: CacheOutcome) => void,
  ): Promise<'answered' | 'unavailable'> {
    return new Promise((resolve) => {
      const headers: Record<string, string | string[]> = {}
      for (const [name, value] of Object.entries(req.headers)) if (value !== undefined && !NOT_HANDED_OVER.has(name)) headers[name] = value
      const up = request({
        socketPath: peerSocketPath(this.self.group, owner),
        method: req.method,
        path: req.url,
        headers,
        agent: this.#agent,
      })
      let answered = false
      const onClientGone = (): void => {
        up.destroy()
      }
      res.once('close', onClientGone)
      up.once('error', (err) => {
        res.off('close', onClientGone)
        if (answered) return
        if (res.destroyed) {
          resolve('answered')
          return
        }
        this.counters.fallbacks++
        this.#log.warn({ err, owner }, 'owner worker unreachable; serving the request here')
        resolve('unavailable')
      })
      up.once('response', (answer) => {
        answered = true
        this.counters.forwarded++
        const raw: string[] = []
        for (let i = 0; i < answer.rawHeaders.length; i += 2) {
          const name = answer.rawHeaders[i] as string
          if (!HOP_BY_HOP.has(name.toLowerCase())) raw.push(name, answer.rawHeaders[i + 1] as string)
        }
        const ours = memberOf(parseCacheStatus(headerValue(answer.headers['cache-status'])), this.#cacheName)
        onAnswer(ours?.params.hit === true ? { hit: true, detail: 'peer' } : { fwd: 'miss', detail: 'peer' })
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage ?? '', raw)
        pipeline(answer, res).then(
          () => resolve('answered'),
          () => {
            // Owner or client gone mid-body: the client sees a cut response, as with an upstream cut.
            res.destroy()
            resolve('answered')
          },
        )
      })
      up.end()
    })
  }

  /** Tells the other workers about a change in the shared cache. */
  publish(change: StoreChange): void {
    if (process.send === undefined) return
    this.counters.changesSent++
    const message: PeerMessage = { t: 'cachemir:change', change }
    process.send(message)
  }

  /**
   * Resolves once every other worker has applied every change this one published before the
   * call (messages are relayed in order), or after a second. An invalidation waits for this
   * before its response goes out, so no later request, in any worker, finds the old entry.
   */
  barrier(): Promise<void> {
    if (process.send === undefined) return Promise.resolve()
    // Unique across restarts of this worker slot: a successor never settles its predecessor's.
    const id = `${process.pid}:${++this.#nextBarrier}`
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.counters.barrierTimeouts++
        this.#barriers.delete(id)
        resolve()
      }, BARRIER_TIMEOUT_MS)
      this.#barriers.set(id, () => {
        clearTimeout(timer)
        this.#barriers.delete(id)
        resolve()
      })
      const message: PeerMessage = { t: 'cachemir:barrier', id, from: this.self.index }
      process.send?.(message)
    })
  }

  /** Applies the other workers' changes to this worker's memory tier, index and fills. */
  subscribe(store: TieredStore, fills: FillRegistry): () => void {
    const onMessage = (message: unknown): void => {
      const m = message as PeerMessage | undefined
      if (m?.t === 'cachemir:barrier') {
        const ack: PeerMessage = { t: 'cachemir:barrier-ack', id: m.id, from: m.from }
        process.send?.(ack)
        return
      }
      if (m?.t === 'cachemir:barrier-done') {
        this.#barriers.get(m.id)?.()
        return
      }
      if (m?.t !== 'cachemir:change') return
      this.counters.changesApplied++
      store.applyChange(m.change)
      // Fills running when the invalidation began must not store; those started since may.
      if (m.change.kind === 'url' && !m.change.done) fills.invalidate(m.change.key)
    }
    process.on('message', onMessage)
    return () => process.off('message', onMessage)
  }

  /** Tells the primary this worker is serving. */
  announce(address: string): void {
    const message: PeerMessage = { t: 'cachemir:listening', index: this.self.index, address }
    process.send?.(message)
  }

  async close(): Promise<void> {
    this.#agent.destroy()
    const server = this.#server
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await unlink(peerSocketPath(this.self.group, this.self.index)).catch(() => {})
  }
}
