// bench/soak.ts
// Soak test: the real cachemir process between a flaky and a good origin, under random concurrent
// clients that check every body against the origin's sha256. Prints a summary, writes
// bench/results/soak-latest.json, exits 1 if an object was lost or the mirror crashed.
//
// The bench process hosts both origins and all clients (one thread); the mirror is a child
// process, so its RSS and file descriptors are its own. See bench/README.md, "Soak test".

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setMaxListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { isNotModified, makeBody, sendBody, sha256, startOrigin, type SendOptions, type Validators } from '../test/helpers/origin.js'
import { formatBytes, parseSize } from '../src/util/units.js'

/** Repository root (dist/bench -> root). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLI = join(ROOT, 'dist', 'src', 'cli.js')
const RESULTS = join(ROOT, 'bench', 'results', 'soak-latest.json')

const KiB = 1024
const MiB = 1024 * KiB

/** Per flaky-origin request, in this order: 5xx first, then body faults. Stalls only when enabled. */
const FLAKY = { status500: 0.08, status503: 0.04, abort: 0.07, stall: 0.03, slowFirstByte: 0.1, throttled: 0.1 } as const
/** Share of client requests on the flaky-only route `/d/` (the rest use `/m/` = [flaky, good]). */
const DIRECT_SHARE = 0.15
/** Client actions and their weights; a burst is 2–6 concurrent requests for one key. */
const ACTIONS = [
  ['get', 0.5],
  ['range', 0.12],
  ['head', 0.08],
  ['conditional', 0.12],
  ['burst', 0.13],
  ['cancel', 0.05],
] as const
/** Share of client requests that read slowly (a pause after every chunk). */
const SLOW_READER_SHARE = 0.05
const SLOW_READ_PAUSE_MS = 5
/** The mirror's upstream body idle timeout asked for when stalls are to be exercised. */
const STALL_IDLE_MS = 2000
/** A client request with no progress for this long is an error of kind `timeout`. */
const CLIENT_TIMEOUT_MS = 15_000
/** After --seconds, requests in flight may finish for this long; then they are cancelled. */
const DRAIN_MS = 20_000
/** After SIGTERM the mirror must exit within this (its own grace is 10 s). */
const SHUTDOWN_WAIT_MS = 20_000
/** An origin cut explains a client's broken body if it happened in [start - before, end + after]. */
const CUT_SLACK_BEFORE_MS = 500
const CUT_SLACK_AFTER_MS = 1000

type Rand = () => number
type Counts = Record<string, number>
type Action = (typeof ACTIONS)[number][0]

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  readonly seconds: number
  readonly clients: number
  readonly objects: number
  readonly seed: number
  readonly maxDisk: string
  readonly maxMemory: string
  /** Copy of the mirror's stdout and stderr, for diagnosis. */
  readonly mirrorLog: string | undefined
}

const USAGE = `usage: node dist/bench/soak.js [--seconds 60] [--clients 32] [--objects 200] [--seed 1]
                              [--max-disk 32MiB] [--max-memory 8MiB] [--mirror-log FILE]`

function readOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      seconds: { type: 'string', default: '60' },
      clients: { type: 'string', default: '32' },
      objects: { type: 'string', default: '200' },
      seed: { type: 'string', default: '1' },
      'max-disk': { type: 'string', default: '32MiB' },
      'max-memory': { type: 'string', default: '8MiB' },
      'mirror-log': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text)
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`)
    return n
  }
  const size = (name: string, text: string): string => {
    if (parseSize(text) === undefined) throw new Error(`--${name}: expected a size like "32MiB", got ${JSON.stringify(text)}`)
    return text
  }
  return {
    seconds: int('seconds', values.seconds, 1, 86_400),
    clients: int('clients', values.clients, 1, 512),
    // Every body lives in the bench process (about 0.4 MiB each on average).
    objects: int('objects', values.objects, 2, 1000),
    seed: int('seed', values.seed, 0, 2 ** 31 - 1),
    maxDisk: size('max-disk', values['max-disk']),
    maxMemory: size('max-memory', values['max-memory']),
    mirrorLog: values['mirror-log'],
  }
}

// ---------------------------------------------------------------------------------------------
// Objects: deterministic bodies, mixed sizes and caching headers

interface SoakObject {
  readonly id: number
  readonly body: Buffer
  readonly digest: string
  readonly headers: OutgoingHttpHeaders
  readonly validators: Validators
}

/** mulberry32: small, seedable, good enough to pick sizes and actions. */
function mulberry32(seed: number): Rand {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function pick<T>(rand: Rand, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T
}

/** Half under 16 KiB, 5 % from 2 to 8 MiB; log-uniform within each tier. */
function randomSize(rand: Rand): number {
  const r = rand()
  const [lo, hi] = r < 0.5 ? [KiB, 16 * KiB] : r < 0.8 ? [16 * KiB, 256 * KiB] : r < 0.95 ? [256 * KiB, 2 * MiB] : [2 * MiB, 8 * MiB]
  return Math.round(lo * (hi / lo) ** rand())
}

function makeObjects(count: number, seed: number): SoakObject[] {
  const rand = mulberry32(seed)
  const objects: SoakObject[] = []
  for (let id = 0; id < count; id++) {
    // Object 0 is the largest allowed size and object 1 the smallest, whatever the seed.
    const size = id === 0 ? 8 * MiB : id === 1 ? KiB : randomSize(rand)
    const body = makeBody(size, (seed * 7919 + id + 1) >>> 0)
    const digest = sha256(body)
    const r = rand()
    let cacheControl = r < 0.05 ? 'no-store' : r < 0.1 ? 'no-cache' : `max-age=${pick(rand, [0, 0, 1, 2, 5, 10, 30, 60, 120, 300, 600])}`
    if (r >= 0.1 && rand() < 0.25) cacheControl += ', stale-while-revalidate=30'
    if (r >= 0.1 && rand() < 0.3) cacheControl += ', stale-if-error=600'
    const validators: Validators = {}
    if (rand() < 0.55) validators.etag = `${rand() < 0.1 ? 'W/' : ''}"${digest.slice(0, 16)}"`
    if (rand() < 0.5) validators.lastModified = new Date(Date.UTC(2024, 0, 1) + id * 3_600_000).toUTCString()
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'cache-control': cacheControl }
    if (validators.etag !== undefined) headers['etag'] = validators.etag
    if (validators.lastModified !== undefined) headers['last-modified'] = validators.lastModified
    objects.push({ id, body, digest, headers, validators })
  }
  return objects
}

/** Origin and mirror paths are the same: `/m/o/ID` or `/d/o/ID`. */
function objectAt(objects: readonly SoakObject[], url: string | undefined): SoakObject | undefined {
  const m = /^\/[md]\/o\/(\d+)$/.exec(url ?? '')
  return m === null ? undefined : objects[Number(m[1])]
}

/** A 304 when the request's validators match (RFC 9110 §13.1), else the body with `send` options. */
async function serveObject(req: IncomingMessage, res: ServerResponse, obj: SoakObject, send: SendOptions): Promise<void> {
  if (isNotModified(req, obj.validators)) {
    res.writeHead(304, obj.headers)
    res.end()
    return
  }
  await sendBody(req, res, obj.body, { ...send, headers: obj.headers })
}

// ---------------------------------------------------------------------------------------------
// Incidents: what the flaky origin did, and when, to tell expected client errors from bugs

class Incidents {
  readonly #cuts = new Map<string, number[]>()
  readonly #statuses = new Map<string, number[]>()
  /** Connection-refused windows; `to` is Infinity while one is open. */
  readonly refusals: { from: number; to: number }[] = []
  cuts = 0
  statuses = 0

  /** The origin cut this path's body short (abort, stall, or listener closed) at `at`. */
  addCut(path: string, at: number): void {
    this.cuts++
    push(this.#cuts, path, at)
  }

  /** The origin answered this path with a 5xx at `at`. */
  addStatus(path: string, at: number): void {
    this.statuses++
    push(this.#statuses, path, at)
  }

  explainsCut(path: string, from: number, to: number): boolean {
    return within(this.#cuts.get(path), from - CUT_SLACK_BEFORE_MS, to + CUT_SLACK_AFTER_MS)
  }

  explainsStatus(path: string, from: number, to: number): boolean {
    return within(this.#statuses.get(path), from - CUT_SLACK_BEFORE_MS, to + CUT_SLACK_AFTER_MS)
  }

  /** Milliseconds from `t` to this path's nearest cut (negative: before), for diagnosis. */
  nearestCut(path: string, t: number): number | null {
    let best: number | null = null
    for (const at of this.#cuts.get(path) ?? []) if (best === null || Math.abs(at - t) < Math.abs(best)) best = at - t
    return best
  }

  explainsRefusal(from: number, to: number): boolean {
    return this.refusals.some((w) => w.from <= to + CUT_SLACK_AFTER_MS && w.to >= from - CUT_SLACK_BEFORE_MS)
  }
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}

function within(times: readonly number[] | undefined, from: number, to: number): boolean {
  return times?.some((t) => t >= from && t <= to) ?? false
}

// ---------------------------------------------------------------------------------------------
// Origins

interface Good {
  readonly url: string
  requests(): number
  /** GET responses the mirror closed before their end. */
  closedByMirror(): number
  close(): Promise<void>
}

/** The well-behaved origin (startOrigin); bodies of 1 MiB and more at 32 MiB/s so fills overlap. */
async function startGood(objects: readonly SoakObject[]): Promise<Good> {
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

interface Flaky {
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

const STALL_PROBE_PATH = '/d/_probe/stall'

/**
 * The misbehaving origin: same content as the good one, but 5xx, mid-body aborts, stalls, slow
 * first bytes, throttling, and connection-refused windows. Its own node:http server (not
 * startOrigin) because a refused window closes the listener and reopens it on the same port.
 */
async function startFlaky(objects: readonly SoakObject[], incidents: Incidents, rand: Rand, stalls: () => boolean): Promise<Flaky> {
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
      await sleep(ms, undefined, { signal }).catch(() => {})
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
      flaky.plans[plan.kind] = (flaky.plans[plan.kind] ?? 0) + 1
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

// ---------------------------------------------------------------------------------------------
// The mirror: the real CLI as a child process

interface MirrorLog {
  completed: number
  completedAborted: number
  readonly byCache: Counts
  readonly warn: Counts
  readonly error: Counts
}

interface MirrorProcess {
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  readonly log: MirrorLog
  /** Resolves with `code N` or `signal NAME` once the process has exited. */
  readonly exited: Promise<string>
  /** The last 8 KiB of stdout and stderr, for crash reports. */
  tail(): string
}

async function spawnMirror(args: string[], copyTo: string | undefined): Promise<MirrorProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const log: MirrorLog = { completed: 0, completedAborted: 0, byCache: {}, warn: {}, error: {} }
  let tail = ''
  let partial = ''
  let onPort: ((port: number) => void) | undefined
  const copy = copyTo === undefined ? undefined : createWriteStream(copyTo)
  const keep = (text: string): void => {
    tail = (tail + text).slice(-8 * KiB)
    copy?.write(text)
  }
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => {
      copy?.end()
      resolve(code !== null ? `code ${code}` : `signal ${signal ?? '?'}`)
    }),
  )
  child.stderr.on('data', (d: Buffer) => keep(d.toString()))
  child.stdout.on('data', (d: Buffer) => {
    const text = partial + d.toString()
    keep(d.toString())
    const lines = text.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) tallyLogLine(line, log, (port) => onPort?.(port))
  })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 15 s:\n${tail}`)), 15_000)
    onPort = (p) => {
      clearTimeout(timer)
      resolve(p)
    }
    void exited.then((how) => {
      clearTimeout(timer)
      reject(new Error(`cachemir exited (${how}) before listening:\n${tail}`))
    })
  })
  return { child, pid: child.pid ?? 0, port, log, exited, tail: () => tail }
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
    const word = typeof entry.cache === 'string' ? entry.cache : 'none'
    log.byCache[word] = (log.byCache[word] ?? 0) + 1
  }
  // 5xx request lines are logged at error by design; count them apart from real errors.
  const level = typeof entry.level === 'number' ? entry.level : 0
  const name = msg === 'request completed' ? 'request completed (5xx)' : msg
  if (level >= 50) log.error[name] = (log.error[name] ?? 0) + 1
  else if (level >= 40) log.warn[name] = (log.warn[name] ?? 0) + 1
}

