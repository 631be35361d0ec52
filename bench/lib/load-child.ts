// The built-in load generator, always run as its own child process so it never shares a process
// with a contestant:  node dist/bench/lib/load-child.js MODE JSON-ARGS  -> one JSON line on stdout.
// Modes:
//   rps   closed loop: --connections keep-alive connections, each sends its next GET as soon as
//         the previous body ended, for --seconds; reports requests/s and latency percentiles.
//   bulk  --connections concurrent clients each GET the URL --repeat times and read every body to
//         the end; reports bytes, wall time, per-request finish times, and (with hash) sha256s.
import { createHash } from 'node:crypto'
import { Agent, Pool, request } from 'undici'
import { percentile } from './util.js'

interface Args { url: string; connections: number; seconds?: number; repeat?: number; hash?: boolean }
const mode = process.argv[2]
const args = JSON.parse(process.argv[3] ?? '{}') as Args

async function rps(): Promise<unknown> {
  const u = new URL(args.url)
  const pool = new Pool(u.origin, { connections: args.connections, pipelining: 1, keepAliveTimeout: 60_000 })
  const path = u.pathname + u.search
  let lat = new Float64Array(1 << 16)
  let n = 0
  let errors = 0
  let non2xx = 0
  const end = performance.now() + (args.seconds ?? 5) * 1000
  const start = performance.now()
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now()
      try {
        const res = await pool.request({ path, method: 'GET' })
        await res.body.dump({ limit: Infinity })
        if (res.statusCode >= 300) non2xx++
        if (n === lat.length) { const bigger = new Float64Array(lat.length * 2); bigger.set(lat); lat = bigger }
        lat[n++] = performance.now() - t0
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: args.connections }, loop))
  const seconds = (performance.now() - start) / 1000
  await pool.close()
  const sorted = lat.subarray(0, n).sort()
  return { requests: n, errors, non2xx, seconds, rps: n / seconds, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: percentile(sorted, 100) }
}

async function bulk(): Promise<unknown> {
  const dispatcher = new Agent({ connections: args.connections, keepAliveTimeout: 60_000 })
  const start = performance.now()
  let bytes = 0
  let errors = 0
  const finishes: number[] = []
  const digests: string[] = []
  const client = async (): Promise<void> => {
    for (let i = 0; i < (args.repeat ?? 1); i++) {
      try {
        const res = await request(args.url, { dispatcher })
        const h = args.hash === true ? createHash('sha256') : undefined
        for await (const chunk of res.body) {
          bytes += (chunk as Buffer).length
          h?.update(chunk as Buffer)
        }
        if (res.statusCode !== 200) errors++
        finishes.push(performance.now() - start)
        if (h !== undefined) digests.push(h.digest('hex'))
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: args.connections }, client))
  const seconds = (performance.now() - start) / 1000
  await dispatcher.close()
  return { bytes, seconds, mbps: bytes / 1e6 / seconds, errors, finishesMs: finishes, digests }
}

const out = mode === 'rps' ? await rps() : await bulk()
process.stdout.write(`${JSON.stringify(out)}\n`)
