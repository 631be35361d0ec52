// bench/scenarios/packages.ts
// Scenario 9: `npm install` through the mirror. A local registry (bench/lib/npm-registry.ts) adds
// 50 ms to every answer; a project with 30 direct dependencies pulls in 120 packages. Each round
// installs directly from the registry, then through a fresh cachemir (--profile npm) twice: cold
// (its cache empty) and warm (filled by the cold run). npm's own cache is empty every time.
// Then, on another fresh mirror: single misses timed against the origin, and the RSS growth while
// a 50 MiB document is rewritten (identity and gzip, miss and hit).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from 'undici'
import { npmInstall, npmVersion, registryCounts, resetRegistry, startNpmRegistry, type InstallResult } from '../lib/npm-install.js'
import { BIG_NAME, directDependencies, documentPath, generatePackages, SCOPED_NAME, tarballPath } from '../lib/npm-packages.js'
import { missTimes, NPM_DOCUMENT_HEADERS, readDocument, timedGet, warmMirror, type ReadDocument, type Timed } from '../lib/npm-probes.js'
import type { Options, Row, Scenario, ScenarioResult } from '../lib/types.js'
import { fmt, logNote, median, MiB, procStatusBytes, rssSampler, sleep, spread, startCachemir, type Proc } from '../lib/util.js'

const DELAY_MS = 50
const BIG_BYTES = 50 * MiB
const INSTALL_TIMEOUT_MS = 120_000
const SCENARIO = '9 packages'

type Kind = 'direct' | 'cold' | 'warm'

interface Run {
  round: number
  kind: Kind
  ms: number
  exitCode: number | null
  installed: number
  resolvedHere: number
  /** Registry requests during the run: distinct URLs (with representation), total, most for one URL. */
  urls: number
  requests: number
  maxPerUrl: number
  urlSet: string[]
  npmFetches: InstallResult['fetches']
}

