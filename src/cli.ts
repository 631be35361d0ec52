// src/cli.ts
// argv -> config -> server -> signals. The only file that calls process.exit.
//
// Exit codes: 0 clean stop (including SIGTERM/SIGINT), 1 runtime failure, 2 bad configuration or usage.

import path from 'node:path'
import yargs, { type Argv } from 'yargs'
import { adminRequest, serverTarget } from './commands/admin-client.js'
import { listEntries, purgeOffline, verifyCache } from './commands/cache-dir.js'
import { formatStats } from './commands/stats.js'
import { readWarmList, warm } from './commands/warm.js'
import { formatProfiles } from './commands/profiles.js'
import { PROFILES } from './profiles/profiles.js'
import { hideBin } from 'yargs/helpers'
import type { Logger } from 'pino'
import { defaultCacheDir, resolveConfig, ENV_VARS, type ConfigInput } from './config.js'
import { isCachemirError } from './errors.js'
import { createLogger } from './log.js'
import { startMirror, type Mirror } from './server.js'
import cluster from 'node:cluster'
import { Peers, workerIdentity } from './cluster/peers.js'
import { runPrimary } from './cluster/primary.js'

const EXIT_RUNTIME = 1
const EXIT_CONFIG = 2

function fail(message: string, code: number): never {
  process.stderr.write(`cachemir: ${message}\n`)
  process.exit(code)
}

