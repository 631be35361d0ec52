// src/cli.ts
// argv -> config -> server -> signals. The only file that calls process.exit.
//
// Exit codes: 0 clean stop (including SIGTERM/SIGINT), 1 runtime failure, 2 bad configuration or usage.

import yargs from 'yargs'
import { formatProfiles } from './commands/profiles.js'
import { PROFILES } from './profiles/profiles.js'
import { hideBin } from 'yargs/helpers'
import type { Logger } from 'pino'
import { resolveConfig, ENV_VARS, type ConfigInput } from './config.js'
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
  const log = createLogger(config.logLevel)
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
        proxyAllow: argv['proxy-allow'],
        connectAllow: argv['connect-allow'],
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
