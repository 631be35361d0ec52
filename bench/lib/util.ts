// Shared helpers for the benchmark runner: processes, ports, statistics, deterministic data.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
/** dist/bench/lib -> repository root */
export const ROOT = join(HERE, '..', '..', '..')
export const CLI = join(ROOT, 'dist', 'src', 'cli.js')
export const SERVER_CHILD = join(HERE, 'server-child.js')
export const LOAD_CHILD = join(HERE, 'load-child.js')

/** Resolves after `ms`, or at once when `signal` aborts (it never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve()
    const onAbort = (): void => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** A free loopback port: listen on :0, read the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      s.close(() => resolve(port))
    })
  })
}

/** Resolves once a TCP connect to the port succeeds. */
export async function waitForPort(port: number, timeoutMs = 15_000, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child !== undefined && child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before listening on ${port}`)
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1')
      sock.once('connect', () => {
        sock.destroy()
        resolve(true)
      })
      sock.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`)
    await sleep(50)
  }
}

export interface Proc {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly url: string
  stderrTail(): string
  /** Resident memory of the server in bytes (for nginx: master plus its children); undefined off Linux. */
  rssBytes(): number | undefined
  stop(): Promise<void>
}

/** Keep only the last `max` characters of a stream: never accumulate a child's output. */
export function tail(child: ChildProcess, max = 8192): () => string {
  let buf = ''
  const add = (d: Buffer): void => {
    buf = (buf + d.toString('utf8')).slice(-max)
  }
  child.stderr?.on('data', add)
  child.stdout?.on('data', add)
  return () => buf
}

export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.kill('SIGTERM')
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(t)
}

/** Start one of the bench's own servers (server-child.js) on an explicit free port. */
export async function startServer(mode: string, args: Record<string, string | number> = {}): Promise<Proc> {
  const port = await freePort()
  const argv = [SERVER_CHILD, mode, String(port)]
  for (const [k, v] of Object.entries(args)) argv.push(`--${k}`, String(v))
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  const t = tail(child)
  await waitForPort(port, 60_000, child).catch((e: unknown) => {
    throw new Error(`${mode} server: ${String(e)}\n${t()}`)
  })
  return procOf(child, port, t)
}

/** Start the real cachemir CLI. Port chosen here; log level warn so stdout stays quiet. */
export async function startCachemir(args: string[]): Promise<Proc> {
  const port = await freePort()
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const t = tail(child)
  await waitForPort(port, 15_000, child).catch((e: unknown) => {
    throw new Error(`cachemir: ${String(e)}\n${t()}`)
  })
  return procOf(child, port, t)
}

export function procOf(child: ChildProcess, port: number, t: () => string): Proc {
  return {
    child,
    pid: child.pid ?? -1,
    port,
    url: `http://127.0.0.1:${port}`,
    stderrTail: t,
    rssBytes: () => procStatusBytes(child.pid ?? -1),
    stop: () => stopChild(child),
  }
}

/** VmRSS (or another /proc status field) in bytes; undefined off Linux. */
export function procStatusBytes(pid: number, field = 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m?.[1] !== undefined ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

/** Sample a process's RSS (a pid, or a Proc's rssBytes) every `everyMs`; stop() returns the peak. */
export function rssSampler(source: number | (() => number | undefined), everyMs = 25): { stop(): number | undefined } {
  const read = typeof source === 'number' ? () => procStatusBytes(source) : source
  let peak: number | undefined
  const tick = (): void => {
    const v = read()
    if (v !== undefined && (peak === undefined || v > peak)) peak = v
  }
  tick()
  const timer = setInterval(tick, everyMs)
  return {
    stop: () => {
      clearInterval(timer)
      tick()
      return peak
    },
  }
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i] as number
}

export interface Spread {
  median: number
  min: number
  max: number
  samples: number[]
}
export function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: [...xs] }
}

/**
 * Deterministic bytes: xorshift32 words seeded per 1 MiB chunk, so chunk i can be generated
 * independently (the origin and the verifier agree without sharing a file).
 */
export function chunkBytes(seed: number, index: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size)
  let x = (Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0 || 1
  const words = size >> 2
  for (let i = 0; i < words; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    buf.writeUInt32LE(x, i * 4)
  }
  for (let i = words * 4; i < size; i++) buf[i] = i & 0xff
  return buf
}

export const MiB = 1024 * 1024
export const fmt = (n: number, digits = 1): string => (Number.isFinite(n) ? n.toFixed(digits) : '?')
/** `median (min–max)` of a Spread. */
export const fmtSpread = (s: Spread, digits = 1): string => `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`

/** A note on what a server wrote to stdout/stderr (cachemir logs at warn and above), or undefined. */
export function logNote(name: string, p: Proc): string | undefined {
  const lines = p
    .stderrTail()
    .split('\n')
    .filter((l) => l.trim() !== '')
  if (lines.length === 0) return undefined
  return `WARN ${name} wrote ${lines.length} line(s) (last 8 KiB kept); last: ${(lines.at(-1) ?? '').slice(0, 300)}`
}