export const packages: Scenario = {
  name: 'packages',
  title: `npm install through the mirror (registry +${DELAY_MS} ms), cold and warm; a ${BIG_BYTES / MiB} MiB document rewritten`,
  async run(opts: Options): Promise<ScenarioResult> {
    const notes: string[] = []
    const version = npmVersion()
    if (version === undefined) {
      notes.push('npm is not on PATH: scenario skipped')
      return { name: this.name, notes, data: {}, rows: [] }
    }
    const rounds = opts.quick ? Math.min(opts.rounds, 2) : opts.rounds
    const set = generatePackages()
    const deps = directDependencies(set)
    const probeNames = (from: number, count: number): string[] =>
      Array.from({ length: count }, (_, i) => `cm-probe-${String(from + i).padStart(3, '0')}`)
    const dir = await mkdtemp(join(tmpdir(), 'cachemir-bench-'))
    const procs: Proc[] = []
    const agent = new Agent({ connections: 1 })
    const runs: Run[] = []
    try {
      const t0 = performance.now()
      const registry = await startNpmRegistry(DELAY_MS, BIG_BYTES)
      procs.push(registry)
      notes.push(`registry ready in ${fmt((performance.now() - t0) / 1000)} s (builds ${set.length} packages and the large document)`)

      const install = async (round: number, kind: Kind, target: string): Promise<Run> => {
        await resetRegistry(registry)
        const r = await npmInstall(join(dir, `${kind}-${round}`), target, deps, INSTALL_TIMEOUT_MS)
        const { requests } = await registryCounts(registry)
        const counts = Object.values(requests)
        if (r.exitCode !== 0) notes.push(`WARN ${kind} install of round ${round} exited ${String(r.exitCode)}: ${r.output.slice(-300)}`)
        return {
          round,
          kind,
          ms: r.ms,
          exitCode: r.exitCode,
          installed: r.installed,
          resolvedHere: r.resolvedHere,
          urls: counts.length,
          requests: counts.reduce((a, b) => a + b, 0),
          maxPerUrl: counts.length > 0 ? Math.max(...counts) : 0,
          urlSet: Object.keys(requests).sort(),
          npmFetches: r.fetches,
        }
      }

      // Warm-up, not counted: npm's own files into the page cache, the registry's code paths run.
      await install(-1, 'direct', registry.url)
      for (let round = 0; round < rounds; round++) {
        const mirror = await startCachemir([
          '--upstream',
          `${registry.url}/`,
          '--profile',
          'npm',
          '--cache-dir',
          join(dir, `cache-${round}`),
        ])
        procs.push(mirror)
        // Its code paths run once on packages no install asks for, so "cold" means an empty cache, not a cold process.
        await warmMirror(mirror.url, probeNames(40 + round * 2, 2), agent)
        const order: Kind[] = round % 2 === 0 ? ['direct', 'cold', 'warm'] : ['cold', 'warm', 'direct']
        for (const kind of order) runs.push(await install(round, kind, kind === 'direct' ? registry.url : mirror.url))
        const note = logNote(`cachemir (round ${round})`, mirror)
        if (note !== undefined) notes.push(note)
        await mirror.stop()
      }

      // A fresh mirror: single misses, the scoped document, then the large document's memory.
      const mirror = await startCachemir(['--upstream', `${registry.url}/`, '--profile', 'npm', '--cache-dir', join(dir, 'cache-memory')])
      procs.push(mirror)
      await warmMirror(mirror.url, probeNames(0, 2), agent)
      const misses = await missTimes(mirror.url, registry.url, probeNames(2, opts.quick ? 20 : 36), agent)
      const scopedDoc = await timedGet(`${mirror.url}/${documentPath(SCOPED_NAME)}`, NPM_DOCUMENT_HEADERS, agent)
      const scopedDirect = await timedGet(`${registry.url}/${documentPath(SCOPED_NAME)}`, NPM_DOCUMENT_HEADERS, agent)
      const scopedTarball = await timedGet(`${mirror.url}/${tarballPath(SCOPED_NAME, '1.0.0')}`, {}, agent)
      const memory = await measureBigDocument(mirror, registry, opts.quick ? 1 : 2)
      const note = logNote('cachemir (memory)', mirror)
      if (note !== undefined) notes.push(note)

      return {
        name: this.name,
        notes: [
          `npm ${version}; every install: a fresh project with ${Object.keys(deps).length} direct dependencies, an empty --cache, empty --userconfig and --globalconfig, --no-audit --no-fund --prefer-online; npm_* variables removed from its environment`,
          `${rounds} round(s) after one uncounted direct install; order per round alternates (direct, cold, warm) and (cold, warm, direct); each round has its own fresh mirror, warmed on 2 probe packages outside the install`,
          ...installNotes(runs),
          ...notes,
        ],
        data: {
          delayMs: DELAY_MS,
          rounds,
          npm: version,
          runs: runs.map(({ urlSet: _u, ...r }) => r),
          misses,
          scoped: { scopedDoc, scopedDirect, scopedTarball },
          memory: memory.gets,
        },
        rows: [...installRows(runs), ...missRows(misses), scopedRow(scopedDoc, scopedDirect, scopedTarball), ...memory.rows],
      }
    } finally {
      await agent.close()
      await Promise.all(procs.map((p) => p.stop()))
      await rm(dir, { recursive: true, force: true })
    }
  },
}

function installNotes(runs: readonly Run[]): string[] {
  const out = runs.map(
    (r) =>
      `round ${r.round} ${r.kind}: ${fmt(r.ms / 1000, 2)} s, exit ${String(r.exitCode)}, ${r.installed} packages (${r.resolvedHere} resolved at the install's registry URL), registry: ${r.requests} requests for ${r.urls} URLs (max ${r.maxPerUrl} per URL); npm fetched ${r.npmFetches.documents.length} documents (median ${fmt(median(r.npmFetches.documents), 0)} ms) and ${r.npmFetches.tarballs.length} tarballs (median ${fmt(median(r.npmFetches.tarballs), 0)} ms, queueing included)`,
  )
  // The cold runs must fetch what the direct runs fetch: the same URLs, each once.
  const direct = runs.find((r) => r.kind === 'direct')?.urlSet.join('\n')
  for (const r of runs.filter((x) => x.kind === 'cold')) {
    if (direct !== undefined && r.urlSet.join('\n') !== direct)
      out.push(`WARN round ${r.round} cold: the mirror asked the registry for other URLs than npm does directly`)
  }
  return out
}

