// Scenario 1: a 1 KiB object already in cachemir's memory tier, 64 keep-alive connections,
// against a bare node:http server answering the same bytes from a Buffer with the same headers,
// and against nginx caching the same origin (when nginx is installed). Rounds run A B C.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { runRps, type RpsResult } from '../lib/loadgen.js'
import { NGINX_SETTINGS, nginxInfo, nginxRpsRows, startNginx } from '../lib/nginx.js'
import type { Options, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, spread, logNote, startCachemir, startServer, type Proc } from '../lib/util.js'

const CONNECTIONS = 64
const DROP = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'])

export const hotSmallHit: Scenario = {
  name: 'hot-small-hit',
  title: 'Hot small hit (1 KiB, memory tier, 64 connections)',
  async run(opts: Options): Promise<ScenarioResult> {
    const seconds = opts.quick ? 2 : 4
    const warmSeconds = 1
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const notes: string[] = []
    try {
      const origin = await startServer('buffer', { size: 1024 })
      procs.push(origin)
      const mirror = await startCachemir(['--upstream', origin.url, '--cache-dir', join(dir, 'cache'), '--max-memory', '64MiB'])
      procs.push(mirror)
      const url = `${mirror.url}/small`
      // Fill, then check the next answer is a hit and copy its headers for the reference.
      let headers: Record<string, string> = {}
      let cacheStatus = ''
      for (let i = 0; i < 3; i++) {
        const res = await request(url)
        await res.body.arrayBuffer()
        cacheStatus = String(res.headers['cache-status'] ?? '')
        headers = {}
        for (const [k, v] of Object.entries(res.headers))
          if (!DROP.has(k) && v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v
      }
      notes.push(
        `cachemir answer before the run: Cache-Status "${cacheStatus}"; the reference sends the same ${Object.keys(headers).length} headers (besides Date, Connection, Keep-Alive, Content-Length)`,
      )
      const ref = await startServer('buffer', { size: 1024, headers: JSON.stringify(headers) })
      procs.push(ref)
      const refUrl = `${ref.url}/small`
      let nginxUrl: string | undefined
      if (nginxInfo().path !== undefined) {
        const nginx = await startNginx({ upstream: origin.url, dir: join(dir, 'nginx'), maxCacheBytes: 64 * 1024 * 1024 })
        procs.push(nginx)
        nginxUrl = `${nginx.url}/small`
        let status = ''
        for (let i = 0; i < 3; i++) {
          const res = await request(nginxUrl)
          await res.body.arrayBuffer()
          status = String(res.headers['x-cache-status'] ?? '')
        }
        notes.push(`nginx (${nginxInfo().version}) answer before the run: X-Cache-Status "${status}"; ${NGINX_SETTINGS}`)
        if (status !== 'HIT') notes.push('WARN nginx did not answer from its cache before the run')
      } else {
        notes.push(`nginx rows skipped: ${nginxInfo().note}`)
      }

      await runRps(url, CONNECTIONS, warmSeconds)
      await runRps(refUrl, CONNECTIONS, warmSeconds)
      if (nginxUrl !== undefined) await runRps(nginxUrl, CONNECTIONS, warmSeconds)
      const a: RpsResult[] = []
      const b: RpsResult[] = []
      const c: RpsResult[] = []
      for (let r = 0; r < opts.rounds; r++) {
        a.push(await runRps(url, CONNECTIONS, seconds))
        b.push(await runRps(refUrl, CONNECTIONS, seconds))
        if (nginxUrl !== undefined) c.push(await runRps(nginxUrl, CONNECTIONS, seconds))
      }
      const errs = [...a, ...b, ...c].reduce((s, x) => s + x.errors + x.non2xx, 0)
      if (errs > 0) notes.push(`WARN ${errs} errors or non-2xx responses during the run`)
      const rpsA = spread(a.map((x) => x.rps))
      const rpsB = spread(b.map((x) => x.rps))
      const p99A = spread(a.map((x) => x.p99Ms))
      const p99B = spread(b.map((x) => x.p99Ms))
      const rpsRatio = rpsA.median / rpsB.median
      const p99Ratio = p99A.median / p99B.median
      const ref1 = 'bare node:http, Buffer'
      const S = '1 hot small hit'
      const { rows: nginxRows, data: nginxData } = nginxRpsRows(
        S,
        { rps: rpsA, p99: p99A },
        { name: 'bare node:http server', rps: rpsB },
        c,
      )
      const logged = logNote('cachemir', mirror)
      if (logged !== undefined) notes.push(logged)
      return {
        name: this.name,
        notes,
        data: {
          seconds,
          connections: CONNECTIONS,
          rounds: opts.rounds,
          cachemir: { rps: rpsA, p99Ms: p99A, raw: a },
          reference: { rps: rpsB, p99Ms: p99B, raw: b },
          rpsRatio,
          p99Ratio,
          nginx: nginxData,
        },
        rows: [
          {
            scenario: '1 hot small hit',
            reference: ref1,
            metric: 'req/s',
            cachemir: `${fmt(rpsA.median, 0)} (${fmt(rpsA.min, 0)}–${fmt(rpsA.max, 0)})`,
            referenceFigure: `${fmt(rpsB.median, 0)} (${fmt(rpsB.min, 0)}–${fmt(rpsB.max, 0)})`,
            ratio: `${fmt(rpsRatio, 2)}×`,
            target: '≥ 0.85×',
            met: rpsRatio >= 0.85 ? 'yes' : 'no',
          },
          {
            scenario: '1 hot small hit',
            reference: ref1,
            metric: 'p99 latency (ms)',
            cachemir: `${fmt(p99A.median, 2)} (${fmt(p99A.min, 2)}–${fmt(p99A.max, 2)})`,
            referenceFigure: `${fmt(p99B.median, 2)} (${fmt(p99B.min, 2)}–${fmt(p99B.max, 2)})`,
            ratio: `${fmt(p99Ratio, 2)}×`,
            target: '≤ 1.5×',
            met: p99Ratio <= 1.5 ? 'yes' : 'no',
          },
          ...nginxRows,
        ],
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
}
