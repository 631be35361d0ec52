// src/config.ts
// The Config type, its DEFAULTS, and resolveConfig(): flags > environment > config file > defaults.

import os from 'node:os'
import path from 'node:path'
import { ConfigError } from './errors.js'
import { profileNamed } from './profiles/profiles.js'
import { checkConnectTargets, checkProxyHosts } from './config-proxy.js'
import type { Config, Timeouts } from './config-types.js'
import { readConfigFile, type FileSettings, type RouteSpec } from './config-file.js'
import { resolveUpstreamAuth } from './config-upstream-auth.js'
import {
  checkBoolean,
  checkDir,
  checkDuration,
  checkListen,
  checkLogLevel,
  checkName,
  checkAdminToken,
  checkSyncEvery,
  checkLogFormat,
  checkProfile,
  checkPublicUrl,
  checkReadableFile,
  checkSize,
  checkUpstreams,
  checkWorkers,
  DEFAULT_HOST,
  type Given,
} from './config-values.js'

export type { CacheMode, CacheRule, Config, LogLevel, Route, TimeoutOverrides, Timeouts } from './config-types.js'

/**
 * Where the cache lives when nothing else says: `$XDG_CACHE_HOME/cachemir`, or `~/.cache/cachemir`.
 * `CACHEMIR_CACHE_DIR` is a setting, not a default; resolveConfig() reads it.
 */
export function defaultCacheDir(env: Record<string, string | undefined>): string {
  const xdg = env['XDG_CACHE_HOME']
  // The XDG Base Directory spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache')
  return path.join(base, 'cachemir')
}

/**
 * Values used when no flag, environment variable or config file sets them. There is no default route:
 * at least one upstream is required. `cacheDir` here is computed from `process.env` at import time;
 * resolveConfig() recomputes it from the `env` it is given.
 */
export const DEFAULTS: Readonly<Omit<Config, 'routes'>> = Object.freeze({
  offline: false,
  workers: 1,
  shutdownGraceMs: 10_000,
  ca: undefined,
  timeouts: Object.freeze({ connectMs: 10_000, headersMs: 30_000, bodyIdleMs: 60_000 }),
  host: DEFAULT_HOST,
  port: 8080,
  cacheDir: defaultCacheDir(process.env),
  maxDiskBytes: 10 * 1024 ** 3,
  maxMemoryBytes: 256 * 1024 ** 2,
  logLevel: 'info',
  name: 'cachemir',
  publicUrl: undefined,
  adminToken: undefined,
  syncEveryMs: undefined,
  logFormat: 'json',
  proxyAllow: Object.freeze([]),
  connectAllow: Object.freeze([]),
})

/** Raw command-line values as yargs hands them over; resolveConfig() validates all of them. */
export interface ConfigInput {
  /** `--upstream`, repeatable: base URLs of the catch-all route `/`. */
  upstream?: string[] | undefined
  /** `--listen HOST:PORT`, `[::1]:PORT`, `:PORT` or `PORT`. */
  listen?: string | undefined
  /** `--cache-dir`, relative to the current directory. */
  cacheDir?: string | undefined
  /** `--max-disk`, a size such as `10GiB`. */
  maxDisk?: string | undefined
  /** `--max-memory`, a size such as `256MiB`. */
  maxMemory?: string | undefined
  /** `--config`, path of a JSON config file. */
  config?: string | undefined
  /** `--log-level`, one of the pino levels or `silent`. */
  logLevel?: string | undefined
  /** `--offline`: serve only from cache. */
  offline?: boolean | string | undefined
  /** `--shutdown-grace`, a duration such as `10s`. */
  shutdownGrace?: string | undefined
  /** `--ca-file`, a PEM bundle of extra trusted CAs. */
  caFile?: string | undefined
  /** `--connect-timeout`, `--headers-timeout`, `--idle-timeout`: durations. */
  connectTimeout?: string | undefined
  headersTimeout?: string | undefined
  idleTimeout?: string | undefined
  /** `--workers N` or `auto` (one per CPU). */
  workers?: string | number | undefined
  /** `--name`: this node's name in Cache-Status. */
  name?: string | undefined
  /** `--profile`: the ecosystem profile of the catch-all route. */
  profile?: string | undefined
  /** `--public-url`: the mirror's base URL as clients reach it. */
  publicUrl?: string | undefined
  /** `--admin-token`: the bearer token state-changing admin endpoints require. */
  adminToken?: string | undefined
  /** `--sync-every`: a duration between background syncs with the upstreams. */
  syncEvery?: string | undefined
  /** `--log-format json|pretty`. */
  logFormat?: string | undefined
  /** `--proxy-allow HOST,...`: hosts served as a forward proxy. */
  proxyAllow?: string | undefined
  /** `--connect-allow HOST:PORT,...`: CONNECT tunnels allowed. */
  connectAllow?: string | undefined
}