function installRows(runs: readonly Run[]): Row[] {
  const of = (kind: Kind): Run[] => runs.filter((r) => r.kind === kind)
  const seconds = (kind: Kind) => spread(of(kind).map((r) => r.ms / 1000))
  const direct = seconds('direct')
  const ratios = (kind: Kind) =>
    spread(of(kind).map((r) => r.ms / (runs.find((d) => d.kind === 'direct' && d.round === r.round)?.ms ?? NaN)))
  const row = (kind: 'cold' | 'warm', target: number): Row => {
    const s = seconds(kind)
    const q = ratios(kind)
    return {
      scenario: SCENARIO,
      reference: `npm install direct (registry +${DELAY_MS} ms)`,
      metric: `${kind === 'cold' ? 'cold (mirror cache empty)' : 'warm (mirror filled by the cold run)'}: wall time (s); ratio per round, median (min–max)`,
      cachemir: `${fmt(s.median, 2)} (${fmt(s.min, 2)}–${fmt(s.max, 2)})`,
      referenceFigure: `${fmt(direct.median, 2)} (${fmt(direct.min, 2)}–${fmt(direct.max, 2)})`,
      ratio: `${fmt(q.median, 2)}× (${fmt(q.min, 2)}–${fmt(q.max, 2)})`,
      target: `≤ ${target}×`,
      met: q.median <= target ? 'yes' : 'no',
    }
  }
  const cold = of('cold')
  const warm = of('warm')
  const directRuns = of('direct')
  return [
    row('cold', 1.05),
    row('warm', 0.7),
    {
      scenario: SCENARIO,
      reference: 'npm install direct (what npm itself asks the registry)',
      metric: 'cold run: registry requests per distinct URL (max per URL; URLs; requests), per round',
      cachemir: cold.map((r) => `max ${r.maxPerUrl}; ${r.urls}; ${r.requests}`).join(', '),
      referenceFigure: directRuns.map((r) => `max ${r.maxPerUrl}; ${r.urls}; ${r.requests}`).join(', '),
      ratio: '–',
      target: 'exactly 1 each',
      met: cold.every((r) => r.maxPerUrl === 1 && r.requests === r.urls && r.exitCode === 0) ? 'yes' : 'no',
    },
    {
      scenario: SCENARIO,
      reference: '–',
      metric: 'warm run: registry requests, per round',
      cachemir: warm.map((r) => String(r.requests)).join(', '),
      referenceFigure: '–',
      ratio: '–',
      target: '0 (all fresh)',
      met: warm.every((r) => r.requests === 0 && r.exitCode === 0) ? 'yes' : 'no',
    },
    {
      scenario: SCENARIO,
      reference: 'npm install direct',
      metric: 'documents npm fetched (its debug log), per round: cold, warm',
      cachemir: cold.map((r, i) => `${r.npmFetches.documents.length}, ${warm[i]?.npmFetches.documents.length ?? '?'}`).join('; '),
      referenceFigure: directRuns.map((r) => String(r.npmFetches.documents.length)).join(', '),
      ratio: '–',
      target: '–',
      met: 'n/a',
    },
  ]
}

function missRows(m: Awaited<ReturnType<typeof missTimes>>): Row[] {
  const row = (what: string, a: Timed[], b: Timed[]): Row => {
    const total = median(a.map((t) => t.totalMs))
    const direct = median(b.map((t) => t.totalMs))
    const headers = median(a.map((t) => t.headersMs)) - median(b.map((t) => t.headersMs))
    return {
      scenario: SCENARIO,
      reference: `registry direct (+${DELAY_MS} ms)`,
      metric: `one ${what} miss, request to last byte (ms, median of ${a.length}); ratio column = added time (to headers: +${fmt(headers, 2)} ms)`,
      cachemir: fmt(total, 2),
      referenceFigure: fmt(direct, 2),
      ratio: `+${fmt(total - direct, 2)} ms`,
      target: '–',
      met: 'n/a',
    }
  }
  return [row('document (gzip, rewritten)', m.documents.mirror, m.documents.direct), row('tarball', m.tarballs.mirror, m.tarballs.direct)]
}

