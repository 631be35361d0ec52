// Scenario 8: `serve --workers N`. Hot-hit requests/s (1 KiB memory-tier hit, 64 connections)
// with 1 and with 2 workers, interleaved; and cross-worker coalescing: 40 concurrent clients on
// their own connections ask one uncached object of a throttled origin through 2 workers, and
// the origin counts its requests (must be exactly 1).
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { runBulk, runRps, type RpsResult } from '../lib/loadgen.js'
import type { Options, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, spread, startCachemir, startServer, type Proc } from '../lib/util.js'
import { deterministicObject, originCount } from '../lib/objects.js'

const CONNECTIONS = 64
const HERD = 40

/** Asks until every worker has the object in memory (connections are spread over the workers). */
async function warm(url: string, times: number): Promise<string> {
  let status = ''
  for (let i = 0; i < times; i++) {
    const res = await request(url, { reset: true })
    await res.body.arrayBuffer()
    status = String(res.headers['cache-status'] ?? '')
  }
  return status
}

export const multiCore: Scenario = {
  name: 'multi-core',
  title: `Multi-core (--workers 1 vs 2: hot hit req/s, ${CONNECTIONS} connections; cross-worker coalescing)`,
  async run(opts: Options): Promise<ScenarioResult> {
    const seconds = opts.quick ? 2 : 5
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const notes: string[] = []
    try {
      const origin = await startServer('buffer', { size: 1024 })
      procs.push(origin)
      const one = await startCachemir(['--upstream', origin.url, '--cache-dir', join(dir, 'cache1'), '--max-memory', '64MiB'])
      procs.push(one)
      const two = await startCachemir([
        '--upstream',
        origin.url,
        '--cache-dir',
        join(dir, 'cache2'),
        '--max-memory',
        '64MiB',
        '--workers',
        '2',
      ])
      procs.push(two)
      const s1 = await warm(`${one.url}/small`, 4)
      const s2 = await warm(`${two.url}/small`, 8)
      notes.push(`answers before the run: 1 worker "${s1}", 2 workers "${s2}"`)
      notes.push(`${cpus().length} CPUs: the load generator shares them with the workers, so 2 workers cannot reach 2× here`)
      await runRps(`${one.url}/small`, CONNECTIONS, 1)
      await runRps(`${two.url}/small`, CONNECTIONS, 1)
      const a: RpsResult[] = []
      const b: RpsResult[] = []
      for (let r = 0; r < opts.rounds; r++) {
        a.push(await runRps(`${one.url}/small`, CONNECTIONS, seconds))
        b.push(await runRps(`${two.url}/small`, CONNECTIONS, seconds))
      }
      const errs = [...a, ...b].reduce((s, x) => s + x.errors + x.non2xx, 0)
      if (errs > 0) notes.push(`WARN ${errs} errors or non-2xx responses during the run`)

      // Cross-worker coalescing: a throttled 16 MiB object, 40 clients at once through 2 workers.
      const { file, digest } = await deterministicObject(dir, 'herd.bin', 16, 9)
      const slow = await startServer('file', { file, rate: 50e6 })
      procs.push(slow)
      const group = await startCachemir(['--upstream', slow.url, '--cache-dir', join(dir, 'cache3'), '--workers', '2'])
      procs.push(group)
      const herd = await runBulk(`${group.url}/herd.bin`, HERD, 1, true)
      const originRequests = await originCount(slow.url)
      const bad = herd.digests.filter((d) => d !== digest).length + (HERD - herd.digests.length)

      const A = spread(a.map((x) => x.rps))
      const B = spread(b.map((x) => x.rps))
      const ratio = B.median / A.median
      return {
        name: this.name,
        notes,
        data: {
          seconds,
          connections: CONNECTIONS,
          rounds: opts.rounds,
          oneWorker: { rps: A, raw: a },
          twoWorkers: { rps: B, raw: b },
          ratio,
          herd: { clients: HERD, originRequests, badBodies: bad },
        },
        rows: [
          {
            scenario: '8 multi-core',
            reference: '--workers 1',
            metric: 'hot hit req/s with --workers 2',
            cachemir: `${fmt(B.median, 0)} (${fmt(B.min, 0)}–${fmt(B.max, 0)})`,
            referenceFigure: `${fmt(A.median, 0)} (${fmt(A.min, 0)}–${fmt(A.max, 0)})`,
            ratio: `${fmt(ratio, 2)}×`,
            target: 'report',
            met: 'n/a',
          },
          {
            scenario: '8 multi-core',
            reference: '–',
            metric: `origin requests, ${HERD} clients over 2 workers`,
            cachemir: `${originRequests} (bodies failing sha256: ${bad})`,
            referenceFigure: '–',
            ratio: '–',
            target: 'exactly 1',
            met: originRequests === 1 && bad === 0 ? 'yes' : 'no',
          },
        ],
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
}