/** VmRSS and VmHWM of a process in bytes, from /proc (Linux only). */
function readMemory(pid: number): { rssBytes: number; hwmBytes: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * KiB
    return { rssBytes: kib('VmRSS'), hwmBytes: kib('VmHWM') }
  } catch {
    return undefined
  }
}

function countFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return undefined
  }
}

/** Bytes of committed bodies and number of other files (temp, meta) under the cache dir. */
function diskUsage(dir: string): { bodyBytes: number; bodies: number; tempFiles: number } {
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

/** Whether the mirror CLI accepts `--idle-timeout` (a newer flag); the soak asks for a short one. */
function hasIdleTimeoutFlag(): boolean {
  const help = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8', timeout: 15_000 })
  return `${help.stdout}`.includes('--idle-timeout')
}

/**
 * Measures rather than trusts: requests a body that stalls after 1 KiB through the flaky-only
 * route and checks that the mirror cuts it within the idle timeout asked for (plus slack).
 */
async function calibrateStall(base: string, agent: Agent, flaky: Flaky): Promise<{ cutMs: number | undefined }> {
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

// ---------------------------------------------------------------------------------------------
// Clients

interface Slice {
  readonly start: number
  /** inclusive */
  readonly end: number
}

interface Probe {
  readonly route: 'm' | 'd'
  readonly obj: SoakObject
  readonly action: Action
  readonly method: 'GET' | 'HEAD'
  readonly headers: Record<string, string>
  readonly slice: Slice | undefined
  readonly expectNotModified: boolean
  readonly cancelAfterBytes: number | undefined
  readonly slow: boolean
}

interface ErrorCount {
  count: number
  /** Errors matched to something the flaky origin did at that time. */
  explained: number
}

interface ClientStats {
  requests: number
  readonly byStatus: Counts
  readonly byCache: Counts
  readonly byCacheDetail: Counts
  readonly byAction: Counts
  readonly errors: Record<string, ErrorCount>
  verifiedBytes: number
  verifiedResponses: number
  headChecked: number
  notModified: number
  clientCancels: number
  cancelledAtEnd: number
  lost: number
  readonly lostSamples: object[]
  /** The first few errors nothing the origin did explains, for diagnosis. */
  readonly unexplainedSamples: object[]
  readonly durationsMs: number[]
}

interface ClientContext {
  readonly base: string
  readonly agent: Agent
  readonly rand: Rand
  readonly objects: readonly SoakObject[]
  /** Object ids, shuffled: popularity is skewed towards the front. */
  readonly order: readonly number[]
  readonly deadline: number
  /** Aborted when the drain time is over or the mirror died. */
  readonly end: AbortSignal
  readonly incidents: Incidents
  readonly stats: ClientStats
  readonly startedAt: number
}

function newClientStats(): ClientStats {
  return {
    requests: 0,
    byStatus: {},
    byCache: {},
    byCacheDetail: {},
    byAction: {},
    errors: {},
    verifiedBytes: 0,
    verifiedResponses: 0,
    headChecked: 0,
    notModified: 0,
    clientCancels: 0,
    cancelledAtEnd: 0,
    lost: 0,
    lostSamples: [],
    unexplainedSamples: [],
    durationsMs: [],
  }
}

function inc(counts: Counts, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1
}

function addError(stats: ClientStats, kind: string, explained: boolean, sample: () => object): void {
  const e = (stats.errors[kind] ??= { count: 0, explained: 0 })
  e.count++
  if (explained) e.explained++
  else if (stats.unexplainedSamples.length < 20) stats.unexplainedSamples.push({ kind, ...sample() })
}

async function runClient(ctx: ClientContext): Promise<void> {
  while (Date.now() < ctx.deadline && !ctx.end.aborted) {
    const action = pickAction(ctx.rand)
    if (action === 'burst') {
      const obj = pickObject(ctx)
      const route = ctx.rand() < DIRECT_SHARE ? 'd' : 'm'
      const k = 2 + Math.floor(ctx.rand() * 5)
      const members = Array.from({ length: k }, () => makeProbe(ctx.rand, ctx.rand() < 0.7 ? 'get' : 'range', obj, route, 'burst'))
      await Promise.all(members.map((p) => runProbe(p, ctx)))
    } else {
      await runProbe(makeProbe(ctx.rand, action, pickObject(ctx), ctx.rand() < DIRECT_SHARE ? 'd' : 'm', action), ctx)
    }
  }
}

function pickAction(rand: Rand): Action {
  let r = rand()
  for (const [action, weight] of ACTIONS) {
    if (r < weight) return action
    r -= weight
  }
  return 'get'
}

function pickObject(ctx: ClientContext): SoakObject {
  const id = ctx.order[Math.floor(ctx.order.length * ctx.rand() ** 2)] ?? 0
  return ctx.objects[id] as SoakObject
}

function makeProbe(rand: Rand, kind: Exclude<Action, 'burst'>, obj: SoakObject, route: 'm' | 'd', action: Action): Probe {
  const size = obj.body.length
  const probe: { -readonly [K in keyof Probe]: Probe[K] } = {
    route,
    obj,
    action,
    method: 'GET',
    headers: {},
    slice: undefined,
    expectNotModified: false,
    cancelAfterBytes: undefined,
    slow: rand() < SLOW_READER_SHARE,
  }
  switch (kind) {
    case 'head':
      probe.method = 'HEAD'
      break
    case 'range': {
      // bytes=a-b (up to 2 MiB), bytes=a- or bytes=-n.
      const r = rand()
      const start = Math.floor(rand() * size)
      if (r < 0.2) {
        const n = 1 + Math.floor(rand() * Math.min(size, 2 * MiB))
        probe.headers['range'] = `bytes=-${n}`
        probe.slice = { start: size - n, end: size - 1 }
      } else if (r < 0.3) {
        probe.headers['range'] = `bytes=${start}-`
        probe.slice = { start, end: size - 1 }
      } else {
        const end = Math.min(size - 1, start + Math.floor(rand() * 2 * MiB))
        probe.headers['range'] = `bytes=${start}-${end}`
        probe.slice = { start, end }
      }
      break
    }
    case 'conditional':
      if (obj.validators.etag !== undefined) {
        probe.headers['if-none-match'] = obj.validators.etag
        probe.expectNotModified = true
      } else if (obj.validators.lastModified !== undefined) {
        probe.headers['if-modified-since'] = obj.validators.lastModified
        probe.expectNotModified = true
      } else {
        probe.headers['if-none-match'] = '"soak-no-such-tag"'
      }
      break
    case 'cancel':
      probe.cancelAfterBytes = Math.floor(size * rand() * 0.5)
      break
    case 'get':
      break
  }
  return probe
}

/** One request: send, read every byte, verify, and count the outcome. */
async function runProbe(p: Probe, ctx: ClientContext): Promise<void> {
  const { stats, incidents } = ctx
  const path = `/${p.route}/o/${p.obj.id}`
  stats.requests++
  inc(stats.byAction, p.action)
  const t0 = Date.now()
  const sample =
    (extra: object = {}) =>
    (): object => ({
      path,
      action: p.action,
      method: p.method,
      headers: p.headers,
      atMs: t0 - ctx.startedAt,
      tookMs: Date.now() - t0,
      nearestCutMs: incidents.nearestCut(path, t0),
      ...extra,
    })
  let res: Awaited<ReturnType<typeof request>>
  try {
    res = await request(`${ctx.base}${path}`, {
      method: p.method,
      headers: p.headers,
      dispatcher: ctx.agent,
      signal: ctx.end,
      headersTimeout: CLIENT_TIMEOUT_MS,
      bodyTimeout: CLIENT_TIMEOUT_MS,
    })
  } catch (err) {
    if (ctx.end.aborted) stats.cancelledAtEnd++
    else {
      const code = errorCode(err)
      // A fill that fails before its first byte reaches this client closes the connection before
      // any header (Node sends headers with the first body chunk): a cut like any other.
      const kind = code === 'ECONNREFUSED' ? 'connect-refused' : isTimeout(code) ? 'timeout' : 'aborted (no headers)'
      const explained = kind === 'aborted (no headers)' && incidents.explainsCut(path, t0, Date.now())
      addError(stats, kind, explained, sample({ error: String(err) }))
      // The mirror may be gone: do not spin.
      await sleep(50)
    }
    return
  }
  const status = res.statusCode
  const cacheStatus = headerText(res.headers['cache-status'])
  inc(stats.byStatus, String(status))
  inc(stats.byCache, cacheKind(cacheStatus))
  inc(stats.byCacheDetail, cacheStatus === undefined ? '(none)' : cacheStatus.replace(/^cachemir;\s*/, '').replace(/;\s*ttl=-?\d+/, ''))

  const hash = createHash('sha256')
  let received = 0
  let cancelled = false
  let bodyError: unknown
  try {
    for await (const chunk of res.body) {
      const buf = chunk as Buffer
      hash.update(buf)
      received += buf.length
      if (p.cancelAfterBytes !== undefined && received >= p.cancelAfterBytes) {
        cancelled = true
        break
      }
      if (p.slow) await sleep(SLOW_READ_PAUSE_MS)
    }
  } catch (err) {
    bodyError = err
  }
  const t1 = Date.now()

  if (bodyError !== undefined) {
    if (ctx.end.aborted) stats.cancelledAtEnd++
    else if (isTimeout(errorCode(bodyError))) addError(stats, 'timeout', false, sample({ status, received, cacheStatus }))
    // A body cut short: acceptable only if the origin cut this object's body meanwhile.
    else
      addError(stats, 'aborted', incidents.explainsCut(path, t0, t1), sample({ status, received, cacheStatus, error: String(bodyError) }))
    return
  }
  if (cancelled) {
    stats.clientCancels++
    return
  }
  const size = p.obj.body.length
  const lose = (why: string, extra: object = {}): void => {
    stats.lost++
    if (stats.lostSamples.length < 20) {
      stats.lostSamples.push({
        why,
        path,
        status,
        action: p.action,
        headers: p.headers,
        received,
        size,
        cacheStatus,
        atMs: t1 - ctx.startedAt,
        ...extra,
      })
    }
  }
  if (status === 200 && p.method === 'HEAD') {
    if (headerText(res.headers['content-length']) === String(size)) stats.headChecked++
    else addError(stats, 'bad-head-length', false, sample({ contentLength: headerText(res.headers['content-length']), cacheStatus }))
  } else if (status === 200) {
    const digest = hash.digest('hex')
    if (received === size && digest === p.obj.digest) verified(stats, received, t1 - t0)
    else lose('200 body differs from the origin', { digest })
  } else if (status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headerText(res.headers['content-range']) ?? '')
    if (p.slice === undefined || range === null) return addError(stats, 'unexpected-206', false, sample({ cacheStatus }))
    const [start, end, total] = [Number(range[1]), Number(range[2]), Number(range[3])]
    const digest = hash.digest('hex')
    const want = sha256(p.obj.body.subarray(p.slice.start, p.slice.end + 1))
    if (start === p.slice.start && end === p.slice.end && total === size && received === end - start + 1 && digest === want)
      verified(stats, received, t1 - t0)
    else lose('206 slice differs from the origin', { contentRange: range[0], want: p.slice })
  } else if (status === 304) {
    const etag = headerText(res.headers['etag'])
    const strip = (tag: string): string => tag.replace(/^W\//, '')
    const sameTag = etag === undefined || p.obj.validators.etag === undefined || strip(etag) === strip(p.obj.validators.etag)
    if (p.expectNotModified && sameTag) stats.notModified++
    else addError(stats, 'unexpected-304', false, sample({ etag, cacheStatus }))
  } else if (status >= 500) {
    // Only the flaky-only route may fail: on /m/ the good upstream is always there.
    const explained =
      p.route === 'd' &&
      (status === 502 || status === 504
        ? incidents.explainsRefusal(t0, t1) || incidents.explainsCut(path, t0, t1)
        : incidents.explainsStatus(path, t0, t1))
    addError(stats, `http-${status}`, explained, sample({ cacheStatus }))
  } else {
    addError(stats, `http-${status}`, false, sample({ cacheStatus }))
  }
}

function verified(stats: ClientStats, bytes: number, durationMs: number): void {
  stats.verifiedResponses++
  stats.verifiedBytes += bytes
  if (stats.durationsMs.length < 500_000) stats.durationsMs.push(durationMs)
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

function errorCode(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown } }
  return String(e.code ?? e.cause?.code ?? e.name ?? 'unknown')
}

function isTimeout(code: string): boolean {
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT'
}

/** The Cache-Status outcome word, as in the mirror's log line: hit, miss, stale, bypass, … */
function cacheKind(value: string | undefined): string {
  if (value === undefined) return 'none'
  const params = value.split(';').map((s) => s.trim())
  const detail = params.find((s) => s.startsWith('detail='))?.slice(7)
  if (params.includes('hit')) return detail === undefined ? 'hit' : `hit-${detail}`
  const fwd = params.find((s) => s.startsWith('fwd='))?.slice(4) ?? 'none'
  return detail === 'stale-if-error' ? 'stale-if-error' : fwd
}

// ---------------------------------------------------------------------------------------------
// Run: set up, load, tear down, summarize

const say = (line: string): void => void process.stderr.write(`soak: ${line}\n`)

interface Setup {
  readonly objects: readonly SoakObject[]
  readonly order: readonly number[]
  readonly rand: Rand
  readonly incidents: Incidents
  readonly good: Good
  readonly flaky: Flaky
  readonly mirror: MirrorProcess
  readonly mirrorArgs: readonly string[]
  readonly base: string
  readonly agent: Agent
  /** Temp dir holding the config file and the cache dir. */
  readonly dir: string
  readonly cacheDir: string
  readonly stallNote: string
  /** Read by the flaky origin on every request; set once calibration has shown stalls are cut. */
  readonly stalls: { enabled: boolean }
}

async function setUp(opts: Options): Promise<Setup> {
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run \`npx tsc -p tsconfig.json\` first`)
  const objects = makeObjects(opts.objects, opts.seed)
  const rand = mulberry32(opts.seed ^ 0x5eed)
  const order = objects.map((o) => o.id)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[order[i], order[j]] = [order[j] as number, order[i] as number]
  }
  const incidents = new Incidents()
  const stalls = { enabled: false }
  const good = await startGood(objects)
  const flaky = await startFlaky(objects, incidents, rand, () => stalls.enabled)
  const dir = await mkdtemp(join(tmpdir(), 'cachemir-soak-'))
  const cacheDir = join(dir, 'cache')
  const configFile = join(dir, 'soak.json')
  const routes = [
    { prefix: '/m/', upstreams: [`${flaky.url}/m/`, `${good.url}/m/`] },
    { prefix: '/d/', upstreams: [`${flaky.url}/d/`] },
  ]
  await writeFile(configFile, JSON.stringify({ routes }))
  const idleFlag = hasIdleTimeoutFlag()
  const mirrorArgs = [
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
  if (idleFlag) mirrorArgs.push('--idle-timeout', `${STALL_IDLE_MS}ms`)
  const mirror = await spawnMirror(mirrorArgs, opts.mirrorLog)
  const base = `http://127.0.0.1:${mirror.port}`
  const agent = new Agent({ keepAliveTimeout: 2000, headersTimeout: CLIENT_TIMEOUT_MS, bodyTimeout: CLIENT_TIMEOUT_MS })
  say(`mirror pid ${mirror.pid} on ${base}; origins good ${good.url}, flaky ${flaky.url}`)

  // Stalls only when the mirror really cuts a silent upstream body quickly.
  let stallNote: string
  if (!idleFlag) {
    stallNote =
      'skipped: the mirror has no --idle-timeout flag, so its upstream body idle timeout is the built-in 60 s; a stalled fill would hold its clients longer than the run can wait'
  } else if (opts.seconds * 1000 < STALL_IDLE_MS * 5) {
    stallNote = `skipped: --seconds ${opts.seconds} is too short for ${STALL_IDLE_MS} ms idle cuts`
  } else {
    const { cutMs } = await calibrateStall(base, agent, flaky)
    stalls.enabled = cutMs !== undefined
    stallNote = stalls.enabled
      ? `on: --idle-timeout ${STALL_IDLE_MS}ms; a stalled upstream body was cut after ${cutMs} ms in calibration`
      : `skipped: the mirror was started with --idle-timeout ${STALL_IDLE_MS}ms but did not cut a stalled upstream body within ${STALL_IDLE_MS + 2000} ms (its built-in 60 s seems still in force)`
  }
  say(`stalls ${stallNote}`)
  return {
    objects,
    order,
    rand,
    incidents,
    good,
    flaky,
    mirror,
    mirrorArgs: mirrorArgs.map((a) => a.replace(dir, '$TMP')),
    base,
    agent,
    dir,
    cacheDir,
    stallNote,
    stalls,
  }
}

