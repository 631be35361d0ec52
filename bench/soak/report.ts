// bench/soak/report.ts
// The soak's output: progress lines, the summary (printed and as JSON), and the pass/fail verdict.

import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { formatBytes, parseSize } from '../../src/util/units.js'
import { percentile, ROOT } from '../lib/util.js'
import { formatCounts } from './counts.js'
import type { Load } from './load.js'
import type { Options } from './options.js'
import type { Setup, Teardown } from './setup.js'

/** Where the last run's summary is written (replaced through a .tmp file and a rename). */
export const RESULTS = join(ROOT, 'bench', 'results', 'soak-latest.json')

/** A progress line on stderr; stdout carries the summary only. */
export const say = (line: string): void => void process.stderr.write(`soak: ${line}\n`)

/** Everything the run measured, and the verdict: exit 1 for a lost object or a mirror that crashed or hung. */
export function summarize(opts: Options, setup: Setup, load: Load, down: Teardown, startedAt: number) {
  const { objects, incidents, good, flaky, mirror } = setup
  const { stats, crashed } = load
  const failures: string[] = []
  const warnings: string[] = []
  if (stats.lost > 0) failures.push(`${stats.lost} object(s) lost: complete responses whose bytes differ from the origin's`)
  if (crashed !== undefined) failures.push(`mirror crashed during the run (${crashed})`)
  else if (down.shutdown !== 'code 0') failures.push(`mirror did not stop cleanly on SIGTERM (${down.shutdown})`)
  for (const [kind, e] of Object.entries(stats.errors)) {
    if (e.count > e.explained) warnings.push(`${e.count - e.explained} ${kind} error(s) not explained by anything the origin did`)
  }
  const maxDiskBytes = parseSize(opts.maxDisk) ?? Infinity
  if (down.disk.bodyBytes > maxDiskBytes)
    warnings.push(`cache bodies on disk (${formatBytes(down.disk.bodyBytes)}) exceed --max-disk ${opts.maxDisk}`)
  if (stats.verifiedResponses === 0) warnings.push('no response was verified')
  const exitCode = failures.length > 0 ? 1 : 0
  const sizes = objects.map((o) => o.body.length)
  const originRequests = good.requests() + flaky.requests
  return {
    version: 1,
    startedAt: new Date(startedAt).toISOString(),
    node: process.version,
    options: opts,
    durationMs: { soak: load.soakMs, total: Date.now() - startedAt },
    objects: {
      count: objects.length,
      totalBytes: sizes.reduce((a, b) => a + b, 0),
      minBytes: Math.min(...sizes),
      maxBytes: Math.max(...sizes),
      noStore: objects.filter((o) => o.headers['cache-control'] === 'no-store').length,
      withEtag: objects.filter((o) => o.validators.etag !== undefined).length,
      withLastModified: objects.filter((o) => o.validators.lastModified !== undefined).length,
    },
    faults: {
      stalls: { enabled: setup.stalls.enabled, note: setup.stallNote },
      flakyPlans: flaky.plans,
      cutsByOrigin: incidents.cuts,
      statusesByOrigin: incidents.statuses,
      refusedWindows: {
        count: incidents.refusals.length,
        totalMs: incidents.refusals.reduce((n, w) => n + (Number.isFinite(w.to) ? w.to - w.from : 0), 0),
      },
    },
    clients: {
      requests: stats.requests,
      byStatus: stats.byStatus,
      byCache: stats.byCache,
      byCacheDetail: stats.byCacheDetail,
      byAction: stats.byAction,
      errors: stats.errors,
      verifiedBytes: stats.verifiedBytes,
      verifiedResponses: stats.verifiedResponses,
      headChecked: stats.headChecked,
      notModified: stats.notModified,
      clientCancels: stats.clientCancels,
      cancelledAtEnd: stats.cancelledAtEnd,
      latencyMs: latencyPercentiles(stats.durationsMs),
    },
    lost: { count: stats.lost, samples: stats.lostSamples },
    unexplainedSamples: stats.unexplainedSamples,
    mirror: {
      pid: mirror.pid,
      args: setup.mirrorArgs,
      rssBytes: load.memory,
      fds: { start: load.fdsStart ?? null, end: down.fdsEnd ?? null },
      disk: { ...down.disk, maxDiskBytes },
      health: down.health,
      log: mirror.log,
      shutdown: down.shutdown,
      crashed: crashed !== undefined,
      outputTail: exitCode === 0 ? undefined : mirror.tail(),
    },
    origin: {
      urls: { good: good.url, flaky: flaky.url },
      good: { requests: good.requests(), closedByMirror: good.closedByMirror() },
      flaky: { requests: flaky.requests, closedByMirror: flaky.closedByMirror },
      total: originRequests,
      clientRequests: stats.requests,
      ratio: stats.requests === 0 ? null : originRequests / stats.requests,
    },
    result: { exitCode, failures, warnings },
  }
}

export type Summary = ReturnType<typeof summarize>

/** One line per route from the health endpoint's passive upstream health, when it reports one. */
function upstreamHealth(routes: unknown, urls: { good: string; flaky: string }): string[] {
  if (!Array.isArray(routes)) return []
  return routes.map((route: { prefix?: unknown; upstreams?: unknown }) => {
    const upstreams = Array.isArray(route.upstreams) ? (route.upstreams as Record<string, unknown>[]) : []
    const text = upstreams.map((u) => {
      const url = String(u['url'])
      const name = url.startsWith(urls.good) ? 'good' : url.startsWith(urls.flaky) ? 'flaky' : url
      return `${name} ${String(u['state'])}, ${String(u['requests'])} requests, ${String(u['failures'])} failed`
    })
    return `  route ${String(route.prefix)}        ${text.join('; ')}`
  })
}