async function serve(args: ConfigInput): Promise<void> {
  let config
  try {
    config = resolveConfig(args, process.env)
  } catch (err) {
    fail(isCachemirError(err) ? err.message : String(err), EXIT_CONFIG)
  }
  const log = createLogger(config.logLevel, undefined, config.logFormat)
  // `--workers N`: this process only supervises; the workers run this same command.
  if (config.workers > 1 && cluster.isPrimary) {
    const code = await runPrimary(config, log)
    exitAfterFlush(log, code)
    return
  }
  const identity = cluster.isWorker ? workerIdentity(process.env) : undefined
  const peers = identity === undefined ? undefined : new Peers(identity, log.child({ component: 'peers' }), config.name)
  // Signals are handled from the start: one that arrives while the server is still starting
  // stops it as soon as it is up, with the same graceful path.
  let mirror: Mirror | undefined
  let stopping: string | undefined
  const stop = (signal: string): void => {
    if (stopping !== undefined) return
    stopping = signal
    if (mirror === undefined) return
    log.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down')
    mirror.close(config.shutdownGraceMs).then(
      () => exitAfterFlush(log, 0),
      (err: unknown) => {
        log.error({ err }, 'error during shutdown')
        exitAfterFlush(log, EXIT_RUNTIME)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  try {
    mirror = await startMirror(config, log, peers === undefined ? {} : { peers })
  } catch (err) {
    log.flush()
    fail(
      err instanceof Error ? err.message : String(err),
      isCachemirError(err) && err.code === 'CACHEMIR_CONFIG_INVALID' ? EXIT_CONFIG : EXIT_RUNTIME,
    )
  }
  if (stopping !== undefined) {
    const signal = stopping
    stopping = undefined
    stop(signal)
  }
}

function exitAfterFlush(log: Logger, code: number): void {
  log.flush(() => process.exit(code))
}

const envNote = (key: keyof typeof ENV_VARS): string => `[env ${ENV_VARS[key]}]`

/** Runs a command other than serve: a failure is one line on stderr and exit 1 (2 for bad configuration). */
function runCommand(work: () => Promise<void>): Promise<void> {
  return work().catch((err: unknown) =>
    fail(
      err instanceof Error ? err.message : String(err),
      isCachemirError(err) && err.code === 'CACHEMIR_CONFIG_INVALID' ? EXIT_CONFIG : EXIT_RUNTIME,
    ),
  )
}

function adminOptions<T>(y: Argv<T>) {
  return y
    .option('server', {
      type: 'string',
      describe: 'The running mirror, e.g. http://mirror.lan:8080 [env CACHEMIR_SERVER] (default: http:// + --listen)',
    })
    .option('listen', { type: 'string', describe: `The mirror's listen address, when --server is not given ${envNote('listen')}` })
    .option('admin-token', { type: 'string', describe: `The admin token, when the mirror has one ${envNote('adminToken')}` })
}

function cacheDirOptions<T>(y: Argv<T>) {
  return y.option('cache-dir', { type: 'string', describe: `The cache directory ${envNote('cacheDir')}` })
}

function cacheDirOf(argv: { 'cache-dir'?: string | undefined }): string {
  const dir = argv['cache-dir'] ?? (process.env['CACHEMIR_CACHE_DIR']?.trim() || undefined)
  return dir === undefined ? defaultCacheDir(process.env) : path.resolve(dir)
}

await yargs(hideBin(process.argv))
  .scriptName('cachemir')
  .usage('$0 <command> [options]')
  .command(
    ['serve', '$0'],
    'Start the caching mirror',
    (y) =>
      y
        .option('upstream', {
          type: 'string',
          array: true,
          describe: `Upstream base URL; repeat for equivalent mirrors, tried in order ${envNote('upstream')}`,
        })
        .option('listen', { type: 'string', describe: `HOST:PORT to listen on (default 127.0.0.1:8080) ${envNote('listen')}` })
        .option('cache-dir', {
          type: 'string',
          describe: `Cache directory (default $XDG_CACHE_HOME/cachemir or ~/.cache/cachemir) ${envNote('cacheDir')}`,
        })
        .option('max-disk', { type: 'string', describe: `Disk budget for cached bodies, e.g. 10GiB (default 10GiB) ${envNote('maxDisk')}` })
        .option('max-memory', { type: 'string', describe: `Memory budget, e.g. 256MiB (default 256MiB) ${envNote('maxMemory')}` })
        .option('config', { type: 'string', describe: `JSON config file with routes and rules ${envNote('config')}` })
        .option('log-level', {
          type: 'string',
          describe: `fatal, error, warn, info, debug, trace or silent (default info) ${envNote('logLevel')}`,
        })
        .option('offline', { type: 'boolean', describe: `Serve only from cache; never contact an upstream ${envNote('offline')}` })
        .option('shutdown-grace', {
          type: 'string',
          describe: `After SIGTERM, how long in-flight responses may finish (default 10s) ${envNote('shutdownGrace')}`,
        })
        .option('ca-file', { type: 'string', describe: `PEM file of extra CAs trusted for https upstreams ${envNote('caFile')}` })
        .option('connect-timeout', { type: 'string', describe: `Upstream connect timeout (default 10s) ${envNote('connectTimeout')}` })
        .option('headers-timeout', {
          type: 'string',
          describe: `Upstream response headers timeout (default 30s) ${envNote('headersTimeout')}`,
        })
        .option('idle-timeout', { type: 'string', describe: `Longest upstream body silence (default 60s) ${envNote('idleTimeout')}` })
        .option('workers', {
          type: 'string',
          describe: `Server processes sharing the port and the cache, 1-64 or auto (default 1) ${envNote('workers')}`,
        })
        .option('name', { type: 'string', describe: `This node's name in Cache-Status (default cachemir) ${envNote('name')}` })
        .option('profile', {
          type: 'string',
          describe: `Ecosystem profile of the --upstream route: ${[...PROFILES.keys()].join(', ')} ${envNote('profile')}`,
        })
        .option('proxy-allow', {
          type: 'string',
          describe: `Also act as an HTTP proxy for these hosts (host[:port] or https://host, comma-separated) ${envNote('proxyAllow')}`,
        })
        .option('connect-allow', {
          type: 'string',
          describe: `CONNECT tunnels (uncached) allowed to these host:port pairs; others are refused ${envNote('connectAllow')}`,
        })
        .option('log-format', {
          type: 'string',
          describe: `json (default) or pretty, pino-pretty's lines for a terminal ${envNote('logFormat')}`,
        })
        .option('sync-every', {
          type: 'string',
          describe: `Revalidate every cached entry with its upstream this often, e.g. 6h (at least 1s) ${envNote('syncEvery')}`,
        })
        .option('admin-token', {
          type: 'string',
          describe: `Bearer token for the admin API's state-changing endpoints; without one they answer loopback only ${envNote('adminToken')}`,
        })
        .option('public-url', {
          type: 'string',
          describe: `The mirror's base URL in rewritten metadata (default: the scheme and Host the client used) ${envNote('publicUrl')}`,
        }),
    (argv) =>
      serve({
        upstream: argv.upstream,
        listen: argv.listen,
        cacheDir: argv['cache-dir'],
        maxDisk: argv['max-disk'],
        maxMemory: argv['max-memory'],
        config: argv.config,
        logLevel: argv['log-level'],
        offline: argv.offline,
        shutdownGrace: argv['shutdown-grace'],
        caFile: argv['ca-file'],
        connectTimeout: argv['connect-timeout'],
        headersTimeout: argv['headers-timeout'],
        idleTimeout: argv['idle-timeout'],
        workers: argv.workers,
        name: argv.name,
        profile: argv.profile,
        publicUrl: argv['public-url'],
        adminToken: argv['admin-token'],
        syncEvery: argv['sync-every'],
        logFormat: argv['log-format'],
        proxyAllow: argv['proxy-allow'],
        connectAllow: argv['connect-allow'],
      }),
  )
  .command(
    'stats',
    "Print the running mirror's figures",
    (y) => adminOptions(y),
    (argv) => runCommand(async () => console.log(await formatStats(serverTarget(argv, process.env)))),
  )
  .command(
    'purge [paths..]',
    'Remove entries from the running mirror: PATH..., --prefix P or --all',
    (y) =>
      adminOptions(y)
        .positional('paths', {
          type: 'string',
          array: true,
          describe: 'Mirror paths to purge, e.g. /debian/pool/main/h/hello_1.0_amd64.deb',
        })
        .option('prefix', { type: 'string', describe: 'Purge every entry under this path prefix' })
        .option('all', { type: 'boolean', describe: 'Purge everything' })
        .option('offline', { type: 'boolean', describe: "Remove from a stopped server's cache directory instead" })
        .option('cache-dir', { type: 'string', describe: `With --offline: the cache directory ${envNote('cacheDir')}` }),
    (argv) =>
      runCommand(async () => {
        const paths = argv.paths ?? []
        const chosen = [paths.length > 0, argv.prefix !== undefined, argv.all === true].filter(Boolean).length
        if (chosen !== 1) fail('purge: give PATH..., --prefix P or --all (exactly one)', EXIT_CONFIG)
        const body = paths.length > 0 ? { paths } : argv.prefix !== undefined ? { prefix: argv.prefix } : { all: true }
        if (argv.offline === true) {
          console.log(`removed ${await purgeOffline(cacheDirOf(argv), body)}`)
          return
        }
        const answer = (await adminRequest(serverTarget(argv, process.env), 'purge', 'POST', body)) as { removed: number }
        console.log(`removed ${answer.removed}`)
      }),
  )
  .command(
    'warm [items..]',
    'Prefetch paths or URLs through the running mirror (the same fills as live traffic)',
    (y) =>
      adminOptions(y)
        .positional('items', { type: 'string', array: true, describe: 'Mirror paths or URLs' })
        .option('from', { type: 'string', describe: 'A file of paths or URLs, one a line, or an npm package-lock.json; - for stdin' })
        .option('concurrency', { type: 'number', default: 4, describe: 'Requests at a time (1-64)' })
        .option('upstream', {
          type: 'string',
          array: true,
          describe: 'Upstreams of the catch-all route, to map URLs on them onto the mirror',
        })
        .option('config', { type: 'string', describe: "The config file, to map URLs on its routes' upstreams onto the mirror" }),
    (argv) =>
      runCommand(async () => {
        const concurrency = argv.concurrency
        if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) fail('--concurrency: expected 1 to 64', EXIT_CONFIG)
        // yargs hands over `--from -` (stdin) as ''.
        const from = argv.from === '' ? '-' : argv.from
        const items = [...(argv.items ?? []), ...(from === undefined ? [] : await readWarmList(from))]
        if (items.length === 0) fail('warm: give paths or URLs, or --from FILE', EXIT_CONFIG)
        const routes =
          argv.config !== undefined || argv.upstream !== undefined
            ? resolveConfig({ config: argv.config, upstream: argv.upstream }, {}).routes
            : []
        const report = await warm(serverTarget(argv, process.env), items, concurrency, routes)
        for (const f of report.failed) console.log(`failed: ${f.item} (${f.reason})`)
        console.log(`warmed ${report.done}, failed ${report.failed.length}, ${report.bytes} bytes`)
        if (report.failed.length > 0) process.exitCode = EXIT_RUNTIME
      }),
  )
  .command(
    'sync',
    'Revalidate every cached entry (or those under --prefix) against its upstream',
    (y) => adminOptions(y).option('prefix', { type: 'string', describe: 'Only entries under this path prefix' }),
    (argv) =>
      runCommand(async () => {
        const query = argv.prefix === undefined ? '' : `?prefix=${encodeURIComponent(argv.prefix)}`
        const r = (await adminRequest(serverTarget(argv, process.env), `sync${query}`, 'POST', {})) as Record<string, number>
        console.log(
          `unchanged ${r['unchanged']}, updated ${r['updated']}, gone ${r['gone']}, failed ${r['failed']}, skipped ${r['skipped']}`,
        )
        if ((r['failed'] ?? 0) > 0) process.exitCode = EXIT_RUNTIME
      }),
  )
  .command(
    'ls',
    'List what the cache directory holds',
    (y) =>
      cacheDirOptions(y)
        .option('prefix', { type: 'string', describe: 'Only entries under this path prefix' })
        .option('json', { type: 'boolean', describe: 'One JSON object per line' }),
    (argv) =>
      runCommand(async () => {
        for (const e of await listEntries(cacheDirOf(argv), argv.prefix ?? '')) {
          console.log(argv.json === true ? JSON.stringify(e) : `${e.status} ${String(e.bytes).padStart(12)} ${e.storedAt} ${e.url}`)
        }
      }),
  )
  .command(
    'verify',
    'Check every stored body against its length and digest; remove and name the damaged ones',
    (y) => cacheDirOptions(y),
    (argv) =>
      runCommand(async () => {
        const report = await verifyCache(cacheDirOf(argv))
        for (const d of report.damaged) console.log(`damaged: ${d.url} (${d.reason}); removed`)
        console.log(`checked ${report.checked}, damaged ${report.damaged.length}`)
        if (report.damaged.length > 0) process.exitCode = EXIT_RUNTIME
      }),
  )
  .command(
    'profiles',
    'List the ecosystem profiles and their cache rules',
    (y) => y,
    () => console.log(formatProfiles()),
  )
  .strict()
  .help()
  .version()
  .fail((message, err) => fail(message ?? err?.message ?? 'invalid command line', EXIT_CONFIG))
  .parseAsync()