interface Memory {
  start: number
  end: number
  peakSampled: number
  /** VmHWM: the kernel's own record of the peak. */
  peakVmHWM: number
}

interface Load {
  readonly stats: ClientStats
  readonly soakMs: number
  /** Set when the mirror exited before it was told to stop. */
  readonly crashed: string | undefined
  readonly memory: Memory
  readonly fdsStart: number | undefined
}

/** Clients run until --seconds, then may drain for DRAIN_MS; a mirror crash stops them at once. */
async function runLoad(opts: Options, setup: Setup): Promise<Load> {
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
  const sampler = setInterval(sampleMemory, 250)

  // Connection-refused windows on the flaky origin: every 3–8 s, for 0.5–2.5 s.
  const stopFaults = new AbortController()
  const refusals = (async () => {
    while (!stopFaults.signal.aborted) {
      await sleep(3000 + rand() * 5000, undefined, { signal: stopFaults.signal }).catch(() => {})
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
  }, 10_000)
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

interface Teardown {
  readonly fdsEnd: number | undefined
  readonly disk: ReturnType<typeof diskUsage>
  readonly health: unknown
  readonly shutdown: string
}

/** With the mirror quiet: descriptors, disk, health; then SIGTERM, and everything closed. */
async function tearDown(setup: Setup, load: Load): Promise<Teardown> {
  const { mirror, agent } = setup
  let health: unknown
  if (load.crashed === undefined) {
    try {
      const res = await request(`${setup.base}/_cachemir/health`, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 })
      health = await res.body.json()
    } catch (err) {
      health = { error: errorCode(err) }
    }
  }
  // Count descriptors once the clients' keep-alive connections are gone (upstream ones may stay).
  await agent.close()
  await sleep(300)
  const fdsEnd = countFds(mirror.pid)
  const disk = diskUsage(setup.cacheDir)
  let shutdown: string
  if (load.crashed !== undefined) shutdown = `crashed (${load.crashed})`
  else {
    mirror.child.kill('SIGTERM')
    const how = await Promise.race([mirror.exited, sleep(SHUTDOWN_WAIT_MS).then(() => undefined)])
    if (how === undefined) {
      mirror.child.kill('SIGKILL')
      await mirror.exited
      shutdown = `hung: no exit ${SHUTDOWN_WAIT_MS / 1000} s after SIGTERM (killed)`
    } else shutdown = how
  }
  await setup.flaky.close()
  await setup.good.close()
  await rm(setup.dir, { recursive: true, force: true, maxRetries: 5 })
  return { fdsEnd, disk, health, shutdown }
}

function summarize(opts: Options, setup: Setup, load: Load, down: Teardown, startedAt: number) {
  const { objects, incidents, good, flaky, mirror } = setup
  const { stats, crashed } = load
  const failures: string[] = []
  const warnings: string[] = []
  if (stats.lost > 0) failures.push(`${stats.lost} object(s) lost: complete responses whose bytes differ from the origin's`)
  if (crashed !== undefined) failures.push(`mirror crashed during the run (${crashed})`)
  else if (down.shutdown !== 'code 0') failures.push(`mirror did not stop cleanly on SIGTERM (${down.shutdown})`)
  for (const [kind, e] of Object.entries(stats.errors)) {
    if (e.count > e.explained) warnings.push(`${e.count - e.explained} ${kind} error(s) not explained by anything the origin did`)
  }
  const maxDiskBytes = parseSize(opts.maxDisk) ?? Infinity
  if (down.disk.bodyBytes > maxDiskBytes)
    warnings.push(`cache bodies on disk (${formatBytes(down.disk.bodyBytes)}) exceed --max-disk ${opts.maxDisk}`)
  if (stats.verifiedResponses === 0) warnings.push('no response was verified')
  const exitCode = failures.length > 0 ? 1 : 0
  const sizes = objects.map((o) => o.body.length)
  const originRequests = good.requests() + flaky.requests
  return {
    version: 1,
    startedAt: new Date(startedAt).toISOString(),
    node: process.version,
    options: opts,
    durationMs: { soak: load.soakMs, total: Date.now() - startedAt },
    objects: {
      count: objects.length,
      totalBytes: sizes.reduce((a, b) => a + b, 0),
      minBytes: Math.min(...sizes),
      maxBytes: Math.max(...sizes),
      noStore: objects.filter((o) => o.headers['cache-control'] === 'no-store').length,
      withEtag: objects.filter((o) => o.validators.etag !== undefined).length,
      withLastModified: objects.filter((o) => o.validators.lastModified !== undefined).length,
    },
    faults: {
      stalls: { enabled: setup.stalls.enabled, note: setup.stallNote },
      flakyPlans: flaky.plans,
      cutsByOrigin: incidents.cuts,
      statusesByOrigin: incidents.statuses,
      refusedWindows: {
        count: incidents.refusals.length,
        totalMs: incidents.refusals.reduce((n, w) => n + (Number.isFinite(w.to) ? w.to - w.from : 0), 0),
      },
    },
    clients: {
      requests: stats.requests,
      byStatus: stats.byStatus,
      byCache: stats.byCache,
      byCacheDetail: stats.byCacheDetail,
      byAction: stats.byAction,
      errors: stats.errors,
      verifiedBytes: stats.verifiedBytes,
      verifiedResponses: stats.verifiedResponses,
      headChecked: stats.headChecked,
      notModified: stats.notModified,
      clientCancels: stats.clientCancels,
      cancelledAtEnd: stats.cancelledAtEnd,
      latencyMs: percentiles(stats.durationsMs),
    },
    lost: { count: stats.lost, samples: stats.lostSamples },
    unexplainedSamples: stats.unexplainedSamples,
    mirror: {
      pid: mirror.pid,
      args: setup.mirrorArgs,
      rssBytes: load.memory,
      fds: { start: load.fdsStart ?? null, end: down.fdsEnd ?? null },
      disk: { ...down.disk, maxDiskBytes },
      health: down.health,
      log: mirror.log,
      shutdown: down.shutdown,
      crashed: crashed !== undefined,
      outputTail: exitCode === 0 ? undefined : mirror.tail(),
    },
    origin: {
      urls: { good: good.url, flaky: flaky.url },
      good: { requests: good.requests(), closedByMirror: good.closedByMirror() },
      flaky: { requests: flaky.requests, closedByMirror: flaky.closedByMirror },
      total: originRequests,
      clientRequests: stats.requests,
      ratio: stats.requests === 0 ? null : originRequests / stats.requests,
    },
    result: { exitCode, failures, warnings },
  }
}

type Summary = ReturnType<typeof summarize>

/** One line per route from the health endpoint's passive upstream health, when it reports one. */
function upstreamHealth(routes: unknown, urls: { good: string; flaky: string }): string[] {
  if (!Array.isArray(routes)) return []
  return routes.map((route: { prefix?: unknown; upstreams?: unknown }) => {
    const upstreams = Array.isArray(route.upstreams) ? (route.upstreams as Record<string, unknown>[]) : []
    const text = upstreams.map((u) => {
      const url = String(u['url'])
      const name = url.startsWith(urls.good) ? 'good' : url.startsWith(urls.flaky) ? 'flaky' : url
      return `${name} ${String(u['state'])}, ${String(u['requests'])} requests, ${String(u['failures'])} failed`
    })
    return `  route ${String(route.prefix)}        ${text.join('; ')}`
  })
}

function percentiles(values: number[]): { p50: number; p95: number; p99: number; max: number } | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN }
}

