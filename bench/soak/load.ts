// bench/soak/load.ts
// The soak itself: client loops for --seconds, refused windows on the flaky origin, the mirror's memory.

import { setMaxListeners } from 'node:events'
import { formatBytes } from '../../src/util/units.js'
import { sleep } from '../lib/util.js'
import { newClientStats, type ClientStats } from './client-stats.js'
import { countFds, readMemory } from './mirror.js'
import type { Options } from './options.js'
import { runClient, type ClientContext } from './probes.js'
import { say } from './report.js'
import type { Setup } from './setup.js'

/** After --seconds, requests in flight may finish for this long; then they are cancelled. */
export const DRAIN_MS = 20_000
const MEMORY_SAMPLE_EVERY_MS = 250
const PROGRESS_EVERY_MS = 10_000

export interface Memory {
  start: number
  end: number
  peakSampled: number
  /** VmHWM: the kernel's own record of the peak. */
  peakVmHWM: number
}

export interface Load {
  readonly stats: ClientStats
  readonly soakMs: number
  /** Set when the mirror exited before it was told to stop. */
  readonly crashed: string | undefined
  readonly memory: Memory
  readonly fdsStart: number | undefined
}

/** Clients run until --seconds, then may drain for DRAIN_MS; a mirror crash stops them at once. */
export async function runLoad(opts: Options, setup: Setup): Promise<Load> {
  const { mirror, flaky, rand } = setup
  const memory: Memory = { start: NaN, end: NaN, peakSampled: 0, peakVmHWM: NaN }
  const sampleMemory = (): void => {
    const m = readMemory(mirror.pid)
    if (m === undefined) return
    if (Number.isNaN(memory.start)) memory.start = m.rssBytes
    memory.end = m.rssBytes
    memory.peakSampled = Math.max(memory.peakSampled, m.rssBytes)
    memory.peakVmHWM = m.hwmBytes
  }
  sampleMemory()
  const fdsStart = countFds(mirror.pid)
  const sampler = setInterval(sampleMemory, MEMORY_SAMPLE_EVERY_MS)

  // Connection-refused windows on the flaky origin: every 3–8 s, for 0.5–2.5 s.
  const stopFaults = new AbortController()
  const refusals = (async () => {
    while (!stopFaults.signal.aborted) {
      await sleep(3000 + rand() * 5000, stopFaults.signal)
      if (stopFaults.signal.aborted) break
      await flaky.refuseFor(500 + Math.floor(rand() * 2000), stopFaults.signal)
    }
  })()

  const end = new AbortController()
  // Every request in flight listens on this one signal.
  setMaxListeners(opts.clients * 8 + 16, end.signal)
  let crashed: string | undefined
  let done = false
  void mirror.exited.then((how) => {
    if (done) return
    crashed = how
    end.abort()
  })
  const stats = newClientStats()
  const soakStart = Date.now()
  const drainTimer = setTimeout(() => end.abort(), opts.seconds * 1000 + DRAIN_MS)
  const progress = setInterval(() => {
    const errors = Object.values(stats.errors).reduce((n, e) => n + e.count, 0)
    say(
      `${Math.round((Date.now() - soakStart) / 1000)} s: ${stats.requests} requests, ${errors} errors, ${stats.lost} lost, mirror RSS ${formatBytes(memory.end)}`,
    )
  }, PROGRESS_EVERY_MS)
  const ctx: ClientContext = { ...setup, deadline: soakStart + opts.seconds * 1000, end: end.signal, stats, startedAt: soakStart }
  await Promise.all(Array.from({ length: opts.clients }, () => runClient(ctx)))
  done = true
  const soakMs = Date.now() - soakStart
  clearTimeout(drainTimer)
  clearInterval(progress)
  stopFaults.abort()
  await refusals
  sampleMemory()
  clearInterval(sampler)
  return { stats, soakMs, crashed, memory, fdsStart }
}
