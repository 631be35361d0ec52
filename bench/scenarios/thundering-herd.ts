// Scenario 5: 100 clients request the same uncached 64 MiB object from an origin throttled to
// about 50 MB/s. Checks: origin requests for it (exactly 1), last client finish vs a single client
// downloading another uncached object through the same server, every body's sha256, peak RSS.
// Contestants: cachemir, and nginx with proxy_cache_lock (when installed), interleaved per round.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runBulk } from '../lib/loadgen.js'
import { nginxInfo, nginxMissingRow } from '../lib/nginx.js'
import type { Options, Row, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, fmtSpread, MiB, rssSampler, spread, logNote, type Proc, type Spread } from '../lib/util.js'
import { deterministicObject, originCount } from '../lib/objects.js'
import { startFillContestants } from '../lib/contestants.js'

const SIZE_MIB = 64
const CLIENTS = 100
const RATE = 50e6

interface Figures {
  solo: number[]
  last: number[]
  ratios: number[]
  originReqs: number[]
  peaks: number[]
  bad: number
}

/** One herd round through `server`: a solo download of a new key, then the herd on another new key. */
async function herdRound(server: Proc, origin: Proc, key: string, digest: string, f: Figures): Promise<void> {
  const one = await runBulk(`${server.url}/solo/${key}.bin`, 1, 1, true)
  if (one.digests[0] !== digest) f.bad++
  f.solo.push(one.seconds * 1000)
  const c0 = await originCount(origin.url)
  const sampler = rssSampler(() => server.rssBytes())
  const herd = await runBulk(`${server.url}/herd/${key}.bin`, CLIENTS, 1, true)
  const peak = sampler.stop()
  if (peak !== undefined) f.peaks.push(peak / MiB)
  f.originReqs.push((await originCount(origin.url)) - c0)
  f.bad += herd.digests.filter((d) => d !== digest).length + (CLIENTS - herd.digests.length)
  const lastMs = Math.max(...herd.finishesMs)
  f.last.push(lastMs)
  f.ratios.push(lastMs / (one.seconds * 1000))
}

const empty = (): Figures => ({ solo: [], last: [], ratios: [], originReqs: [], peaks: [], bad: 0 })

export const thunderingHerd: Scenario = {
  name: 'thundering-herd',
  title: `Thundering herd (${CLIENTS} clients, uncached ${SIZE_MIB} MiB, origin ~${RATE / 1e6} MB/s)`,
  async run(opts: Options): Promise<ScenarioResult> {
    // A round is two herds of 6.4 GB each (cachemir, nginx): capped at 2 to keep the suite within budget.
    const rounds = opts.quick ? 1 : nginxInfo().path !== undefined ? Math.min(opts.rounds, 2) : opts.rounds
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const notes: string[] = []
    try {
      const { file, digest, hashMs } = await deterministicObject(dir, 'herd.bin', SIZE_MIB, 5)
      const { origin, mirror, nginx } = await startFillContestants(dir, file, RATE, 2048, procs, notes)
      notes.push(
        `client floor: hashing one ${SIZE_MIB} MiB body (file read included) took ${fmt(hashMs, 0)} ms here, so the clients' one process needs about ${fmt((hashMs * CLIENTS) / 1000, 1)} s of CPU for ${CLIENTS} bodies`,
      )
      const A = empty()
      const C = empty()
      for (let r = 0; r < rounds; r++) {
        await herdRound(mirror, origin, `c${r}`, digest, A)
        if (nginx !== undefined) await herdRound(nginx, origin, `n${r}`, digest, C)
      }
      notes.push(
        'the 100 clients run in one child process that hashes every body; on a small machine its CPU, not the server, can set the last finish time',
      )
      if (nginx !== undefined) {
        notes.push(
          `nginx alone: last finish ${fmt(spread(C.ratios).median, 2)}× its single-client time; proxy_cache_lock makes the other clients wait (polling every 500 ms) until the whole object is in the cache, then serves it from there`,
        )
      }
      const S = '5 thundering herd'
      const R = spread(A.ratios)
      const L = spread(A.last)
      const peak = (f: Figures): number | undefined => (f.peaks.length > 0 ? Math.max(...f.peaks) : undefined)
      const P = peak(A)
      const exactlyOne = A.originReqs.every((n) => n === 1)
      const rows: Row[] = [
        {
          scenario: S,
          reference: 'single client through cachemir',
          metric: 'last finish (ms)',
          cachemir: fmtSpread(L, 0),
          referenceFigure: fmtSpread(spread(A.solo), 0),
          ratio: `${fmt(R.median, 2)}×`,
          target: '≤ 1.1×',
          met: R.median <= 1.1 ? 'yes' : 'no',
        },
        {
          scenario: S,
          reference: nginx !== undefined ? 'nginx proxy_cache_lock (its own count)' : '–',
          metric: 'origin requests per herd',
          cachemir: A.originReqs.join(', '),
          referenceFigure: nginx !== undefined ? C.originReqs.join(', ') : '–',
          ratio: '–',
          target: 'exactly 1',
          met: exactlyOne ? 'yes' : 'no',
        },
        {
          scenario: S,
          reference: nginx !== undefined ? 'nginx proxy_cache_lock (its own bodies)' : '–',
          metric: 'bodies failing sha256',
          cachemir: `${A.bad} of ${rounds * (CLIENTS + 1)}`,
          referenceFigure: nginx !== undefined ? `${C.bad} of ${rounds * (CLIENTS + 1)}` : '–',
          ratio: '–',
          target: '0',
          met: A.bad === 0 ? 'yes' : 'no',
        },
        {
          scenario: S,
          reference: nginx !== undefined ? 'nginx proxy_cache_lock (all its processes)' : '–',
          metric: 'peak RSS (MiB)',
          cachemir: P === undefined ? '?' : fmt(P, 1),
          referenceFigure: nginx !== undefined ? fmt(peak(C) ?? NaN, 1) : '–',
          ratio: '–',
          target: '< 150 MiB',
          met: P === undefined ? 'n/a' : P < 150 ? 'yes' : 'no',
        },
      ]
      let nginxData: unknown = null
      if (nginx !== undefined) {
        const LC: Spread = spread(C.last)
        const vs = L.median / LC.median
        nginxData = {
          soloMs: spread(C.solo),
          lastMs: LC,
          ratio: spread(C.ratios),
          originRequests: C.originReqs,
          badBodies: C.bad,
          peakRssMiB: peak(C) ?? null,
          lastFinishRatio: vs,
        }
        rows.splice(1, 0, {
          scenario: S,
          reference: 'nginx proxy_cache_lock',
          metric: 'last finish (ms)',
          cachemir: fmtSpread(L, 0),
          referenceFigure: fmtSpread(LC, 0),
          ratio: `${fmt(vs, 2)}×`,
          target: '≤ 1.0× (goal)',
          met: vs <= 1 ? 'yes' : 'no',
        })
      } else {
        rows.splice(1, 0, nginxMissingRow(S, 'last finish (ms)', '≤ 1.0× (goal)'))
      }
      const logged = logNote('cachemir', mirror)
      if (logged !== undefined) notes.push(logged)
      return {
        name: this.name,
        notes,
        data: {
          sizeMiB: SIZE_MIB,
          clients: CLIENTS,
          rateBps: RATE,
          rounds,
          soloMs: spread(A.solo),
          lastMs: L,
          ratio: R,
          originRequests: A.originReqs,
          badBodies: A.bad,
          peakRssMiB: P ?? null,
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
