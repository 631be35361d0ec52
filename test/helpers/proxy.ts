// test/helpers/proxy.ts
// Starts a real cachemir on 127.0.0.1:0: in-process (startProxy, or from a config file with
// startConfiguredProxy and startRoutedProxy; startBoundedMirror) or as a child process
// (startProxyProcess); reads its /_cachemir/health.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import { resolveConfig, type ConfigInput } from '../../src/config.js'
import { startMirror, type Mirror, type MirrorOptions } from '../../src/server.js'
import { get } from './client.js'
import { makeTempDir } from './temp-dir.js'

/** Root of the compiled project (dist/test/helpers -> repo root). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const CLI = join(ROOT, 'dist', 'src', 'cli.js')

export interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

export interface Proxy {
  readonly mirror: Mirror
  readonly cacheDir: string
  readonly port: number
  /** `http://127.0.0.1:PORT` + path. */
  url(path: string): string
  /** Every log line the mirror wrote, parsed. */
  readonly logs: LogLine[]
  close(): Promise<void>
}

export interface ProxyOptions extends Omit<ConfigInput, 'listen' | 'upstream'> {
  /** One or more upstream base URLs; omit when `config` defines routes. */
  readonly upstream?: string | string[]
  /** Reuse a cache directory (restart tests); a fresh temp dir otherwise. */
  readonly cacheDir?: string
  readonly now?: () => number
  /** Serve-time body transforms by route prefix (MirrorOptions.transforms). */
  readonly transforms?: MirrorOptions['transforms']
  /** The environment resolveConfig reads (default: none), e.g. a route's upstreamAuth variable. */
  readonly env?: Record<string, string | undefined>
}

/**
 * An in-process mirror. One t.after hook closes it and only then removes the temp cache dir it
 * made (never a caller's `cacheDir`), so the dir is not pulled away from a running fill and a
 * failed removal cannot leave the mirror running.
 */
export async function startProxy(t: TestContext, options: ProxyOptions = {}): Promise<Proxy> {
  const ownDir = options.cacheDir === undefined
  const cacheDir = options.cacheDir ?? (await mkdtemp(join(tmpdir(), 'cachemir-cache-')))
  const removeOwnDir = async (): Promise<void> => {
    if (ownDir) await rm(cacheDir, { recursive: true, force: true, maxRetries: 5 })
  }
  const upstream = options.upstream === undefined ? undefined : Array.isArray(options.upstream) ? options.upstream : [options.upstream]
  const logs: LogLine[] = []
  let mirror: Mirror
  try {
    const { transforms: _transforms, now: _now, env = {}, ...input } = options
    const config = resolveConfig({ ...input, upstream, cacheDir, listen: '127.0.0.1:0', logLevel: options.logLevel ?? 'debug' }, env)
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine)
        cb()
      },
    })
    const log = pino({ level: config.logLevel }, sink)
    const mirrorOptions: MirrorOptions = {
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.transforms === undefined ? {} : { transforms: options.transforms }),
    }
    mirror = await startMirror(config, log, mirrorOptions)
  } catch (err) {
    await removeOwnDir()
    throw err
  }
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await mirror.close(1000)
  }
  t.after(async () => {
    try {
      await close()
    } finally {
      await removeOwnDir()
    }
  })
  return { mirror, cacheDir, port: mirror.port, url: (path) => `http://127.0.0.1:${mirror.port}${path}`, logs, close }
}

/** An in-process mirror configured by a JSON config file holding `settings` (routes, rules, …). */
export async function startConfiguredProxy(t: TestContext, settings: unknown, options: ProxyOptions = {}): Promise<Proxy> {
  const dir = await makeTempDir(t, 'cachemir-config-')
  const path = join(dir, 'cachemir.json')
  await writeFile(path, JSON.stringify(settings))
  return startProxy(t, { ...options, config: path })
}

/** One route of a config file: a mirror path prefix and the upstream base URLs behind it. */
export interface RouteSpec {
  readonly prefix: string
  readonly upstreams: readonly string[]
}

/** An in-process mirror configured by a config file with these routes and nothing else. */
export function startRoutedProxy(t: TestContext, routes: readonly RouteSpec[], options: ProxyOptions = {}): Promise<Proxy> {
  return startConfiguredProxy(t, { routes }, options)
}

/**
 * An in-process mirror (silent logs) for tests whose subject may leave `close()` hanging: the
 * t.after hook gives close() at most 5 s, then removes the temp cache dir anyway, so one hung
 * close cannot stall or cancel the rest of the file. Tests assert on close() themselves.
 */
export async function startBoundedMirror(t: TestContext, input: Omit<ConfigInput, 'listen' | 'cacheDir'>): Promise<Mirror> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'cachemir-cache-'))
  let mirror: Mirror
  try {
    const config = resolveConfig({ ...input, cacheDir, listen: '127.0.0.1:0', logLevel: 'silent' }, {})
    mirror = await startMirror(config, pino({ level: 'silent' }))
  } catch (err) {
    await rm(cacheDir, { recursive: true, force: true })
    throw err
  }
  t.after(async () => {
    const cancel = new AbortController()
    const timer = sleep(5000, undefined, { signal: cancel.signal }).catch(() => {})
    await Promise.race([mirror.close(1000).catch(() => {}), timer])
    cancel.abort()
    await rm(cacheDir, { recursive: true, force: true, maxRetries: 5 })
  })
  return mirror
}

/**
 * GET /_cachemir/health of a running mirror (in-process or a child process), asserted to be a
 * 200, parsed as JSON. `H` names the fields the caller reads; they are not checked.
 */
export async function getHealth<H>(proxy: { url(path: string): string }): Promise<H> {
  const res = await get(proxy.url('/_cachemir/health'))
  assert.equal(res.status, 200, res.body.toString())
  return JSON.parse(res.body.toString()) as H
}

export interface ProxyProcess {
  readonly child: ChildProcess
  readonly port: number
  url(path: string): string
  /** Everything written to stdout and stderr so far. */
  output(): string
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>
  kill(signal?: NodeJS.Signals): Promise<number | string>
}

/**
 * Spawns `node dist/src/cli.js serve ARGS --listen 127.0.0.1:0` and waits for its `listening` log
 * line. Killed with SIGKILL by t.after if still running.
 */
export async function startProxyProcess(t: TestContext, args: string[], env: Record<string, string> = {}): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 10 s:\n${out}`)), 10_000)
    const check = (): void => {
      const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        child.stdout.off('data', check)
        resolve(Number(m[1]))
      }
    }
    child.stdout.on('data', check)
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`cachemir exited (${code}) before listening:\n${out}`))
    })
  })
  return {
    child,
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    output: () => out,
    exited,
    kill: async (signal = 'SIGTERM') => {
      child.kill(signal)
      return exited
    },
  }
}

/** Runs the CLI to completion (for start-up errors); returns exit code and output. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
  clearTimeout(timer)
  return { code: code ?? signal ?? -1, stdout, stderr }
}
