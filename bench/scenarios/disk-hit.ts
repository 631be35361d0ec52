// bench/scenarios/disk-hit.ts
// Scenario 2: 10,000 distinct 16 KiB objects (156 MiB), all cached on disk, read at random by 64
// connections. cachemir's memory tier (--max-memory 32MiB: 8 MiB for metadata, which holds every
// entry's, 24 MiB for bodies, about 1,500 of them) is far too small for the bodies, so most hits
// read their body from disk.
// Reference: a bare node file server streaming the same files with fs.createReadStream; and nginx
// caching the same origin, when installed. Rounds run A B C.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool, request } from 'undici'
import { runRps, type RpsResult } from '../lib/loadgen.js'
import { NGINX_SETTINGS, nginxInfo, nginxRpsRows, startNginx } from '../lib/nginx.js'
import type { Options, Row, Scenario, ScenarioResult } from '../lib/types.js'
import { chunkBytes, fmt, fmtSpread, MiB, spread, logNote, startCachemir, startServer, type Proc } from '../lib/util.js'
import { originCount } from '../lib/objects.js'

const OBJECTS = 10_000
const SIZE = 16 * 1024
const CONNECTIONS = 64
/** Object i is /o<i>; its bytes come from this seed, so any sample can be checked without the file. */
const seedOf = (i: number): number => 1000 + i
const bodyOf = (i: number): Buffer => chunkBytes(seedOf(i), 0, SIZE)

async function writeObjects(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  for (let i = 0; i < OBJECTS; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, OBJECTS - i) }, (_, k) => writeFile(join(dir, `o${i + k}`), bodyOf(i + k))))
  }
}

/** Fetch every object once through `base` (32 connections); throws on any non-200 or short body. */
async function warmAll(base: string): Promise<void> {
  const pool = new Pool(base, { connections: 32 })
  try {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < OBJECTS) {
        const i = next++
        const res = await pool.request({ path: `/o${i}`, method: 'GET' })
        const body = Buffer.from(await res.body.arrayBuffer())
        if (res.statusCode !== 200 || body.length !== SIZE)
          throw new Error(`warm-up: ${base}/o${i} answered ${res.statusCode} with ${body.length} bytes`)
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))
  } finally {
    await pool.close()
  }
}

/** Check a sample of objects: bytes equal the origin's and the answer came from the cache. */
async function checkSample(
  base: string,
  header: string,
  isHit: (v: string) => boolean,
): Promise<{ wrong: number; notHit: number; example: string }> {
  let wrong = 0
  let notHit = 0
  let example = ''
  for (let k = 0; k < 50; k++) {
    const i = (k * 7919) % OBJECTS
    const res = await request(`${base}/o${i}`)
    const body = Buffer.from(await res.body.arrayBuffer())
    const status = String(res.headers[header] ?? '')
    example ||= status
    if (!body.equals(bodyOf(i))) wrong++
    if (!isHit(status)) notHit++
  }
  return { wrong, notHit, example }
}

