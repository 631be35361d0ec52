// Scenario 3: a 256 MiB cached object read fully by 4 connections, several times, against a bare
// node file server streaming the same file with fs.createReadStream (highWaterMark 1 MiB).
// Also: cachemir's RSS growth (VmRSS peak during the run minus VmRSS before it).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { runBulk, type BulkResult } from '../lib/loadgen.js'
import { writeDeterministicFile } from '../lib/objects.js'
import type { Options, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, MiB, procStatusBytes, rssSampler, spread, startCachemir, startServer, type Proc } from '../lib/util.js'

const SIZE_MIB = 256
const CONNECTIONS = 4

export const largeHit: Scenario = {
  name: 'large-hit',
  title: `Large hit (${SIZE_MIB} MiB cached object, ${CONNECTIONS} connections)`,
  async run(opts: Options): Promise<ScenarioResult> {
    const repeat = opts.quick ? 1 : 2
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const notes: string[] = []
    try {
      const file = join(dir, 'large.bin')
      await writeDeterministicFile(file, SIZE_MIB, 3)
      const origin = await startServer('file', { file })
      procs.push(origin)
      const ref = await startServer('file', { file })
      procs.push(ref)
      const mirror = await startCachemir([
        '--upstream',
        origin.url,
        '--cache-dir',
        join(dir, 'cache'),
        '--max-memory',
        '64MiB',
        '--max-disk',
        '1GiB',
      ])
      procs.push(mirror)
      const url = `${mirror.url}/large.bin`
      const fill = await runBulk(url, 1, 1, false)
      if (fill.bytes !== SIZE_MIB * MiB) throw new Error(`fill read ${fill.bytes} bytes`)
      const head = await request(url)
      await head.body.dump({ limit: Infinity })
      notes.push(`fill took ${fmt(fill.seconds, 2)} s; next answer Cache-Status "${String(head.headers['cache-status'] ?? '')}"`)
      // Warm: one full read each.
      await runBulk(url, 1, 1, false)
      await runBulk(`${ref.url}/large.bin`, 1, 1, false)

      const a: BulkResult[] = []
      const b: BulkResult[] = []
      const growth: number[] = []
      const before = procStatusBytes(mirror.pid)
      for (let r = 0; r < opts.rounds; r++) {
        const sampler = rssSampler(mirror.pid)
        a.push(await runBulk(url, CONNECTIONS, repeat, false))
        const peak = sampler.stop()
        if (peak !== undefined && before !== undefined) growth.push(peak - before)
        b.push(await runBulk(`${ref.url}/large.bin`, CONNECTIONS, repeat, false))
      }
      const expected = SIZE_MIB * MiB * CONNECTIONS * repeat
      const short = [...a, ...b].filter((x) => x.bytes !== expected || x.errors > 0).length
      if (short > 0) notes.push(`WARN ${short} runs read the wrong number of bytes or had errors`)
      const A = spread(a.map((x) => x.mbps))
      const B = spread(b.map((x) => x.mbps))
      const ratio = A.median / B.median
      const g = growth.length > 0 ? spread(growth.map((x) => x / MiB)) : undefined
      const gMax = g?.max ?? NaN
      return {
        name: this.name,
        notes,
        data: {
          sizeMiB: SIZE_MIB,
          connections: CONNECTIONS,
          repeat,
          rounds: opts.rounds,
          cachemirMBps: A,
          referenceMBps: B,
          ratio,
          rssBeforeMiB: before !== undefined ? before / MiB : null,
          rssGrowthMiB: g ?? null,
        },
        rows: [
          {
            scenario: '3 large hit',
            reference: 'bare node file server (createReadStream, 1 MiB hwm)',
            metric: 'MB/s',
            cachemir: `${fmt(A.median, 0)} (${fmt(A.min, 0)}–${fmt(A.max, 0)})`,
            referenceFigure: `${fmt(B.median, 0)} (${fmt(B.min, 0)}–${fmt(B.max, 0)})`,
            ratio: `${fmt(ratio, 2)}×`,
            target: '≥ 0.9×',
            met: ratio >= 0.9 ? 'yes' : 'no',
          },
          {
            scenario: '3 large hit',
            reference: '–',
            metric: 'cachemir RSS growth (MiB, peak over rounds)',
            cachemir: g === undefined ? '?' : `${fmt(gMax, 1)} (rounds ${fmt(g.min, 1)}–${fmt(g.max, 1)})`,
            referenceFigure: '–',
            ratio: '–',
            target: '< 64 MiB',
            met: g === undefined ? 'n/a' : gMax < 64 ? 'yes' : 'no',
          },
        ],
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
}
