// Benchmark runner:  node dist/bench/run.js [--only name,...] [--quick] [--rounds N]
// Runs each scenario (servers on 127.0.0.1, contestants interleaved over rounds), writes
// bench/results/latest.json and prints a Markdown table. No assertions: figures only.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadGenerator } from './lib/loadgen.js'
import { nginxInfo } from './lib/nginx.js'
import type { Row, Scenario, ScenarioResult } from './lib/types.js'
import { ROOT } from './lib/util.js'
import { coldMissTtfb } from './scenarios/cold-miss-ttfb.js'
import { diskHit } from './scenarios/disk-hit.js'
import { hotSmallHit } from './scenarios/hot-small-hit.js'
import { largeHit } from './scenarios/large-hit.js'
import { slowReaders } from './scenarios/slow-readers.js'
import { restartBigCache } from './scenarios/restart-big-cache.js'
import { thunderingHerd } from './scenarios/thundering-herd.js'
import { multiCore } from './scenarios/multi-core.js'
import { packages } from './scenarios/packages.js'

/** In the issues' numbering: 1 to 9. */
const SCENARIOS: Scenario[] = [
  hotSmallHit,
  diskHit,
  largeHit,
  coldMissTtfb,
  thunderingHerd,
  slowReaders,
  restartBigCache,
  multiCore,
  packages,
]

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help === true) {
  console.log(`node dist/bench/run.js [--only ${SCENARIOS.map((s) => s.name).join(',')}] [--quick] [--rounds N]`)
  process.exit(0)
}
const only = values.only
  ?.split(',')
  .map((s) => s.trim())
  .filter(Boolean)
const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? []
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`)
  process.exit(2)
}
const rounds = values.rounds !== undefined ? Number(values.rounds) : 3
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
  console.error('--rounds must be an integer from 1 to 20')
  process.exit(2)
}
const quick = values.quick === true
const selected = SCENARIOS.filter((s) => only === undefined || only.includes(s.name))

// Whole-run watchdog: every run is bounded. About twice a run of all nine scenarios on 2 busy
// cores (scenario 9's npm installs alone take 1 to 2 minutes).
const watchdog = setTimeout(
  () => {
    console.error('bench: watchdog fired (run too long); exiting')
    process.exit(1)
  },
  (quick ? 480 : 720) * 1000,
)
watchdog.unref()

const gen = loadGenerator()
// Decided (and, when allowed, installed) before any timing starts.
const nginx = nginxInfo()
const started = Date.now()
console.error(
  `cachemir bench: ${selected.map((s) => s.name).join(', ')}; ${rounds} rounds${quick ? ', quick' : ''}; load generator: ${gen.name} (${gen.note || 'on PATH'}); nginx: ${nginx.version || 'none'} (${nginx.note})`,
)
const results: ScenarioResult[] = []
const failures: { name: string; error: string }[] = []
for (const s of selected) {
  const t0 = Date.now()
  console.error(`-- ${s.name}: ${s.title}`)
  try {
    const r = await s.run({ quick, rounds })
    results.push(r)
    for (const n of r.notes) console.error(`   ${n}`)
  } catch (e) {
    failures.push({ name: s.name, error: e instanceof Error ? (e.stack ?? e.message) : String(e) })
    console.error(`   FAILED: ${String(e)}`)
  }
  console.error(`   ${((Date.now() - t0) / 1000).toFixed(1)} s`)
}

const rows: Row[] = results.flatMap((r) => r.rows)
const esc = (s: string): string => s.replace(/\|/g, '\\|')
const table = [
  '| Scenario | Reference | Metric | cachemir | Reference figure | Ratio | Target | Met |',
  '|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) => `| ${[r.scenario, r.reference, r.metric, r.cachemir, r.referenceFigure, r.ratio, r.target, r.met].map(esc).join(' | ')} |`,
  ),
  ...failures.map((f) => `| ${f.name} | – | – | – | – | – | – | failed to run |`),
].join('\n')

const summary = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? '?',
  quick,
  rounds,
  loadGenerator: gen,
  nginx,
  seconds: (Date.now() - started) / 1000,
  figures: 'median over rounds (min–max)',
  rows,
  scenarios: results,
  failures,
}
const dir = join(ROOT, 'bench', 'results')
mkdirSync(dir, { recursive: true })
writeFileSync(join(dir, 'latest.json.tmp'), `${JSON.stringify(summary, null, 2)}\n`)
renameSync(join(dir, 'latest.json.tmp'), join(dir, 'latest.json'))

console.log(
  `Load generator: ${gen.name === 'wrk' ? 'wrk' : 'built-in undici closed-loop generator (separate child process)'}${gen.note ? ` — ${gen.note}` : ''}. nginx: ${nginx.path !== undefined ? `${nginx.version} (${nginx.note})` : `${nginx.note}: nginx rows skipped`}. Figures: median over ${rounds} rounds (min–max); ratio = cachemir ÷ reference. Node ${process.version}, ${cpus().length} CPUs.\n`,
)
console.log(table)
console.error(`bench: ${summary.seconds.toFixed(1)} s; wrote bench/results/latest.json`)
process.exitCode = failures.length > 0 ? 1 : 0
