// bench/soak/origins.ts
// The two origins the mirror sits in front of: a good one, and a flaky one that injects faults.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { makeBody, sendBody, startOrigin, type SendOptions } from '../../test/helpers/origin.js'
import { MiB, sleep } from '../lib/util.js'
import { inc, type Counts } from './counts.js'
import type { Incidents } from './incidents.js'
import { KiB, objectAt, serveObject, type Rand, type SoakObject } from './objects.js'

/** Per flaky-origin request, in this order: 5xx first, then body faults. Stalls only when enabled. */
const FLAKY = { status500: 0.08, status503: 0.04, abort: 0.07, stall: 0.03, slowFirstByte: 0.1, throttled: 0.1 } as const

/** The flaky origin's path whose body stalls after 1 KiB, for the mirror's stall calibration. */
export const STALL_PROBE_PATH = '/d/_probe/stall'

export interface Good {
  readonly url: string
  requests(): number
  /** GET responses the mirror closed before their end. */
  closedByMirror(): number
  close(): Promise<void>
}

/** The well-behaved origin (startOrigin); bodies of 1 MiB and more at 32 MiB/s so fills overlap. */
export async function startGood(objects: readonly SoakObject[]): Promise<Good> {
  let counted = 0
  let closedByMirror = 0
  const origin = await startOrigin(undefined, async (req, res) => {
    const obj = objectAt(objects, req.url)
    if (obj === undefined) return sendBody(req, res, Buffer.from('not found\n'), { status: 404 })
    await serveObject(req, res, obj, obj.body.length >= MiB ? { bytesPerSecond: 32 * MiB } : {})
    if (!res.writableFinished && req.method === 'GET') closedByMirror++
  })
  // startOrigin keeps every request; fold them into a count so a long soak stays flat.
  const fold = (): void => {
    counted += origin.requests.length
    origin.reset()
  }
  const timer = setInterval(fold, 1000)
  return {
    url: origin.url,
    requests: () => counted + origin.requests.length,
    closedByMirror: () => closedByMirror,
    close: async () => {
      clearInterval(timer)
      fold()
      await origin.close()
    },
  }
}

export interface Flaky {
  readonly url: string
  requests: number
  closedByMirror: number
  readonly plans: Counts
  /** Closes the listener (connection refused) for `ms`, then listens on the same port again. */
  refuseFor(ms: number, signal: AbortSignal): Promise<void>
  /** Holds the stall probe's response: destroy it to end the probe. */
  probe: ServerResponse | undefined
  close(): Promise<void>
}

interface FlakyPlan {
  readonly kind: string
  readonly status?: number
  readonly send: SendOptions
  /** The plan cuts the body short (abort or stall). */
  readonly cuts: boolean
}

function planFlaky(rand: Rand, isGet: boolean, size: number, stalls: boolean): FlakyPlan {
  let r = rand()
  const next = (p: number): boolean => {
    if (r < p) return true
    r -= p
    return false
  }
  if (next(FLAKY.status500)) return { kind: '500', status: 500, send: {}, cuts: false }
  if (next(FLAKY.status503)) return { kind: '503', status: 503, send: {}, cuts: false }
  if (isGet && next(FLAKY.abort)) return { kind: 'abort', send: { abortAfterBytes: Math.floor(size * rand()) }, cuts: true }
  if (isGet && stalls && next(FLAKY.stall)) return { kind: 'stall', send: { stallAfterBytes: Math.floor(size * rand()) }, cuts: true }
  if (next(FLAKY.slowFirstByte))
    return { kind: 'slow-first-byte', send: { firstByteDelayMs: 100 + Math.floor(rand() * 1400) }, cuts: false }
  if (next(FLAKY.throttled)) return { kind: 'throttled', send: { bytesPerSecond: (2 + Math.floor(rand() * 14)) * MiB }, cuts: false }
  return { kind: 'ok', send: {}, cuts: false }
}

/**
 * The misbehaving origin: same content as the good one, but 5xx, mid-body aborts, stalls, slow
 * first bytes, throttling, and connection-refused windows. Its own node:http server (not
 * startOrigin) because a refused window closes the listener and reopens it on the same port.
 */
export async function startFlaky(objects: readonly SoakObject[], incidents: Incidents, rand: Rand, stalls: () => boolean): Promise<Flaky> {
  const sockets = new Set<Socket>()
  const live = new Set<ServerResponse>()
  const cutByWindow = new WeakSet<ServerResponse>()
  const server = createServer((req, res) => void handle(req, res))
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  const port = await listenOn(0)
  const flaky: Flaky = {
    url: `http://127.0.0.1:${port}`,
    requests: 0,
    closedByMirror: 0,
    plans: {},
    probe: undefined,
    refuseFor: async (ms, signal) => {
      const window = { from: Date.now(), to: Infinity }
      incidents.refusals.push(window)
      for (const res of live) cutByWindow.add(res)
      await closeListener()
      await sleep(ms, signal)
      if (!signal.aborted) await listenOn(port)
      window.to = Date.now()
    },
    close: closeListener,
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    flaky.requests++
    live.add(res)
    res.once('close', () => live.delete(res))
    const path = req.url ?? ''
    try {
      if (path === STALL_PROBE_PATH) {
        // Calibration: 1 KiB of a 64 KiB body, then silence until the mirror gives up.
        flaky.probe = res
        return await sendBody(req, res, makeBody(64 * KiB), { headers: { 'cache-control': 'max-age=60' }, stallAfterBytes: KiB })
      }
      const obj = objectAt(objects, path)
      if (obj === undefined) return await sendBody(req, res, Buffer.from('not found\n'), { status: 404 })
      const plan = planFlaky(rand, req.method === 'GET', obj.body.length, stalls())
      inc(flaky.plans, plan.kind)
      if (plan.status !== undefined) {
        incidents.addStatus(path, Date.now())
        return await sendBody(req, res, Buffer.from(`flaky ${plan.status}\n`), {
          status: plan.status,
          headers: { 'content-type': 'text/plain' },
        })
      }
      await serveObject(req, res, obj, plan.send)
      if (!res.writableFinished) {
        if (plan.cuts || cutByWindow.has(res)) incidents.addCut(path, Date.now())
        else flaky.closedByMirror++
      }
    } catch {
      res.destroy()
    }
  }

  function closeListener(): Promise<void> {
    return new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
      for (const socket of sockets) socket.destroy()
    })
  }

  async function listenOn(wanted: number): Promise<number> {
    // Port 0 the first time; afterwards the same port (another process could take it meanwhile).
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen(wanted, '127.0.0.1', () => {
            server.off('error', reject)
            resolve()
          })
        })
        const address = server.address()
        return typeof address === 'object' && address !== null ? address.port : wanted
      } catch (err) {
        if (attempt >= 20) throw new Error(`flaky origin cannot listen again on 127.0.0.1:${wanted}`, { cause: err })
        await sleep(100)
      }
    }
  }

  return flaky
}
