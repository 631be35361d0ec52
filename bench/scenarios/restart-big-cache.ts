// bench/scenarios/restart-big-cache.ts
// Scenario 7: restart over a cache of 200,000 entries. Writes the entries straight into the
// on-disk layout (child processes), then starts the real CLI on it each round and measures from
// spawn: port accepting, first hit for a random entry (origin untouched), index complete as
// /_cachemir/health reports it. Also: the index's heap per entry, in a child with --expose-gc,
// and cachemir's RSS after the scan against a start on an empty cache dir.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, rmSync, statfsSync, writeFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { entryPath } from '../lib/big-cache.js'
import type { Options, Row, Scenario, ScenarioResult } from '../lib/types.js'
import { CLI, fmt, freePort, MiB, procStatusBytes, sleep, spread, startServer, stopChild, type Proc, type Spread } from '../lib/util.js'

const ENTRIES = 200_000
const MAX_DISK = '4GiB'
const MAX_DISK_BYTES = 4 * 1024 ** 3
const CACHE_CHILD = new URL('../lib/cache-child.js', import.meta.url).pathname
const TMPFS_MAGIC = 0x01021994
const SCENARIO = '7 restart, 200,000 entries'

/**
 * Where the cache dir goes. Creating 400,000 files on this kind of VM's ext4 takes 30–120 s, so the
 * default is /dev/shm (tmpfs) when it has room; CACHEMIR_BENCH_RESTART_DIR picks another base.
 */
function baseDir(): { path: string; tmpfs: boolean } {
  const wanted = process.env['CACHEMIR_BENCH_RESTART_DIR'] ?? ''
  if (wanted !== '') {
    try {
      return { path: wanted, tmpfs: statfsSync(wanted).type === TMPFS_MAGIC }
    } catch (err) {
      throw new Error(`CACHEMIR_BENCH_RESTART_DIR: cannot use "${wanted}"`, { cause: err })
    }
  }
  // tmpfs keeps every file in at least one 4 KiB page: 400,000 files take about 1.6 GiB.
  const shm = existsSync('/dev/shm') ? statfsSync('/dev/shm') : undefined
  if (shm !== undefined && shm.bavail * shm.bsize >= 4 * 1024 ** 3) return { path: '/dev/shm', tmpfs: shm.type === TMPFS_MAGIC }
  return { path: tmpdir(), tmpfs: statfsSync(tmpdir()).type === TMPFS_MAGIC }
}

/** Runs cache-child.js and parses its JSON line; killed after `timeoutMs`. */
function runCacheChild(children: Set<ChildProcess>, args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000)
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(timer)
      children.delete(child)
      if (code === 0) resolve(JSON.parse(out) as Record<string, unknown>)
      else reject(new Error(`cache-child ${args[args.indexOf(CACHE_CHILD) + 1] ?? ''} exited ${String(code)}: ${err}`))
    })
  })
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1')
    sock.once('connect', () => {
      sock.destroy()
      resolve(true)
    })
    sock.once('error', () => resolve(false))
  })
}

interface Health {
  store: { diskEntries: number; indexComplete: boolean }
}

interface StartFigures {
  listenMs: number
  firstHitMs: number
  firstHitStatus: string
  indexMs: number
  indexedEntries: number
  rssAfterScan: number | undefined
  hitsDuringScan: number
  requestsDuringScan: number
  slowestDuringScanMs: number
  originRequests: number
}

/**
 * One start of the CLI on `cacheDir`, measured from spawn; with `expected` > 0 it also asks for
 * random entries below that number. The process is stopped before returning.
 */