/** The environment variable behind each setting; each is overridden by its flag. */
export const ENV_VARS = Object.freeze({
  upstream: 'CACHEMIR_UPSTREAM',
  listen: 'CACHEMIR_LISTEN',
  cacheDir: 'CACHEMIR_CACHE_DIR',
  maxDisk: 'CACHEMIR_MAX_DISK',
  maxMemory: 'CACHEMIR_MAX_MEMORY',
  config: 'CACHEMIR_CONFIG',
  logLevel: 'CACHEMIR_LOG_LEVEL',
  offline: 'CACHEMIR_OFFLINE',
  shutdownGrace: 'CACHEMIR_SHUTDOWN_GRACE',
  caFile: 'CACHEMIR_CA_FILE',
  connectTimeout: 'CACHEMIR_CONNECT_TIMEOUT',
  headersTimeout: 'CACHEMIR_HEADERS_TIMEOUT',
  idleTimeout: 'CACHEMIR_IDLE_TIMEOUT',
  workers: 'CACHEMIR_WORKERS',
  name: 'CACHEMIR_NAME',
  profile: 'CACHEMIR_PROFILE',
  publicUrl: 'CACHEMIR_PUBLIC_URL',
  adminToken: 'CACHEMIR_ADMIN_TOKEN',
  syncEvery: 'CACHEMIR_SYNC_EVERY',
  logFormat: 'CACHEMIR_LOG_FORMAT',
  proxyAllow: 'CACHEMIR_PROXY_ALLOW',
  connectAllow: 'CACHEMIR_CONNECT_ALLOW',
} as const satisfies Record<keyof ConfigInput, string>)

const FLAGS = {
  upstream: '--upstream',
  listen: '--listen',
  cacheDir: '--cache-dir',
  maxDisk: '--max-disk',
  maxMemory: '--max-memory',
  config: '--config',
  logLevel: '--log-level',
  offline: '--offline',
  shutdownGrace: '--shutdown-grace',
  caFile: '--ca-file',
  connectTimeout: '--connect-timeout',
  headersTimeout: '--headers-timeout',
  idleTimeout: '--idle-timeout',
  workers: '--workers',
  name: '--name',
  profile: '--profile',
  publicUrl: '--public-url',
  adminToken: '--admin-token',
  syncEvery: '--sync-every',
  logFormat: '--log-format',
  proxyAllow: '--proxy-allow',
  connectAllow: '--connect-allow',
} as const satisfies Record<keyof ConfigInput, string>

/** The settings that take a single string (everything but the repeatable --upstream). */
type SingleKey = Exclude<keyof ConfigInput, 'upstream'>

/**
 * Merges flags, environment, config file and DEFAULTS, in that order of precedence per setting,
 * and validates the result. This is the only validator: nothing downstream re-checks types.
 *
 * Environment variables that are empty or blank count as unset. The config file
 * (`--config`/`CACHEMIR_CONFIG`) is validated as a whole, including keys a flag overrides.
 * Routes come back sorted longest prefix first, so the first matching prefix is the longest.
 *
 * @throws ConfigError listing every problem found, each naming its flag, variable or file key.
 * @returns a deep-frozen Config with an absolute `cacheDir`.
 */
