// Scenario 4: cold miss time to first byte. The origin answers after a fixed delay; each sample
// asks cachemir for a new URL (a miss) and the origin directly for another new URL, alternately.
// Figure: median cachemir TTFB minus median direct TTFB, per round.
import { mkdtemp, rm } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Options, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, median, spread, startCachemir, startServer, type Proc } from '../lib/util.js'

const DELAY_MS = 20

/** Time from sending the request to the first body byte, in ms. Body read to the end. */
function ttfb(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    let first = NaN
    const req = request(url, { agent }, (res) => {
      res.on('data', () => {
        if (Number.isNaN(first)) first = performance.now() - t0
      })
      res.on('end', () => (res.statusCode === 200 ? resolve(first) : reject(new Error(`status ${String(res.statusCode)}`))))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

export const coldMissTtfb: Scenario = {
  name: 'cold-miss-ttfb',
  title: `Cold miss TTFB (origin delay ${DELAY_MS} ms)`,
  async run(opts: Options): Promise<ScenarioResult> {
    const samples = opts.quick ? 30 : 50
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const origin = await startServer('delay', { delay: DELAY_MS, size: 1024 })
      procs.push(origin)
      const mirror = await startCachemir(['--upstream', origin.url, '--cache-dir', join(dir, 'cache')])
      procs.push(mirror)
      let n = 0
      // Warm both paths (connections, JIT) with misses that are not counted.
      for (let i = 0; i < 10; i++) {
        await ttfb(`${mirror.url}/warm/${n++}`, agent)
        await ttfb(`${origin.url}/warm/${n++}`, agent)
      }
      const diffs: number[] = []
      const medA: number[] = []
      const medB: number[] = []
      for (let r = 0; r < opts.rounds; r++) {
        const a: number[] = []
        const b: number[] = []
        for (let i = 0; i < samples; i++) {
          a.push(await ttfb(`${mirror.url}/miss/${r}/${n++}`, agent))
          b.push(await ttfb(`${origin.url}/miss/${r}/${n++}`, agent))
        }
        medA.push(median(a))
        medB.push(median(b))
        diffs.push(median(a) - median(b))
      }
      const d = spread(diffs)
      const A = spread(medA)
      const B = spread(medB)
      return {
        name: this.name,
        notes: [
          `${samples} samples per contestant per round, alternating; TTFB = request sent to first body byte, one keep-alive connection`,
        ],
        data: { delayMs: DELAY_MS, samples, rounds: opts.rounds, cachemirTtfbMs: A, directTtfbMs: B, overheadMs: d },
        rows: [
          {
            scenario: '4 cold miss TTFB',
            reference: `origin direct (${DELAY_MS} ms delay)`,
            metric: 'median TTFB (ms); ratio column = overhead',
            cachemir: `${fmt(A.median, 2)} (${fmt(A.min, 2)}–${fmt(A.max, 2)})`,
            referenceFigure: `${fmt(B.median, 2)} (${fmt(B.min, 2)}–${fmt(B.max, 2)})`,
            ratio: `+${fmt(d.median, 2)} ms (${fmt(d.min, 2)}–${fmt(d.max, 2)})`,
            target: '≤ +2 ms',
            met: d.median <= 2 ? 'yes' : 'no',
          },
        ],
      }
    } finally {
      agent.destroy()
      await Promise.all(procs.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
}