/** Latency percentiles by nearest rank (bench/lib's percentile), or null with no samples. */
function latencyPercentiles(values: readonly number[]): { p50: number; p95: number; p99: number; max: number } | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), max: percentile(sorted, 100) }
}

function formatSummary(s: Summary): string {
  const c = s.clients
  const errors = Object.entries(c.errors).sort((a, b) => b[1].count - a[1].count)
  const errorText = errors.length === 0 ? 'none' : errors.map(([k, e]) => `${k} ${e.count} (${e.explained} explained)`).join(', ')
  const h = (s.mirror.health ?? {}) as { store?: unknown; fills?: unknown; upstream?: unknown; routes?: unknown }
  const lat = c.latencyMs
  const size = (n: number): string => (Number.isFinite(n) ? formatBytes(n) : '?')
  const refused = s.faults.refusedWindows
  return [
    '',
    `cachemir soak: ${(s.durationMs.soak / 1000).toFixed(1)} s of load (${(s.durationMs.total / 1000).toFixed(1)} s in all), ${s.options.clients} clients, seed ${s.options.seed}`,
    `objects            ${s.objects.count}, ${formatBytes(s.objects.totalBytes)} (${formatBytes(s.objects.minBytes)} … ${formatBytes(s.objects.maxBytes)}); ${s.objects.withEtag} with ETag, ${s.objects.withLastModified} with Last-Modified, ${s.objects.noStore} no-store`,
    `mirror             ${s.mirror.args.join(' ')}; routes /m/ = [flaky, good], /d/ = [flaky]`,
    `flaky origin       ${formatCounts(s.faults.flakyPlans)}; ${refused.count} refused windows (${(refused.totalMs / 1000).toFixed(1)} s)`,
    `stalls             ${s.faults.stalls.note}`,
    '',
    `requests (clients) ${c.requests}: ${c.verifiedResponses} bodies verified, ${c.notModified} 304s, ${c.headChecked} HEADs checked, ${c.clientCancels} cancelled by the client on purpose, ${c.cancelledAtEnd} cancelled at the end (drain over or mirror gone)`,
    `  by status        ${formatCounts(c.byStatus)}`,
    `  by cache-status  ${formatCounts(c.byCache)}`,
    `  in detail        ${formatCounts(c.byCacheDetail, 10)}`,
    `  by action        ${formatCounts(c.byAction)}`,
    `  latency 200/206  ${lat === null ? '-' : `p50 ${lat.p50} ms, p95 ${lat.p95} ms, p99 ${lat.p99} ms, max ${lat.max} ms`}`,
    `errors by kind     ${errorText}`,
    `bytes verified     ${formatBytes(c.verifiedBytes)} (${c.verifiedBytes} bytes, sha256 against the origin's)`,
    `objects lost       ${s.lost.count}`,
    `mirror RSS         peak ${size(s.mirror.rssBytes.peakVmHWM)} (VmHWM); ${size(s.mirror.rssBytes.start)} at start, ${size(s.mirror.rssBytes.end)} at end; fds ${s.mirror.fds.start ?? '?'} -> ${s.mirror.fds.end ?? '?'}`,
    `mirror disk        ${formatBytes(s.mirror.disk.bodyBytes)} in ${s.mirror.disk.bodies} bodies (budget ${formatBytes(s.mirror.disk.maxDiskBytes)}), ${s.mirror.disk.tempFiles} temp files`,
    `mirror health      store ${JSON.stringify(h.store ?? null)}`,
    `                   fills ${JSON.stringify(h.fills ?? null)}, upstream ${JSON.stringify(h.upstream ?? null)}`,
    ...upstreamHealth(h.routes, s.origin.urls),
    `mirror log         ${s.mirror.log.completed} request lines (${s.mirror.log.completedAborted} aborted); warn: ${formatCounts(s.mirror.log.warn, 6)}; error: ${formatCounts(s.mirror.log.error, 6)}`,
    `mirror exit        ${s.mirror.shutdown}`,
    `origin requests    ${s.origin.total} (good ${s.origin.good.requests}, flaky ${s.origin.flaky.requests}) for ${s.origin.clientRequests} client requests${s.origin.ratio === null ? '' : ` (${(s.origin.ratio * 100).toFixed(1)} %)`}`,
    `                   responses the mirror closed early: good ${s.origin.good.closedByMirror}, flaky ${s.origin.flaky.closedByMirror}`,
    '',
    ...s.result.failures.map((f) => `FAIL  ${f}`),
    ...s.result.warnings.map((w) => `WARN  ${w}`),
    `result             ${s.result.exitCode === 0 ? 'PASS' : 'FAIL'} (exit ${s.result.exitCode})`,
    '',
  ].join('\n')
}

/** Prints the summary and writes it to RESULTS. */
export function writeSummary(summary: Summary): void {
  process.stdout.write(formatSummary(summary))
  mkdirSync(dirname(RESULTS), { recursive: true })
  writeFileSync(`${RESULTS}.tmp`, `${JSON.stringify(summary, null, 2)}\n`)
  renameSync(`${RESULTS}.tmp`, RESULTS)
  process.stdout.write(`written to ${RESULTS}\n`)
}