export function resolveConfig(args: ConfigInput, env: Record<string, string | undefined>): Config {
  const problems: string[] = []
  const given = (key: SingleKey): Given | undefined => {
    if (args[key] !== undefined) return { field: FLAGS[key], value: args[key] }
    const value = env[ENV_VARS[key]]?.trim()
    return value === undefined || value === '' ? undefined : { field: ENV_VARS[key], value }
  }

  const configFile = given('config')
  const file = configFile === undefined ? undefined : readConfigFile(configFile, problems)

  // The flag or variable, validated, if either is set; else what the file said.
  const pick = <T>(key: SingleKey, fromFile: T | undefined, check: (g: Given) => T | undefined): T | undefined => {
    const source = given(key)
    return source === undefined ? fromFile : check(source)
  }
  const listen = pick('listen', file?.listen, (g) => checkListen(g, problems))
  const cacheDir = pick('cacheDir', file?.cacheDir, (g) => checkDir(g, process.cwd(), problems))
  const maxDiskBytes = pick('maxDisk', file?.maxDiskBytes, (g) => checkSize(g, '10GiB', problems))
  const maxMemoryBytes = pick('maxMemory', file?.maxMemoryBytes, (g) => checkSize(g, '256MiB', problems))
  const logLevel = pick('logLevel', file?.logLevel, (g) => checkLogLevel(g, problems))
  const offline = pick('offline', file?.offline, (g) => checkBoolean(g, problems))
  const shutdownGraceMs = pick('shutdownGrace', file?.shutdownGraceMs, (g) => checkDuration(g, '10s', problems))
  const ca = pick('caFile', file?.ca, (g) => checkReadableFile(g, process.cwd(), problems))
  const workers = pick('workers', file?.workers, (g) => checkWorkers(g, problems))
  const name = pick('name', file?.name, (g) => checkName(g, problems))
  const publicUrl = pick('publicUrl', file?.publicUrl, (g) => checkPublicUrl(g, problems))
  const adminToken = pick('adminToken', file?.adminToken, (g) => checkAdminToken(g, problems))
  const syncEveryMs = pick('syncEvery', file?.syncEveryMs, (g) => checkSyncEvery(g, problems))
  const logFormat = pick('logFormat', file?.logFormat, (g) => checkLogFormat(g, problems))
  const proxyAllow = pick('proxyAllow', file?.proxyAllow, (g) => checkProxyHosts(g, problems))
  const connectAllow = pick('connectAllow', file?.connectAllow, (g) => checkConnectTargets(g, problems))
  const profileSource = given('profile')
  const catchAllProfile = profileSource === undefined ? file?.profile : checkProfile(profileSource, problems)
  const timeouts: Timeouts = {
    connectMs: pick('connectTimeout', file?.timeouts?.connectMs, (g) => checkDuration(g, '10s', problems)) ?? DEFAULTS.timeouts.connectMs,
    headersMs: pick('headersTimeout', file?.timeouts?.headersMs, (g) => checkDuration(g, '30s', problems)) ?? DEFAULTS.timeouts.headersMs,
    bodyIdleMs: pick('idleTimeout', file?.timeouts?.bodyIdleMs, (g) => checkDuration(g, '60s', problems)) ?? DEFAULTS.timeouts.bodyIdleMs,
  }
  // An unreadable file has already been reported; what routes it meant to declare is unknown.
  const specs = buildRoutes(args, env, file, configFile !== undefined && file === undefined, problems)
  if (catchAllProfile !== undefined) {
    const catchAll = specs.findIndex((spec) => spec.prefix === '/')
    const field = profileSource?.field ?? `${String(configFile?.value)}: profile`
    if (catchAll < 0)
      problems.push(`${field}: applies to the catch-all route /, which has no upstreams (give --upstream, or a profile per route)`)
    else specs[catchAll] = { ...(specs[catchAll] as RouteSpec), profile: catchAllProfile }
  }
  const routes = specs.map((spec) =>
    Object.freeze({
      prefix: spec.prefix,
      upstreams: spec.upstreams,
      // The route's own rules first, then its profile's.
      rules: Object.freeze([...spec.rules, ...(profileNamed(spec.profile)?.rules ?? [])]),
      followRedirects: spec.followRedirects,
      timeouts: Object.freeze({ ...timeouts, ...spec.timeoutOverrides }),
      profile: spec.profile,
      upstreamAuth: resolveUpstreamAuth(spec.upstreamAuth, env, problems),
      shareAuthenticated: spec.shareAuthenticated,
    }),
  )

  if (problems.length > 0) throw new ConfigError(problems)
  return Object.freeze({
    host: listen?.host ?? DEFAULTS.host,
    port: listen?.port ?? DEFAULTS.port,
    cacheDir: cacheDir ?? defaultCacheDir(env),
    maxDiskBytes: maxDiskBytes ?? DEFAULTS.maxDiskBytes,
    maxMemoryBytes: maxMemoryBytes ?? DEFAULTS.maxMemoryBytes,
    logLevel: logLevel ?? DEFAULTS.logLevel,
    routes: Object.freeze(routes.sort((a, b) => b.prefix.length - a.prefix.length)),
    offline: offline ?? DEFAULTS.offline,
    shutdownGraceMs: shutdownGraceMs ?? DEFAULTS.shutdownGraceMs,
    ca: ca ?? DEFAULTS.ca,
    timeouts: Object.freeze(timeouts),
    workers: workers ?? DEFAULTS.workers,
    name: name ?? DEFAULTS.name,
    publicUrl,
    adminToken,
    syncEveryMs,
    logFormat: logFormat ?? DEFAULTS.logFormat,
    proxyAllow: proxyAllow ?? DEFAULTS.proxyAllow,
    connectAllow: connectAllow ?? DEFAULTS.connectAllow,
  })
}

