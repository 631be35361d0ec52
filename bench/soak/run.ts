// bench/soak/run.ts
// Soak test entry: the real cachemir process between a flaky and a good origin, under random
// concurrent clients that check every body against the origin's sha256. Prints a summary, writes
// bench/results/soak-latest.json, exits 1 if an object was lost or the mirror crashed, 2 for a bad
// option. The only file here that exits the process.
//
// The bench process hosts both origins and all clients (one thread); the mirror is a child
// process, so its RSS and file descriptors are its own. See bench/README.md, "Soak test".

import { formatBytes } from '../../src/util/units.js'
import { DRAIN_MS, runLoad } from './load.js'
import { readOptions, USAGE, type Options } from './options.js'
import { say, summarize, writeSummary } from './report.js'
import { setUp, tearDown } from './setup.js'

async function main(opts: Options): Promise<number> {
  const startedAt = Date.now()
  const setup = await setUp(opts)
  say(
    `${setup.objects.length} objects, ${formatBytes(setup.objects.reduce((n, o) => n + o.body.length, 0))}; load for ${opts.seconds} s with ${opts.clients} clients`,
  )
  // A hard bound on the whole run, whatever hangs.
  const watchdogMs = (opts.seconds + 90) * 1000 + DRAIN_MS
  const watchdog = setTimeout(() => {
    say(`watchdog: still running after ${watchdogMs / 1000} s; killing the mirror`)
    setup.mirror.child.kill('SIGKILL')
    process.exit(1)
  }, watchdogMs)
  watchdog.unref()

  const load = await runLoad(opts, setup)
  const down = await tearDown(setup, load)
  const summary = summarize(opts, setup, load, down, startedAt)
  writeSummary(summary)
  return summary.result.exitCode
}

let options: Options | 'help'
try {
  options = readOptions(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`soak: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`)
  process.exit(2)
}
if (options === 'help') {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
main(options).then(
  (code) => {
    process.exitCode = code
    // Everything is closed; this only guards against a stray handle keeping the process alive.
    setTimeout(() => process.exit(code), 5000).unref()
  },
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  },
)