export const diskHit: Scenario = {
  name: 'disk-hit',
  title: `Disk hit (${OBJECTS} distinct ${SIZE / 1024} KiB objects on disk, random access, ${CONNECTIONS} connections)`,
  async run(opts: Options): Promise<ScenarioResult> {
    // Shorter than scenario 1's runs: fetching every object once through each proxy takes a while.
    const seconds = opts.quick ? 1 : 2
    const warmSeconds = 1
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const notes: string[] = []
    try {
      const t0 = Date.now()
      const objects = join(dir, 'objects')
      await writeObjects(objects)
      const writtenAt = Date.now()
      const origin = await startServer('files', { dir: objects })
      procs.push(origin)
      const ref = await startServer('files', { dir: objects })
      procs.push(ref)
      const mirror = await startCachemir([
        '--upstream',
        origin.url,
        '--cache-dir',
        join(dir, 'cache'),
        '--max-memory',
        '32MiB',
        '--max-disk',
        '1GiB',
      ])
      procs.push(mirror)
      await warmAll(mirror.url)
      const warmMs = [Date.now() - writtenAt]
      const a = await checkSample(mirror.url, 'cache-status', (v) => /^cachemir; hit/.test(v))
      const health = await request(`${mirror.url}/_cachemir/health`)
      const store = ((await health.body.json()) as { store?: Record<string, unknown> }).store ?? {}
      notes.push(`cachemir after warm-up: sample Cache-Status "${a.example}"; store ${JSON.stringify(store)}`)
      if (a.wrong + a.notHit > 0) notes.push(`WARN cachemir sample: ${a.wrong} of 50 bodies wrong, ${a.notHit} not a hit`)

      let nginxUrl: string | undefined
      if (nginxInfo().path !== undefined) {
        const nginx = await startNginx({ upstream: origin.url, dir: join(dir, 'nginx'), maxCacheBytes: 1024 * MiB })
        procs.push(nginx)
        const n0 = Date.now()
        await warmAll(nginx.url)
        warmMs.push(Date.now() - n0)
        const c = await checkSample(nginx.url, 'x-cache-status', (v) => v === 'HIT')
        notes.push(`nginx (${nginxInfo().version}) after warm-up: sample X-Cache-Status "${c.example}"; ${NGINX_SETTINGS}`)
        if (c.wrong + c.notHit > 0) notes.push(`WARN nginx sample: ${c.wrong} of 50 bodies wrong, ${c.notHit} not a hit`)
        nginxUrl = `${nginx.url}/o{n}`
      } else {
        notes.push(`nginx rows skipped: ${nginxInfo().note}`)
      }
      notes.push(
        `setup ${fmt((Date.now() - t0) / 1000, 1)} s: writing ${OBJECTS} files ${fmt((writtenAt - t0) / 1000, 1)} s, fetching every object once through cachemir${warmMs.length > 1 ? ' and nginx' : ''}: ${warmMs.map((ms) => `${fmt(ms / 1000, 1)} s`).join(' and ')}`,
      )

      const url = `${mirror.url}/o{n}`
      const refUrl = `${ref.url}/o{n}`
      await runRps(url, CONNECTIONS, warmSeconds, OBJECTS)
      await runRps(refUrl, CONNECTIONS, warmSeconds, OBJECTS)
      if (nginxUrl !== undefined) await runRps(nginxUrl, CONNECTIONS, warmSeconds, OBJECTS)
      const before = await originCount(origin.url)
      const A: RpsResult[] = []
      const B: RpsResult[] = []
      const C: RpsResult[] = []
      for (let r = 0; r < opts.rounds; r++) {
        A.push(await runRps(url, CONNECTIONS, seconds, OBJECTS))
        B.push(await runRps(refUrl, CONNECTIONS, seconds, OBJECTS))
        if (nginxUrl !== undefined) C.push(await runRps(nginxUrl, CONNECTIONS, seconds, OBJECTS))
      }
      const during = (await originCount(origin.url)) - before
      notes.push(`origin requests during the timed rounds: ${during} (0 means every answer came from the caches)`)
      const errs = [...A, ...B, ...C].reduce((s, x) => s + x.errors + x.non2xx, 0)
      if (errs > 0) notes.push(`WARN ${errs} errors or non-2xx responses during the run`)

      const S = '2 disk hit'
      const rpsA = spread(A.map((x) => x.rps))
      const p99A = spread(A.map((x) => x.p99Ms))
      const rpsB = spread(B.map((x) => x.rps))
      const p99B = spread(B.map((x) => x.p99Ms))
      const ratio = rpsA.median / rpsB.median
      const refName = 'bare node file server (createReadStream, 1 MiB hwm)'
      const rows: Row[] = [
        {
          scenario: S,
          reference: refName,
          metric: 'req/s',
          cachemir: fmtSpread(rpsA, 0),
          referenceFigure: fmtSpread(rpsB, 0),
          ratio: `${fmt(ratio, 2)}×`,
          target: '≥ 0.8×',
          met: ratio >= 0.8 ? 'yes' : 'no',
        },
        {
          scenario: S,
          reference: refName,
          metric: 'p99 latency (ms)',
          cachemir: fmtSpread(p99A, 2),
          referenceFigure: fmtSpread(p99B, 2),
          ratio: `${fmt(p99A.median / p99B.median, 2)}×`,
          target: '–',
          met: 'n/a',
        },
      ]
      const nginx = nginxRpsRows(S, { rps: rpsA, p99: p99A }, { name: 'bare node file server', rps: rpsB }, C)
      rows.push(...nginx.rows)
      const nginxData = nginx.data
      const logged = logNote('cachemir', mirror)
      if (logged !== undefined) notes.push(logged)
      return {
        name: this.name,
        notes,
        data: {
          objects: OBJECTS,
          sizeBytes: SIZE,
          seconds,
          connections: CONNECTIONS,
          rounds: opts.rounds,
          originRequestsDuringRounds: during,
          cachemir: { rps: rpsA, p99Ms: p99A, raw: A },
          reference: { rps: rpsB, p99Ms: p99B, raw: B },
          ratio,
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
