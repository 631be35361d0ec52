// Chooses and runs the load generator: wrk when on PATH, else the built-in undici generator in a
// separate child process (load-child.js). Either way the generator is never in a contestant's process.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LOAD_CHILD } from './util.js'

export interface RpsResult {
  rps: number
  p50Ms: number
  p99Ms: number
  requests: number
  errors: number
  non2xx: number
}
export interface BulkResult {
  bytes: number
  seconds: number
  mbps: number
  errors: number
  finishesMs: number[]
  digests: string[]
}
export interface MixedResult {
  fastFinishesMs: number[]
  fastDigests: string[]
  fastErrors: number
  fastDoneMs: number
  slowBytes: number[]
  slowCompleted: number
  seconds: number
}

let chosen: 'wrk' | 'builtin' | undefined
let note = ''

function hasWrk(): boolean {
  return spawnSync('wrk', ['--version'], { encoding: 'utf8' }).error === undefined
}

/** Decide once. Installs wrk with apt-get only as root and with CACHEMIR_BENCH_INSTALL=1. */
export function loadGenerator(): { name: 'wrk' | 'builtin'; note: string } {
  if (chosen === undefined) {
    if (!hasWrk() && process.getuid?.() === 0 && process.env['CACHEMIR_BENCH_INSTALL'] === '1') {
      const r = spawnSync('apt-get', ['install', '-y', 'wrk'], { stdio: 'ignore', timeout: 120_000 })
      note = r.status === 0 ? 'wrk installed by apt-get' : 'apt-get install wrk failed'
    }
    chosen = hasWrk() ? 'wrk' : 'builtin'
    if (chosen === 'builtin') note ||= 'wrk not on PATH'
  }
  return { name: chosen, note }
}

function runChild(cmd: string, argv: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000)
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new Error(`${cmd} exited ${String(code)}: ${err}`))
    })
  })
}

function wrkMs(v: string, unit: string): number {
  const n = Number(v)
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n
}

/** wrk script: each request asks for `template` with `{n}` replaced by a random integer in [0, count). */
function randomPathLua(template: string, count: number): string {
  const parts = template.split('{n}').map((p) => JSON.stringify(p))
  return [
    '-- Written by bench/lib/loadgen.ts: a random object per request.',
    'local n = 0',
    'function setup(thread) thread:set("seed", n); n = n + 1 end',
    'function init(args) math.randomseed(os.time() + 7919 * seed) end',
    `function request() local i = math.random(0, ${count - 1}); return wrk.format(nil, ${parts.join(' .. i .. ')}) end`,
    '',
  ].join('\n')
}

/**
 * Closed-loop load for `seconds`. With `count`, every `{n}` in the URL is replaced per request by a
 * random integer in [0, count) (wrk gets a Lua script, written to a temp dir removed afterwards).
 */
export async function runRps(url: string, connections: number, seconds: number, count = 0): Promise<RpsResult> {
  if (loadGenerator().name === 'wrk') {
    let scriptDir: string | undefined
    const argv = ['-t2', `-c${connections}`, `-d${seconds}s`, '--latency']
    let target = url
    if (count > 0) {
      const origin = new URL(url).origin
      scriptDir = await mkdtemp(join(tmpdir(), 'cachemir-bench-wrk-'))
      const script = join(scriptDir, 'random.lua')
      await writeFile(script, randomPathLua(url.slice(origin.length) || '/', count))
      argv.push('-s', script)
      target = `${origin}/`
    }
    let out: string
    try {
      out = await runChild('wrk', [...argv, target], (seconds + 30) * 1000)
    } finally {
      if (scriptDir !== undefined) await rm(scriptDir, { recursive: true, force: true })
    }
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN)
    const p = (q: string): number => {
      const m = new RegExp(`^\\s+${q}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out)
      return m?.[1] !== undefined && m[2] !== undefined ? wrkMs(m[1], m[2]) : NaN
    }
    const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN)
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
    const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
    const errs = errors === null ? 0 : errors.slice(1).reduce((a, b) => a + Number(b), 0)
    return { rps, p50Ms: p('50'), p99Ms: p('99'), requests, errors: errs, non2xx }
  }
  const out = await runChild(
    process.execPath,
    [LOAD_CHILD, 'rps', JSON.stringify({ url, connections, seconds, count })],
    (seconds + 30) * 1000,
  )
  return JSON.parse(out) as RpsResult
}

/** Bulk downloads always use the built-in generator (it reads bodies fully and can hash them). */
export async function runBulk(url: string, connections: number, repeat: number, hash: boolean, timeoutMs = 240_000): Promise<BulkResult> {
  const out = await runChild(process.execPath, [LOAD_CHILD, 'bulk', JSON.stringify({ url, connections, repeat, hash })], timeoutMs)
  return JSON.parse(out) as BulkResult
}

/** Slow and fast clients on one URL (load-child.js mode `mixed`); the slow ones are cut after `windowMs`. */
export async function runMixed(
  url: string,
  o: { fast: number; slow: number; slowBytesPerSec: number; windowMs: number },
): Promise<MixedResult> {
  const out = await runChild(
    process.execPath,
    [LOAD_CHILD, 'mixed', JSON.stringify({ url, connections: o.fast + o.slow, ...o })],
    o.windowMs + 90_000,
  )
  return JSON.parse(out) as MixedResult
}
