// Scenario 5: 100 clients request the same uncached 64 MiB object from an origin throttled to
// about 50 MB/s. Checks: origin requests for it (exactly 1), last client finish vs a single client
// downloading another uncached object through cachemir, every body's sha256, cachemir peak RSS.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { runBulk } from '../lib/loadgen.js'
import type { Options, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, MiB, rssSampler, spread, startCachemir, startServer, type Proc } from '../lib/util.js'
import { writeDeterministicFile } from './large-hit.js'

const SIZE_MIB = 64
const CLIENTS = 100
const RATE = 50e6

async function originCount(url: string): Promise<number> {
  const res = await request(`${url}/_count`)
  return Number(await res.body.text())
}

export const thunderingHerd: Scenario = {
  name: 'thundering-herd',
  title: `Thundering herd (${CLIENTS} clients, uncached ${SIZE_MIB} MiB, origin ~${RATE / 1e6} MB/s)`,
  async run(opts: Options): Promise<ScenarioResult> {
    const rounds = opts.quick ? 1 : opts.rounds
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const notes: string[] = []
    try {
      const file = join(dir, 'herd.bin')
      await writeDeterministicFile(file, SIZE_MIB, 5)
      const h = createHash('sha256')
      for await (const c of createReadStream(file)) h.update(c as Buffer)
      const digest = h.digest('hex')
      const origin = await startServer('file', { file, rate: RATE })
      procs.push(origin)
      const mirror = await startCachemir(['--upstream', origin.url, '--cache-dir', join(dir, 'cache'), '--max-memory', '32MiB', '--max-disk', '2GiB'])
      procs.push(mirror)
      const solo: number[] = []
      const last: number[] = []
      const ratios: number[] = []
      const originReqs: number[] = []
      const peaks: number[] = []
      let bad = 0
      for (let r = 0; r < rounds; r++) {
        // Single client, another uncached key: the baseline download time.
        const one = await runBulk(`${mirror.url}/solo/${r}.bin`, 1, 1, true)
        if (one.digests[0] !== digest) bad++
        solo.push(one.seconds * 1000)
        const c0 = await originCount(origin.url)
        const sampler = rssSampler(mirror.pid)
        const herd = await runBulk(`${mirror.url}/herd/${r}.bin`, CLIENTS, 1, true)
        const peak = sampler.stop()
        if (peak !== undefined) peaks.push(peak / MiB)
        originReqs.push((await originCount(origin.url)) - c0)
        bad += herd.digests.filter((d) => d !== digest).length + (CLIENTS - herd.digests.length)
        const lastMs = Math.max(...herd.finishesMs)
        last.push(lastMs)
        ratios.push(lastMs / (one.seconds * 1000))
      }
      notes.push('the 100 clients run in one child process that hashes every body; on a small machine its CPU, not cachemir, can set the last finish time')
      const R = spread(ratios)
      const S = spread(solo)
      const L = spread(last)
      const P = peaks.length > 0 ? Math.max(...peaks) : undefined
      const exactlyOne = originReqs.every((n) => n === 1)
      return {
        name: this.name,
        notes,
        data: { sizeMiB: SIZE_MIB, clients: CLIENTS, rateBps: RATE, rounds, soloMs: S, lastMs: L, ratio: R, originRequests: originReqs, badBodies: bad, peakRssMiB: P ?? null },
        rows: [
          {
            scenario: '5 thundering herd', reference: 'single client through cachemir', metric: 'last finish (ms)',
            cachemir: `${fmt(L.median, 0)} (${fmt(L.min, 0)}–${fmt(L.max, 0)})`,
            referenceFigure: `${fmt(S.median, 0)} (${fmt(S.min, 0)}–${fmt(S.max, 0)})`,
            ratio: `${fmt(R.median, 2)}×`, target: '≤ 1.1×', met: R.median <= 1.1 ? 'yes' : 'no',
          },
          {
            scenario: '5 thundering herd', reference: '–', metric: 'origin requests per herd',
            cachemir: originReqs.join(', '), referenceFigure: '–', ratio: '–', target: 'exactly 1', met: exactlyOne ? 'yes' : 'no',
          },
          {
            scenario: '5 thundering herd', reference: '–', metric: 'bodies failing sha256',
            cachemir: `${bad} of ${rounds * (CLIENTS + 1)}`, referenceFigure: '–', ratio: '–', target: '0', met: bad === 0 ? 'yes' : 'no',
          },
          {
            scenario: '5 thundering herd', reference: '–', metric: 'cachemir peak RSS (MiB)',
            cachemir: P === undefined ? '?' : fmt(P, 1), referenceFigure: '–', ratio: '–', target: '< 150 MiB', met: P === undefined ? 'n/a' : P < 150 ? 'yes' : 'no',
          },
        ],
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
}
