// bench/soak/mirror.ts
// The cachemir under test: the real CLI as a child process, its log, its resources, its stop.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, readdirSync, statSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request, type Agent } from 'undici'
import { CLI, procStatusBytes, stopChild, tail } from '../lib/util.js'
import { inc, type Counts } from './counts.js'
import type { Options } from './options.js'
import { STALL_PROBE_PATH, type Flaky } from './origins.js'

/** The mirror's upstream body idle timeout asked for when stalls are to be exercised. */
export const STALL_IDLE_MS = 2000
/** After SIGTERM the mirror must exit within this (its own grace is 10 s). */
const SHUTDOWN_WAIT_MS = 20_000
/** The mirror must print its listening line within this. */
const LISTEN_WAIT_MS = 15_000

export interface MirrorLog {
  completed: number
  completedAborted: number
  readonly byCache: Counts
  readonly warn: Counts
  readonly error: Counts
}

export interface MirrorProcess {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly log: MirrorLog
  /** Resolves with `code N` or `signal NAME` once the process has exited. */
  readonly exited: Promise<string>
  /** The last 8 KiB of stdout and stderr, for crash reports. */
  tail(): string
}

export interface StartedMirror {
  readonly mirror: MirrorProcess
  /** The CLI's arguments after `serve --listen 127.0.0.1:0`. */
  readonly args: readonly string[]
  readonly cacheDir: string
  /** The CLI accepted `--idle-timeout`, so stalls can be cut quickly. */
  readonly hasIdleTimeout: boolean
}

/**
 * Writes the routes into `dir/soak.json` (`/m/` = [flaky, good], `/d/` = [flaky]) and starts the
 * mirror with its cache in `dir/cache`, on a port it picks itself.
 */
export async function startMirror(opts: Options, dir: string, upstreams: { good: string; flaky: string }): Promise<StartedMirror> {
  const cacheDir = join(dir, 'cache')
  const configFile = join(dir, 'soak.json')
  const routes = [
    { prefix: '/m/', upstreams: [`${upstreams.flaky}/m/`, `${upstreams.good}/m/`] },
    { prefix: '/d/', upstreams: [`${upstreams.flaky}/d/`] },
  ]
  await writeFile(configFile, JSON.stringify({ routes }))
  const hasIdleTimeout = hasIdleTimeoutFlag()
  const args = [
    '--config',
    configFile,
    '--cache-dir',
    cacheDir,
    '--max-disk',
    opts.maxDisk,
    '--max-memory',
    opts.maxMemory,
    '--log-level',
    'info',
  ]
  if (hasIdleTimeout) args.push('--idle-timeout', `${STALL_IDLE_MS}ms`)
  const mirror = await spawnMirror(args, opts.mirrorLog)
  return { mirror, args, cacheDir, hasIdleTimeout }
}

/** Whether the mirror CLI accepts `--idle-timeout` (a newer flag); the soak asks for a short one. */
function hasIdleTimeoutFlag(): boolean {
  const help = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8', timeout: 15_000 })
  return `${help.stdout}`.includes('--idle-timeout')
}