/** The listen address as `host:port`, with an IPv6 host in brackets: `[::1]:8080`. */
export function describeListen(config: Pick<Config, 'host' | 'port'>): string {
  return config.host.includes(':') ? `[${config.host}]:${config.port}` : `${config.host}:${config.port}`
}

/** The file's routes plus the catch-all route `/` from --upstream, CACHEMIR_UPSTREAM or the file's `upstreams`. */
function buildRoutes(
  args: ConfigInput,
  env: Record<string, string | undefined>,
  file: FileSettings | undefined,
  fileFailed: boolean,
  problems: string[],
): RouteSpec[] {
  const routes = [...(file?.routes ?? [])]
  const fromEnv = env[ENV_VARS.upstream]?.trim() ?? ''
  let catchAll = file?.upstreams
  if (args.upstream !== undefined && args.upstream.length > 0) {
    const items = args.upstream.map((value) => ({ field: FLAGS.upstream, value }))
    catchAll = { field: FLAGS.upstream, urls: checkUpstreams(items, FLAGS.upstream, problems) }
  } else if (fromEnv !== '') {
    const items = fromEnv.split(/[\s,]+/).filter((value) => value !== '')
    const given = items.map((value) => ({ field: ENV_VARS.upstream, value }))
    catchAll = { field: ENV_VARS.upstream, urls: checkUpstreams(given, ENV_VARS.upstream, problems) }
  }

  const rootRoute = file?.prefixes.get('/')
  if (catchAll !== undefined && rootRoute !== undefined) {
    problems.push(`${catchAll.field}: upstreams given twice for prefix / (also ${rootRoute})`)
  } else if (catchAll?.urls !== undefined) {
    routes.push({
      prefix: '/',
      upstreams: catchAll.urls,
      rules: Object.freeze([]),
      followRedirects: false,
      timeoutOverrides: {},
      profile: undefined,
      upstreamAuth: undefined,
      shareAuthenticated: false,
    })
  } else if (catchAll === undefined && (file?.declaredRoutes ?? 0) === 0 && !fileFailed) {
    problems.push(`${FLAGS.upstream}: at least one upstream is required (or a config file with routes)`)
  }
  return routes
}