function counts(c: Counts, limit = 12): string {
  const entries = Object.entries(c).sort((a, b) => b[1] - a[1])
  const shown = entries.slice(0, limit).map(([k, v]) => `${k} ${v}`)
  if (entries.length > limit) shown.push(`… ${entries.length - limit} more`)
  return shown.length === 0 ? '-' : shown.join(', ')
}

function formatSummary(s: Summary): string {
  const c = s.clients
  const errors = Object.entries(c.errors).sort((a, b) => b[1].count - a[1].count)
  const errorText = errors.length === 0 ? 'none' : errors.map(([k, e]) => `${k} ${e.count} (${e.explained} explained)`).join(', ')
  const h = (s.mirror.health ?? {}) as { store?: unknown; fills?: unknown; upstream?: unknown; routes?: unknown }
  const lat = c.latencyMs
  const size = (n: number): string => (Number.isFinite(n) ? formatBytes(n) : '?')
  const refused = s.faults.refusedWindows
  return [
    '',
    `cachemir soak: ${(s.durationMs.soak / 1000).toFixed(1)} s of load (${(s.durationMs.total / 1000).toFixed(1)} s in all), ${s.options.clients} clients, seed ${s.options.seed}`,
    `objects            ${s.objects.count}, ${formatBytes(s.objects.totalBytes)} (${formatBytes(s.objects.minBytes)} … ${formatBytes(s.objects.maxBytes)}); ${s.objects.withEtag} with ETag, ${s.objects.withLastModified} with Last-Modified, ${s.objects.noStore} no-store`,
    `mirror             ${s.mirror.args.join(' ')}; routes /m/ = [flaky, good], /d/ = [flaky]`,
    `flaky origin       ${counts(s.faults.flakyPlans)}; ${refused.count} refused windows (${(refused.totalMs / 1000).toFixed(1)} s)`,
    `stalls             ${s.faults.stalls.note}`,
    '',
    `requests (clients) ${c.requests}: ${c.verifiedResponses} bodies verified, ${c.notModified} 304s, ${c.headChecked} HEADs checked, ${c.clientCancels} cancelled by the client on purpose, ${c.cancelledAtEnd} cancelled at the end (drain over or mirror gone)`,
    `  by status        ${counts(c.byStatus)}`,
    `  by cache-status  ${counts(c.byCache)}`,
    `  in detail        ${counts(c.byCacheDetail, 10)}`,
    `  by action        ${counts(c.byAction)}`,
    `  latency 200/206  ${lat === null ? '-' : `p50 ${lat.p50} ms, p95 ${lat.p95} ms, p99 ${lat.p99} ms, max ${lat.max} ms`}`,
    `errors by kind     ${errorText}`,
    `bytes verified     ${formatBytes(c.verifiedBytes)} (${c.verifiedBytes} bytes, sha256 against the origin's)`,
    `objects lost       ${s.lost.count}`,
    `mirror RSS         peak ${size(s.mirror.rssBytes.peakVmHWM)} (VmHWM); ${size(s.mirror.rssBytes.start)} at start, ${size(s.mirror.rssBytes.end)} at end; fds ${s.mirror.fds.start ?? '?'} -> ${s.mirror.fds.end ?? '?'}`,
    `mirror disk        ${formatBytes(s.mirror.disk.bodyBytes)} in ${s.mirror.disk.bodies} bodies (budget ${formatBytes(s.mirror.disk.maxDiskBytes)}), ${s.mirror.disk.tempFiles} temp files`,
    `mirror health      store ${JSON.stringify(h.store ?? null)}`,
    `                   fills ${JSON.stringify(h.fills ?? null)}, upstream ${JSON.stringify(h.upstream ?? null)}`,
    ...upstreamHealth(h.routes, s.origin.urls),
    `mirror log         ${s.mirror.log.completed} request lines (${s.mirror.log.completedAborted} aborted); warn: ${counts(s.mirror.log.warn, 6)}; error: ${counts(s.mirror.log.error, 6)}`,
    `mirror exit        ${s.mirror.shutdown}`,
    `origin requests    ${s.origin.total} (good ${s.origin.good.requests}, flaky ${s.origin.flaky.requests}) for ${s.origin.clientRequests} client requests${s.origin.ratio === null ? '' : ` (${(s.origin.ratio * 100).toFixed(1)} %)`}`,
    `                   responses the mirror closed early: good ${s.origin.good.closedByMirror}, flaky ${s.origin.flaky.closedByMirror}`,
    '',
    ...s.result.failures.map((f) => `FAIL  ${f}`),
    ...s.result.warnings.map((w) => `WARN  ${w}`),
    `result             ${s.result.exitCode === 0 ? 'PASS' : 'FAIL'} (exit ${s.result.exitCode})`,
    '',
  ].join('\n')
}