async function spawnMirror(args: string[], copyTo: string | undefined): Promise<MirrorProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const log: MirrorLog = { completed: 0, completedAborted: 0, byCache: {}, warn: {}, error: {} }
  const lastOutput = tail(child)
  let partial = ''
  let onPort: ((port: number) => void) | undefined
  const copy = copyTo === undefined ? undefined : createWriteStream(copyTo)
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => {
      copy?.end()
      resolve(code !== null ? `code ${code}` : `signal ${signal ?? '?'}`)
    }),
  )
  child.stderr.on('data', (d: Buffer) => copy?.write(d))
  child.stdout.on('data', (d: Buffer) => {
    copy?.write(d)
    const lines = (partial + d.toString()).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) tallyLogLine(line, log, (port) => onPort?.(port))
  })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 15 s:\n${lastOutput()}`)), LISTEN_WAIT_MS)
    onPort = (p) => {
      clearTimeout(timer)
      resolve(p)
    }
    void exited.then((how) => {
      clearTimeout(timer)
      reject(new Error(`cachemir exited (${how}) before listening:\n${lastOutput()}`))
    })
  })
  return { child, pid: child.pid ?? 0, port, log, exited, tail: lastOutput }
}

function tallyLogLine(line: string, log: MirrorLog, onListening: (port: number) => void): void {
  let entry: { level?: unknown; msg?: unknown; listen?: unknown; cache?: unknown; aborted?: unknown }
  try {
    entry = JSON.parse(line) as typeof entry
  } catch {
    return
  }
  const msg = typeof entry.msg === 'string' ? entry.msg : '?'
  if (msg === 'listening' && typeof entry.listen === 'string') {
    const m = /:(\d+)$/.exec(entry.listen)
    if (m !== null) onListening(Number(m[1]))
  }
  if (msg === 'request completed') {
    log.completed++
    if (entry.aborted === true) log.completedAborted++
    inc(log.byCache, typeof entry.cache === 'string' ? entry.cache : 'none')
  }
  // 5xx request lines are logged at error by design; count them apart from real errors.
  const level = typeof entry.level === 'number' ? entry.level : 0
  const name = msg === 'request completed' ? 'request completed (5xx)' : msg
  if (level >= 50) inc(log.error, name)
  else if (level >= 40) inc(log.warn, name)
}

/**
 * Measures rather than trusts: requests a body that stalls after 1 KiB through the flaky-only
 * route and checks that the mirror cuts it within the idle timeout asked for (plus slack).
 */
export async function calibrateStall(base: string, agent: Agent, flaky: Flaky): Promise<{ cutMs: number | undefined }> {
  const t0 = Date.now()
  const limitMs = STALL_IDLE_MS + 2000
  const signal = AbortSignal.timeout(limitMs)
  let cut = false
  try {
    const res = await request(`${base}${STALL_PROBE_PATH}`, { dispatcher: agent, signal })
    for await (const chunk of res.body) void chunk
  } catch {
    cut = !signal.aborted
  }
  // Whatever happened, end the probe on the origin side so no fill waits for it.
  flaky.probe?.destroy()
  return { cutMs: cut ? Date.now() - t0 : undefined }
}

/** SIGTERM, then SIGKILL after SHUTDOWN_WAIT_MS; how it ended (`code 0` is a clean stop). */
export async function stopMirror(mirror: MirrorProcess): Promise<string> {
  await stopChild(mirror.child, SHUTDOWN_WAIT_MS)
  const how = await mirror.exited
  return how === 'signal SIGKILL' ? `hung: no exit ${SHUTDOWN_WAIT_MS / 1000} s after SIGTERM (killed)` : how
}

/** VmRSS and VmHWM of a process in bytes, from /proc (Linux only); undefined once it is gone. */
export function readMemory(pid: number): { rssBytes: number; hwmBytes: number } | undefined {
  const rssBytes = procStatusBytes(pid, 'VmRSS')
  if (rssBytes === undefined) return undefined
  return { rssBytes, hwmBytes: procStatusBytes(pid, 'VmHWM') ?? NaN }
}

export function countFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return undefined
  }
}

export interface DiskUsage {
  bodyBytes: number
  bodies: number
  tempFiles: number
}

/** Bytes of committed bodies and number of other files (temp, meta) under the cache dir. */
export function diskUsage(dir: string): DiskUsage {
  const usage = { bodyBytes: 0, bodies: 0, tempFiles: 0 }
  const walk = (d: string): void => {
    let names: string[]
    try {
      names = readdirSync(d)
    } catch {
      return
    }
    for (const name of names) {
      const p = join(d, name)
      let st
      try {
        st = statSync(p)
      } catch {
        continue
      }
      if (st.isDirectory()) walk(p)
      else if (name.startsWith('.tmp-')) usage.tempFiles++
      else if (name.endsWith('.body')) {
        usage.bodies++
        usage.bodyBytes += st.size
      }
    }
  }
  walk(dir)
  return usage
}
