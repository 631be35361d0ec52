// bench/scenarios/slow-readers.ts
// Scenario 6: 20 clients reading at 100 KB/s and 20 at full speed start together on the same
// uncached 32 MiB object, from an origin throttled to about 50 MB/s. The fast clients should finish
// at origin speed (vs one client alone on another uncached object through the same server), the
// origin should see one request, and the server's RSS should stay flat while the slow clients
// hold their connections. A slow client would need 5+ minutes for the whole body, so the slow ones
// are cut once the fast ones are done and the window (8 s; 5 s with --quick) has passed.
// Contestants: cachemir, and nginx with proxy_cache_lock (when installed), interleaved per round.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runBulk, runMixed } from '../lib/loadgen.js'
import { nginxMissingRow } from '../lib/nginx.js'
import type { Options, Row, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, fmtSpread, median, MiB, rssSampler, spread, logNote, type Proc } from '../lib/util.js'
import { deterministicObject, originCount } from '../lib/objects.js'
import { startFillContestants } from '../lib/contestants.js'

const SIZE_MIB = 32
const RATE = 50e6
const FAST = 20
const SLOW = 20
const SLOW_RATE = 100e3

interface Figures {
  solo: number[]
  fastLast: number[]
  fastMedian: number[]
  ratios: number[]
  originReqs: number[]
  growthMiB: number[]
  slowKB: number[]
  slowCompleted: number
  bad: number
}
const empty = (): Figures => ({
  solo: [],
  fastLast: [],
  fastMedian: [],
  ratios: [],
  originReqs: [],
  growthMiB: [],
  slowKB: [],
  slowCompleted: 0,
  bad: 0,
})

async function round(server: Proc, origin: Proc, key: string, digest: string, windowMs: number, f: Figures): Promise<void> {
  const one = await runBulk(`${server.url}/solo/${key}.bin`, 1, 1, true)
  if (one.digests[0] !== digest) f.bad++
  const soloMs = one.seconds * 1000
  f.solo.push(soloMs)
  const c0 = await originCount(origin.url)
  const before = server.rssBytes()
  const sampler = rssSampler(() => server.rssBytes())
  const m = await runMixed(`${server.url}/mixed/${key}.bin`, { fast: FAST, slow: SLOW, slowBytesPerSec: SLOW_RATE, windowMs })
  const peak = sampler.stop()
  if (peak !== undefined && before !== undefined) f.growthMiB.push((peak - before) / MiB)
  f.originReqs.push((await originCount(origin.url)) - c0)
  f.bad += m.fastDigests.filter((d) => d !== digest).length + (FAST - m.fastDigests.length)
  const last = m.fastFinishesMs.length > 0 ? Math.max(...m.fastFinishesMs) : NaN
  f.fastLast.push(last)
  f.fastMedian.push(median(m.fastFinishesMs))
  f.ratios.push(last / soloMs)
  f.slowKB.push(median(m.slowBytes) / 1000)
  f.slowCompleted += m.slowCompleted
}