async function measureStart(
  cacheDir: string,
  origin: Proc,
  agent: Agent,
  expected: number,
  deadlineMs: number,
  live: Set<ChildProcess>,
): Promise<StartFigures> {
  const c0 = await originCount(origin, agent)
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const t0 = performance.now()
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--log-level',
      'warn',
      '--upstream',
      origin.url,
      '--cache-dir',
      cacheDir,
      '--max-disk',
      MAX_DISK,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  live.add(child)
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  try {
    const since = (): number => performance.now() - t0
    while (!(await canConnect(port))) {
      if (child.exitCode !== null) throw new Error(`cachemir exited ${child.exitCode}: ${stderr}`)
      if (since() > 15_000) throw new Error('cachemir did not listen within 15 s')
      await sleep(5)
    }
    const listenMs = since()
    const first = expected > 0 ? await get(agent, `${base}${entryPath(randomEntry(expected))}`) : { status: 0, cacheStatus: 'not asked' }
    const firstHitMs = expected > 0 ? since() : NaN
    // Until the index is complete: random hits one after another, and the health endpoint polled.
    let indexMs = NaN
    let indexedEntries = 0
    let requestsDuringScan = 0
    let hitsDuringScan = 0
    let slowest = 0
    let done = false
    const hits = (async () => {
      while (!done && expected > 0) {
        const t = performance.now()
        const r = await get(agent, `${base}${entryPath(randomEntry(expected))}`)
        if (done) break
        slowest = Math.max(slowest, performance.now() - t)
        requestsDuringScan++
        if (r.hit) hitsDuringScan++
      }
    })()
    try {
      for (;;) {
        const res = await request(`${base}/_cachemir/health`, { dispatcher: agent })
        const h = (await res.body.json()) as Health
        if (h.store.indexComplete) {
          indexMs = since()
          indexedEntries = h.store.diskEntries
          break
        }
        if (since() > deadlineMs) break
        await sleep(10)
      }
    } finally {
      done = true
      await hits
    }
    const rssAfterScan = procStatusBytes(child.pid ?? -1)
    const originRequests = (await originCount(origin, agent)) - c0
    return {
      listenMs,
      firstHitMs,
      firstHitStatus: `${first.status} ${first.cacheStatus}`,
      indexMs,
      indexedEntries,
      rssAfterScan,
      hitsDuringScan,
      requestsDuringScan,
      slowestDuringScanMs: slowest,
      originRequests,
    }
  } finally {
    await stopChild(child)
    live.delete(child)
  }
}

function randomEntry(n: number): number {
  return Math.floor(Math.random() * n)
}

async function get(agent: Agent, url: string): Promise<{ status: number; cacheStatus: string; hit: boolean }> {
  const res = await request(url, { dispatcher: agent })
  await res.body.dump({ limit: Infinity })
  const cacheStatus = String(res.headers['cache-status'] ?? '')
  return { status: res.statusCode, cacheStatus, hit: res.statusCode === 200 && cacheStatus.startsWith('cachemir; hit') }
}

async function originCount(origin: Proc, agent: Agent): Promise<number> {
  const res = await request(`${origin.url}/_count`, { dispatcher: agent })
  return Number(await res.body.text())
}

/** `sync` and drop the page cache (root only). True when it worked. Affects the whole machine. */
async function dropCaches(): Promise<boolean> {
  try {
    await new Promise<void>((resolve, reject) => {
      const s = spawn('sync', [], { stdio: 'ignore' })
      s.on('error', reject)
      s.on('exit', () => resolve())
    })
    writeFileSync('/proc/sys/vm/drop_caches', '3\n')
    return true
  } catch {
    return false
  }
}

const range = (s: Spread, digits = 0): string => `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`