function scopedRow(doc: Timed, direct: Timed, tarball: Timed): Row {
  return {
    scenario: SCENARIO,
    reference: 'registry direct',
    metric: `scoped package: status of its document (${documentPath(SCOPED_NAME)}) and its tarball through the mirror`,
    cachemir: `document ${doc.status}, tarball ${tarball.status}`,
    referenceFigure: `document ${direct.status}`,
    ratio: '–',
    target: '200, 200',
    met: doc.status === 200 && tarball.status === 200 ? 'yes' : 'no',
  }
}

interface BigGet extends ReadDocument {
  asked: string
  miss: boolean
  /** The mirror's peak RSS during this GET (bytes). */
  peakBytes: number
}

/**
 * RSS of the mirror at rest (after the requests above, settled), then its peak while the large
 * document is fetched: identity and gzip misses (two fills: the registry's answer varies on
 * Accept-Encoding), then `hits` more of each from the cache. Every body is read to the end and
 * checked: no registry URL left, one mirror URL per version.
 */
async function measureBigDocument(mirror: Proc, registry: Proc, hits: number): Promise<{ rows: Row[]; gets: BigGet[] }> {
  await sleep(1000)
  const samples: number[] = []
  for (let i = 0; i < 5; i++) {
    samples.push(procStatusBytes(mirror.pid) ?? NaN)
    await sleep(100)
  }
  const rest = median(samples)
  await resetRegistry(registry)
  const gets: BigGet[] = []
  const needles = [`${registry.url}/`, `${mirror.url}/`]
  for (const [i, encoding] of ['identity', 'gzip', ...Array.from({ length: hits }, () => ['identity', 'gzip']).flat()].entries()) {
    const sampler = rssSampler(mirror.pid, 10)
    const r = await readDocument(`${mirror.url}/${BIG_NAME}`, { accept: 'application/json', 'accept-encoding': encoding }, needles)
    gets.push({ asked: encoding, miss: i < 2, ...r, peakBytes: sampler.stop() ?? NaN })
  }
  const peak = Math.max(...gets.map((g) => g.peakBytes))
  const upstream = Object.values((await registryCounts(registry)).requests).reduce((a, b) => a + b, 0)
  const versions = gets[0]?.found[1] ?? 0
  const clean = gets.every((g) => g.status === 200 && g.found[0] === 0 && g.found[1] === versions && g.bytes === gets[0]?.bytes)
  const growth = (peak - rest) / MiB
  const fmtGet = (g: BigGet): string =>
    `${g.asked} ${g.miss ? 'miss' : 'hit'} ${fmt(g.ms / 1000, 2)} s (${g.contentEncoding}, ${fmt(g.wireBytes / MiB)} MiB, RSS +${fmt((g.peakBytes - rest) / MiB)})`
  return {
    gets,
    rows: [
      {
        scenario: SCENARIO,
        reference: '–',
        metric: `RSS growth while a ${fmt((gets[0]?.bytes ?? 0) / MiB)} MiB document (${versions} versions) is rewritten: peak during ${gets.length} GETs minus at rest (MiB)`,
        cachemir: `${fmt(growth)} (rest ${fmt(rest / MiB)}, peak ${fmt(peak / MiB)})`,
        referenceFigure: '–',
        ratio: '–',
        target: '< 64 MiB',
        met: growth < 64 ? 'yes' : 'no',
      },
      {
        scenario: SCENARIO,
        reference: '–',
        metric: `the same GETs: bodies rewritten completely (no registry URL left, ${versions} mirror URLs each); registry requests`,
        cachemir: `${clean ? 'all' : 'NOT all'}; ${upstream}; ${gets.map(fmtGet).join('; ')}`,
        referenceFigure: '–',
        ratio: '–',
        target: 'all; 2',
        met: clean && upstream === 2 ? 'yes' : 'no',
      },
    ],
  }
}