export const slowReaders: Scenario = {
  name: 'slow-readers',
  title: `Slow readers (${SLOW} at ${SLOW_RATE / 1000} KB/s + ${FAST} fast, uncached ${SIZE_MIB} MiB, origin ~${RATE / 1e6} MB/s)`,
  async run(opts: Options): Promise<ScenarioResult> {
    // Each run lasts the whole window, so rounds are capped to keep the suite within its budget.
    const rounds = opts.quick ? 1 : Math.min(opts.rounds, 2)
    const windowMs = opts.quick ? 5000 : 8000
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const notes: string[] = []
    try {
      const { file, digest, hashMs } = await deterministicObject(dir, 'slow.bin', SIZE_MIB, 6)
      const { origin, mirror, nginx } = await startFillContestants(dir, file, RATE, 1024, procs, notes)
      notes.push(
        `the fast bodies are hashed after the last one has arrived (hashing one took ${fmt(hashMs, 0)} ms here), so hashing is not in their finish times; the single client hashes as it reads`,
      )
      const A = empty()
      const C = empty()
      for (let r = 0; r < rounds; r++) {
        await round(mirror, origin, `c${r}`, digest, windowMs, A)
        if (nginx !== undefined) await round(nginx, origin, `n${r}`, digest, windowMs, C)
      }
      const describe = (name: string, f: Figures): string =>
        `${name}: fast clients' median finish ${fmtSpread(spread(f.fastMedian), 0)} ms; slow clients read a median ${fmtSpread(spread(f.slowKB), 0)} KB before the cut (${SLOW_RATE / 1000} KB/s × ${windowMs / 1000} s ≈ ${(SLOW_RATE * windowMs) / 1e6} KB), ${f.slowCompleted} finished`
      notes.push(
        `${rounds} round(s); slow clients start first, so a slow one may start the fill; they are cut ${windowMs / 1000} s after the start (a whole body at ${SLOW_RATE / 1000} KB/s would take ${fmt((SIZE_MIB * MiB) / SLOW_RATE / 60, 1)} min)`,
      )
      notes.push(describe('cachemir', A))
      if (nginx !== undefined) notes.push(describe('nginx', C))

      const S = '6 slow readers'
      const R = spread(A.ratios)
      const L = spread(A.fastLast)
      const G = A.growthMiB.length > 0 ? Math.max(...A.growthMiB) : undefined
      const GC = C.growthMiB.length > 0 ? Math.max(...C.growthMiB) : undefined
      const rows: Row[] = [
        {
          scenario: S,
          reference: 'single client through cachemir',
          metric: "fast clients' last finish (ms)",
          cachemir: fmtSpread(L, 0),
          referenceFigure: fmtSpread(spread(A.solo), 0),
          ratio: `${fmt(R.median, 2)}×`,
          target: '≤ 1.1×',
          met: R.median <= 1.1 ? 'yes' : 'no',
        },
      ]
      let nginxData: unknown = null
      if (nginx !== undefined) {
        const LC = spread(C.fastLast)
        const vs = L.median / LC.median
        nginxData = {
          soloMs: spread(C.solo),
          fastLastMs: LC,
          fastMedianMs: spread(C.fastMedian),
          ratio: spread(C.ratios),
          originRequests: C.originReqs,
          badBodies: C.bad,
          rssGrowthMiB: C.growthMiB,
          slowKB: C.slowKB,
          lastFinishRatio: vs,
        }
        rows.push({
          scenario: S,
          reference: 'nginx proxy_cache_lock',
          metric: "fast clients' last finish (ms)",
          cachemir: fmtSpread(L, 0),
          referenceFigure: fmtSpread(LC, 0),
          ratio: `${fmt(vs, 2)}×`,
          target: '≤ 1.0× (goal)',
          met: vs <= 1 ? 'yes' : 'no',
        })
      } else {
        rows.push(nginxMissingRow(S, "fast clients' last finish (ms)", '≤ 1.0× (goal)'))
      }
      const withNginx = (fig: string): string => (nginx !== undefined ? fig : '–')
      rows.push(
        {
          scenario: S,
          reference: withNginx('nginx proxy_cache_lock (its own count)'),
          metric: 'origin requests per run',
          cachemir: A.originReqs.join(', '),
          referenceFigure: withNginx(C.originReqs.join(', ')),
          ratio: '–',
          target: 'exactly 1',
          met: A.originReqs.every((n) => n === 1) ? 'yes' : 'no',
        },
        {
          scenario: S,
          reference: withNginx('nginx proxy_cache_lock (its own bodies)'),
          metric: 'fast bodies failing sha256',
          cachemir: `${A.bad} of ${rounds * (FAST + 1)}`,
          referenceFigure: withNginx(`${C.bad} of ${rounds * (FAST + 1)}`),
          ratio: '–',
          target: '0',
          met: A.bad === 0 ? 'yes' : 'no',
        },
        {
          scenario: S,
          reference: withNginx('nginx proxy_cache_lock (all its processes)'),
          metric: 'RSS growth during the run (MiB, peak minus before)',
          cachemir: G === undefined ? '?' : fmt(G, 1),
          referenceFigure: withNginx(GC === undefined ? '?' : fmt(GC, 1)),
          ratio: '–',
          target: '< 64 MiB',
          met: G === undefined ? 'n/a' : G < 64 ? 'yes' : 'no',
        },
      )
      const logged = logNote('cachemir', mirror)
      if (logged !== undefined) notes.push(logged)
      return {
        name: this.name,
        notes,
        data: {
          sizeMiB: SIZE_MIB,
          rateBps: RATE,
          fast: FAST,
          slow: SLOW,
          slowBytesPerSec: SLOW_RATE,
          windowMs,
          rounds,
          soloMs: spread(A.solo),
          fastLastMs: L,
          fastMedianMs: spread(A.fastMedian),
          ratio: R,
          originRequests: A.originReqs,
          badBodies: A.bad,
          rssGrowthMiB: A.growthMiB,
          slowKB: A.slowKB,
          nginx: nginxData,
        },
        rows,
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
}