export const restartBigCache: Scenario = {
  name: 'restart-big-cache',
  title: `Restart with a big cache (${ENTRIES.toLocaleString('en-US')} entries on disk)`,
  async run(opts: Options): Promise<ScenarioResult> {
    const rounds = opts.quick ? 1 : opts.rounds
    const where = baseDir()
    const dir = await mkdtemp(join(where.path, 'cachemir-bench-restart-'))
    /** Child processes running now: entry writers, index-memory, the cachemir being measured. */
    const children = new Set<ChildProcess>()
    const procs: Proc[] = []
    const agent = new Agent({ connections: 4, keepAliveTimeout: 10_000 })
    const notes: string[] = []
    // The entries take about 1.6 GiB of tmpfs (memory): remove them even when the run is cut short
    // (the runner's watchdog calls process.exit; Ctrl-C and SIGTERM are turned into an exit here).
    const removeNow = (): void => {
      for (const c of [...children, ...procs.map((p) => p.child)]) c.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
    const exitOnSignal = (signal: NodeJS.Signals): void => process.exit(signal === 'SIGINT' ? 130 : 143)
    process.once('exit', removeNow)
    process.once('SIGINT', exitOnSignal)
    process.once('SIGTERM', exitOnSignal)
    try {
      const cacheDir = join(dir, 'cache')
      const emptyDir = join(dir, 'empty')
      await mkdir(emptyDir)
      // Entries: two child processes, each writing half with synchronous I/O.
      const nowAt = Date.now() - 60_000
      const tc = performance.now()
      const halves = [0, ENTRIES >> 1, ENTRIES]
      const made = await Promise.all(
        [0, 1].map((h) =>
          runCacheChild(children, [CACHE_CHILD, 'create', cacheDir, String(halves[h]), String(halves[h + 1]), String(nowAt)], 300_000),
        ),
      )
      const createMs = performance.now() - tc
      const bodyBytes = made.reduce((a, m) => a + Number(m['bytes']), 0)
      notes.push(
        `created ${ENTRIES} entries (${ENTRIES * 2} files, ${fmt(bodyBytes / MiB, 0)} MiB of bodies) in ${fmt(createMs / 1000, 1)} s under ${where.path}${where.tmpfs ? ' (tmpfs)' : ''}`,
      )

      const file = join(dir, 'origin.bin')
      writeFileSync(file, Buffer.alloc(1024, 1))
      const origin = await startServer('file', { file })
      procs.push(origin)

      // The index's own memory, in a child with --expose-gc (scan only, no server).
      const mem = await runCacheChild(children, ['--expose-gc', CACHE_CHILD, 'index-memory', cacheDir, String(MAX_DISK_BYTES)], 120_000)
      const heapPerEntry = Number(mem['heapBytesPerEntry'])
      notes.push(
        `index memory: ${fmt(heapPerEntry, 0)} B/entry of heap (external ${fmt(Number(mem['externalBytesPerEntry']), 1)}, RSS ${fmt(Number(mem['rssBytesPerEntry']), 0)} B/entry); bare scan ${fmt(Number(mem['scanMs']), 0)} ms for ${String(mem['entries'])} entries`,
      )

      // Rounds: a start on an empty cache dir (reference for listen time and RSS), then the big one.
      const empty: StartFigures[] = []
      const big: StartFigures[] = []
      for (let r = 0; r < rounds; r++) {
        empty.push(await measureStart(emptyDir, origin, agent, 0, 10_000, children))
        big.push(await measureStart(cacheDir, origin, agent, ENTRIES, 60_000, children))
      }
      notes.push(
        where.tmpfs
          ? 'the cache dir is on tmpfs: every round reads directories and files from memory, as on a disk whose page cache is warm'
          : 'the page cache is warm from the first round on (the entries were just written)',
      )

      // Cold round: only on a disk, as root, and when asked (it drops the page cache of the whole machine).
      let cold: StartFigures | undefined
      if (!where.tmpfs && process.env['CACHEMIR_BENCH_DROP_CACHES'] === '1') {
        if (await dropCaches()) cold = await measureStart(cacheDir, origin, agent, ENTRIES, 120_000, children)
        else notes.push('cold round skipped: could not write /proc/sys/vm/drop_caches')
      }

      const hitsOk = big.every((b) => b.firstHitStatus.startsWith('200 cachemir; hit'))
      const originTotal = big.reduce((a, b) => a + b.originRequests, 0) + (cold?.originRequests ?? 0)
      const allIndexed = big.every((b) => b.indexedEntries === ENTRIES)
      const L = spread(big.map((b) => b.listenMs))
      const LE = spread(empty.map((b) => b.listenMs))
      const H = spread(big.map((b) => b.firstHitMs))
      const HL = spread(big.map((b) => b.firstHitMs - b.listenMs))
      const I = spread(big.map((b) => b.indexMs))
      const slow = spread(big.map((b) => b.slowestDuringScanMs))
      const rssBig = big.map((b) => b.rssAfterScan).filter((x): x is number => x !== undefined)
      const rssEmpty = empty.map((b) => b.rssAfterScan).filter((x): x is number => x !== undefined)
      const RB = rssBig.length > 0 ? spread(rssBig.map((x) => x / MiB)) : undefined
      const RE = rssEmpty.length > 0 ? spread(rssEmpty.map((x) => x / MiB)) : undefined
      const rssPerEntry = RB !== undefined && RE !== undefined ? ((RB.median - RE.median) * MiB) / ENTRIES : NaN
      notes.push(
        `first answers: ${big.map((b) => b.firstHitStatus).join(' | ')}; during the scans ${big.map((b) => `${b.hitsDuringScan}/${b.requestsDuringScan}`).join(', ')} requests were hits`,
      )
      if (!allIndexed) notes.push(`WARN index entry counts at completion: ${big.map((b) => b.indexedEntries).join(', ')}`)

      const row = (
        metric: string,
        cachemir: string,
        target: string,
        met: Row['met'],
        reference = '–',
        referenceFigure = '–',
        ratio = '–',
      ): Row => ({ scenario: SCENARIO, reference, metric, cachemir, referenceFigure, ratio, target, met })
      const rows: Row[] = [
        row('setup: create the entries (s, once)', fmt(createMs / 1000, 1), '–', 'n/a'),
        row(
          'port accepts (ms after spawn)',
          range(L),
          '–',
          'n/a',
          'same CLI, empty cache dir',
          range(LE),
          `${fmt(L.median / LE.median, 2)}×`,
        ),
        row(
          'first hit, random entry (ms after spawn)',
          range(H),
          '≤ 1000 ms, 200 hit, origin untouched',
          H.median <= 1000 && hitsOk ? 'yes' : 'no',
        ),
        row('first hit (ms after the port accepted)', range(HL, 1), '–', 'n/a'),
        row(
          `index complete, ${ENTRIES.toLocaleString('en-US')} entries (ms after spawn)`,
          range(I),
          '≤ 5000 ms',
          I.median <= 5000 && allIndexed ? 'yes' : 'no',
        ),
        row('scan alone, in a child without a server (ms)', fmt(Number(mem['scanMs']), 0), '–', 'n/a'),
        row('index heap per entry (bytes)', fmt(heapPerEntry, 0), '< 300 B', heapPerEntry < 300 ? 'yes' : 'no'),
        row(
          'cachemir RSS after the scan (MiB)',
          RB === undefined ? '?' : range(RB, 1),
          '–',
          'n/a',
          'same CLI, empty cache dir',
          RE === undefined ? '?' : range(RE, 1),
          RB !== undefined && RE !== undefined ? `+${fmt(rssPerEntry, 0)} B/entry` : '–',
        ),
        row('slowest hit while the scan runs (ms)', range(slow, 1), '–', 'n/a'),
        row('origin requests during the restarts', String(originTotal), '0', originTotal === 0 ? 'yes' : 'no'),
      ]
      if (cold !== undefined) {
        rows.push(
          row(
            'cold page cache: first hit (ms after spawn)',
            fmt(cold.firstHitMs, 0),
            '≤ 1000 ms',
            cold.firstHitMs <= 1000 && cold.firstHitStatus.startsWith('200 cachemir; hit') ? 'yes' : 'no',
          ),
        )
        rows.push(
          row(
            'cold page cache: index complete (ms after spawn)',
            fmt(cold.indexMs, 0),
            '≤ 5000 ms',
            cold.indexMs <= 5000 && cold.indexedEntries === ENTRIES ? 'yes' : 'no',
          ),
        )
      }
      return {
        name: this.name,
        notes,
        data: {
          entries: ENTRIES,
          rounds,
          baseDir: where.path,
          tmpfs: where.tmpfs,
          createMs,
          bodyBytes,
          indexMemory: mem,
          listenMs: L,
          emptyListenMs: LE,
          firstHitMs: H,
          firstHitAfterListenMs: HL,
          indexCompleteMs: I,
          rssAfterScanMiB: RB ?? null,
          emptyRssMiB: RE ?? null,
          rssBytesPerEntry: rssPerEntry,
          slowestDuringScanMs: slow,
          originRequests: originTotal,
          starts: big,
          emptyStarts: empty,
          cold: cold ?? null,
        },
        rows,
      }
    } finally {
      // A child still writing entries must be gone before its directory is removed.
      await Promise.all(
        [...children].map((c) =>
          c.exitCode !== null || c.signalCode !== null
            ? Promise.resolve()
            : new Promise<void>((resolve) => {
                c.once('exit', () => resolve())
                c.kill('SIGKILL')
              }),
        ),
      )
      await Promise.all(procs.map((p) => p.stop()))
      await agent.close()
      await rm(dir, { recursive: true, force: true })
      process.off('exit', removeNow)
      process.off('SIGINT', exitOnSignal)
      process.off('SIGTERM', exitOnSignal)
    }
  },
}
