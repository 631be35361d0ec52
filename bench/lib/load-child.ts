// The built-in load generator, always run as its own child process so it never shares a process
// with a contestant:  node dist/bench/lib/load-child.js MODE JSON-ARGS  -> one JSON line on stdout.
// Modes:
//   rps   closed loop: --connections keep-alive connections, each sends its next GET as soon as
//         the previous body ended, for --seconds; reports requests/s and latency percentiles.
//         With --count N, every `{n}` in the URL is replaced per request by a random integer in
//         [0, N): random access over N objects.
//   bulk  --connections concurrent clients each GET the URL --repeat times and read every body to
//         the end; reports bytes, wall time, per-request finish times, and (with hash) sha256s.
//   mixed --slow clients that read at --slowBytesPerSec (pausing the socket between chunks) and
//         --fast clients that read at full speed start together on one URL, slow ones first. Fast
//         bodies are kept and hashed after the last one ends (--fast × body size of memory here);
//         once --windowMs has passed since the start, the slow clients are cut. Reports fast finish
//         times and digests, and the bytes each slow one read.
import { createHash } from 'node:crypto'
import { Agent as HttpAgent, get } from 'node:http'
import { Agent, Pool, request } from 'undici'
import { percentile, sleep } from './util.js'

interface Args {
  url: string
  connections: number
  seconds?: number
  repeat?: number
  hash?: boolean
  count?: number
  fast?: number
  slow?: number
  slowBytesPerSec?: number
  windowMs?: number
}
const mode = process.argv[2]
const args = JSON.parse(process.argv[3] ?? '{}') as Args

async function rps(): Promise<unknown> {
  const u = new URL(args.url)
  const pool = new Pool(u.origin, { connections: args.connections, pipelining: 1, keepAliveTimeout: 60_000 })
  // Taken from the raw URL: URL would percent-encode the braces of `{n}`.
  const template = args.url.slice(u.origin.length) || '/'
  const count = args.count ?? 0
  const nextPath = (): string => (count > 0 ? template.replaceAll('{n}', String(Math.floor(Math.random() * count))) : template)
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
        const res = await pool.request({ path: nextPath(), method: 'GET' })
        await res.body.dump({ limit: Infinity })
        if (res.statusCode >= 300) non2xx++
        if (n === lat.length) {
          const bigger = new Float64Array(lat.length * 2)
          bigger.set(lat)
          lat = bigger
        }
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
  return {
    requests: n,
    errors,
    non2xx,
    seconds,
    rps: n / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: percentile(sorted, 100),
  }
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

/** One client reading at `bytesPerSec`: after each chunk it pauses until it is back on schedule. */
function slowClient(
  url: string,
  agent: HttpAgent,
  bytesPerSec: number,
): { done: Promise<void>; bytes(): number; cut(): void; ended(): boolean } {
  let got = 0
  let ended = false
  let timer: NodeJS.Timeout | undefined
  const req = get(url, { agent })
  const done = new Promise<void>((resolve) => {
    req.on('response', (res) => {
      const t0 = performance.now()
      res.on('data', (chunk: Buffer) => {
        got += chunk.length
        const aheadMs = (got / bytesPerSec) * 1000 - (performance.now() - t0)
        if (aheadMs > 0) {
          res.pause()
          timer = setTimeout(() => res.resume(), aheadMs)
        }
      })
      res.on('end', () => {
        ended = true
        resolve()
      })
      res.on('close', () => resolve())
      res.on('error', () => resolve())
    })
    req.on('error', () => resolve())
    req.on('close', () => resolve())
  })
  return {
    done,
    bytes: () => got,
    ended: () => ended,
    cut: () => {
      clearTimeout(timer)
      req.destroy()
    },
  }
}

async function mixed(): Promise<unknown> {
  const agent = new HttpAgent({ keepAlive: false })
  const dispatcher = new Agent({ connections: null, keepAliveTimeout: 10_000 })
  const windowMs = args.windowMs ?? 10_000
  const start = performance.now()
  // Slow ones first, so the request that reaches the server first (and may start the fill) is slow.
  const slow = Array.from({ length: args.slow ?? 0 }, () => slowClient(args.url, agent, args.slowBytesPerSec ?? 100_000))
  let fastErrors = 0
  const finishes: number[] = []
  const bodies: Buffer[][] = []
  const fast = async (): Promise<void> => {
    try {
      // Bounded: a fast client that takes longer than the window plus a minute is a failure.
      const res = await request(args.url, { dispatcher, signal: AbortSignal.timeout(windowMs + 60_000) })
      const chunks: Buffer[] = []
      for await (const chunk of res.body) chunks.push(chunk as Buffer)
      if (res.statusCode !== 200) fastErrors++
      finishes.push(performance.now() - start)
      bodies.push(chunks)
    } catch {
      fastErrors++
    }
  }
  await Promise.all(Array.from({ length: args.fast ?? 0 }, fast))
  const fastDoneMs = performance.now() - start
  // Hashed only once every fast body is in: hashing while they arrive would compete for the CPU
  // with the server on a small machine, and the finish times would measure this process instead.
  const digests = bodies.map((chunks) => {
    const h = createHash('sha256')
    for (const c of chunks) h.update(c)
    return h.digest('hex')
  })
  bodies.length = 0
  await sleep(Math.max(0, windowMs - fastDoneMs))
  const slowCompleted = slow.filter((c) => c.ended()).length
  const slowBytes = slow.map((c) => c.bytes())
  for (const c of slow) c.cut()
  await Promise.all(slow.map((c) => c.done))
  agent.destroy()
  await dispatcher.close()
  return {
    fastFinishesMs: finishes,
    fastDigests: digests,
    fastErrors,
    fastDoneMs,
    slowBytes,
    slowCompleted,
    seconds: (performance.now() - start) / 1000,
  }
}

const out = mode === 'rps' ? await rps() : mode === 'mixed' ? await mixed() : await bulk()
process.stdout.write(`${JSON.stringify(out)}\n`)
