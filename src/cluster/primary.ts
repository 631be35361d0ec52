// src/cluster/primary.ts
// The primary of `serve --workers N`: forks the workers (node:cluster shares the listening
// socket), relays their cache-change messages to each other, restarts a worker that dies, and on
// SIGTERM/SIGINT stops them all gracefully. It opens no cache and serves no request itself.

import cluster, { type Worker } from 'node:cluster'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { describeListen, type Config } from '../config.js'
import { WORKER_ENV, type PeerMessage } from './peers.js'

/** A worker that dies this soon after starting, this many times in a row, stops the group. */
const CRASH_WINDOW_MS = 10_000
const MAX_QUICK_CRASHES = 5

/** Resolves with the exit code for the whole group once every worker has stopped. */
export function runPrimary(config: Config, log: Logger): Promise<number> {
  const count = config.workers
  // A private directory for the workers' sockets: no other group (another container sharing
  // /tmp, a leftover of a killed run) can collide with it or listen in.
  const group = mkdtempSync(join(tmpdir(), 'cachemir-workers-'))
  const startedAt = Date.now()
  const workers = new Map<number, Worker>()
  const listening = new Set<number>()
  /** Open barriers by id (`pid:n` of the sender) -> the workers that have not acknowledged yet. */
  const barriers = new Map<string, { from: number; id: string; waiting: Set<number> }>()
  const settleBarriers = (): void => {
    for (const [key, b] of barriers) {
      if (b.waiting.size > 0) continue
      barriers.delete(key)
      const done: PeerMessage = { t: 'cachemir:barrier-done', id: b.id }
      const sender = workers.get(b.from)
      if (sender?.isConnected() === true) sender.send(done)
    }
  }
  let announced = false
  let stopping = false
  let quickCrashes = 0
  let exitCode = 0

  return new Promise((resolve) => {
    const finish = (code: number): void => {
      rmSync(group, { recursive: true, force: true })
      resolve(code)
    }
    const fork = (index: number): void => {
      const worker = cluster.fork({
        [WORKER_ENV.index]: String(index),
        [WORKER_ENV.count]: String(count),
        [WORKER_ENV.group]: group,
        [WORKER_ENV.startedAt]: String(startedAt),
      })
      const forkedAt = Date.now()
      workers.set(index, worker)
      worker.on('message', (message: PeerMessage) => {
        if (message?.t === 'cachemir:listening') {
          listening.add(index)
          if (!announced && listening.size === count) {
            announced = true
            const listen = message.address
            log.info({ listen, workers: count, cacheDir: config.cacheDir, routes: config.routes.map((r) => r.prefix) }, 'listening')
          }
        } else if (message?.t === 'cachemir:change') {
          for (const [other, peer] of workers) if (other !== index && peer.isConnected()) peer.send(message)
        } else if (message?.t === 'cachemir:barrier') {
          const waiting = new Set<number>()
          for (const [other, peer] of workers) {
            if (other === index || !peer.isConnected()) continue
            waiting.add(other)
            peer.send(message)
          }
          barriers.set(message.id, { from: index, id: message.id, waiting })
          settleBarriers()
        } else if (message?.t === 'cachemir:barrier-ack') {
          barriers.get(message.id)?.waiting.delete(index)
          settleBarriers()
        }
      })
      worker.on('exit', (code, signal) => {
        workers.delete(index)
        listening.delete(index)
        for (const [id, b] of barriers) {
          if (b.from === index)
            barriers.delete(id) // its sender is gone
          else b.waiting.delete(index)
        }
        settleBarriers()
        if (stopping) {
          if (code !== 0) exitCode = 1
          if (workers.size === 0) finish(exitCode)
          return
        }
        // A configuration problem fails every worker the same way at start: stop, do not loop.
        quickCrashes = Date.now() - forkedAt < CRASH_WINDOW_MS ? quickCrashes + 1 : 0
        if (code === 2 || quickCrashes >= MAX_QUICK_CRASHES) {
          log.error({ worker: index, code, signal }, 'worker failed at start; stopping the group')
          exitCode = code === 2 ? 2 : 1
          stop()
          if (workers.size === 0) finish(exitCode)
          return
        }
        log.error({ worker: index, code, signal }, 'worker died; starting a new one')
        setTimeout(
          () => {
            if (!stopping) fork(index)
          },
          Math.min(1000 * quickCrashes, 5000),
        ).unref()
      })
    }

    const stop = (): void => {
      if (stopping) return
      stopping = true
      for (const worker of workers.values()) worker.process.kill('SIGTERM')
      // A worker that does not finish within its grace period (and some slack) is killed.
      setTimeout(() => {
        for (const worker of workers.values()) worker.process.kill('SIGKILL')
      }, config.shutdownGraceMs + 15_000).unref()
    }
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) return
      log.info({ signal, graceMs: config.shutdownGraceMs, workers: workers.size }, 'shutting down')
      stop()
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    log.info({ workers: count, address: describeListen(config), peerDir: group }, 'starting workers')
    for (let i = 0; i < count; i++) fork(i)
  })
}