async function main(opts: Options): Promise<number> {
  const startedAt = Date.now()
  const setup = await setUp(opts)
  say(
    `${setup.objects.length} objects, ${formatBytes(setup.objects.reduce((n, o) => n + o.body.length, 0))}; load for ${opts.seconds} s with ${opts.clients} clients`,
  )
  // A hard bound on the whole run, whatever hangs.
  const watchdogMs = (opts.seconds + 90) * 1000 + DRAIN_MS
  const watchdog = setTimeout(() => {
    say(`watchdog: still running after ${watchdogMs / 1000} s; killing the mirror`)
    setup.mirror.child.kill('SIGKILL')
    process.exit(1)
  }, watchdogMs)
  watchdog.unref()

  const load = await runLoad(opts, setup)
  const down = await tearDown(setup, load)
  const summary = summarize(opts, setup, load, down, startedAt)
  process.stdout.write(formatSummary(summary))
  mkdirSync(dirname(RESULTS), { recursive: true })
  writeFileSync(`${RESULTS}.tmp`, `${JSON.stringify(summary, null, 2)}\n`)
  renameSync(`${RESULTS}.tmp`, RESULTS)
  process.stdout.write(`written to ${RESULTS}\n`)
  return summary.result.exitCode
}

let options: Options
try {
  options = readOptions(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`)
  process.exit(2)
}
main(options).then(
  (code) => {
    process.exitCode = code
    // Everything is closed; this only guards against a stray handle keeping the process alive.
    setTimeout(() => process.exit(code), 5000).unref()
  },
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  },
)
