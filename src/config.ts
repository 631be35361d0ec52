// src/config.ts
// The Config type, its DEFAULTS, and resolveConfig(): flags > environment > config file > defaults.

import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { ConfigError } from './errors.js'
import { parseDuration, parseSize } from './util/units.js'

/** How a per-route rule overrides the upstream's caching headers for matching paths. */
export type CacheMode =
  /** Follow the upstream's headers (RFC 9111); `ttlMs` replaces the Last-Modified heuristic. */
  | 'default'
  /** Fresh forever once stored: never revalidated (content-addressed files such as .deb, .apk, tarballs). */
  | 'immutable'
  /** Stored, but revalidated with the upstream on every request (index files such as InRelease). */
  | 'revalidate'
  /** Never stored; every request goes upstream. */
  | 'no-store'

export interface CacheRule {
  /** Tested against the request path below the route prefix, query included, e.g. `pool/main/a.deb`. */
  readonly pattern: RegExp
  readonly mode: CacheMode
  /** Freshness lifetime for responses that carry no explicit one (no max-age/Expires); replaces the heuristic. */
  readonly ttlMs: number | undefined
  /** Store responses carrying Set-Cookie when they are explicitly fresh (default false: never). */
  readonly storeSetCookie?: boolean
}

export interface Route {
  /** Path prefix served by this route; starts and ends with `/` (the catch-all route is `/`). */
  readonly prefix: string
  /** Equivalent upstream base URLs, tried in order; each ends with `/`. */
  readonly upstreams: readonly URL[]
  /** First matching rule wins; no match means mode `default`. */
  readonly rules: readonly CacheRule[]
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface Config {
  /** Address to listen on; port 0 picks a free port. */
  readonly host: string
  readonly port: number
  /** Root of the on-disk cache; created on first use. */
  readonly cacheDir: string
  /** Upper bound for the bytes of cached bodies on disk. */
  readonly maxDiskBytes: number
  /** Upper bound for the bytes of bodies and headers held in memory. */
  readonly maxMemoryBytes: number
  readonly logLevel: LogLevel
  /** Longest matching prefix wins. */
  readonly routes: readonly Route[]
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LogLevel[]
const CACHE_MODES = ['default', 'immutable', 'revalidate', 'no-store'] as const satisfies readonly CacheMode[]

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
  host: '127.0.0.1',
  port: 8080,
  cacheDir: defaultCacheDir(process.env),
  maxDiskBytes: 10 * 1024 ** 3,
  maxMemoryBytes: 256 * 1024 ** 2,
  logLevel: 'info',
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
} as const satisfies Record<keyof ConfigInput, string>)

const FLAGS = {
  upstream: '--upstream',
  listen: '--listen',
  cacheDir: '--cache-dir',
  maxDisk: '--max-disk',
  maxMemory: '--max-memory',
  config: '--config',
  logLevel: '--log-level',
} as const satisfies Record<keyof ConfigInput, string>

const TOP_KEYS = ['$schema', 'listen', 'cacheDir', 'maxDisk', 'maxMemory', 'logLevel', 'upstreams', 'routes']
const ROUTE_KEYS = ['prefix', 'upstreams', 'rules']
const RULE_KEYS = ['match', 'cache', 'ttl', 'storeSetCookie']
const RULE_EXAMPLE = String.raw`{"match": "\\.deb$", "cache": "immutable"}`

/** The settings that take a single string (everything but the repeatable --upstream). */
type SingleKey = Exclude<keyof ConfigInput, 'upstream'>

/** A raw value and the name of where it came from: a flag, a variable, or `file: key.path`. */
interface Given {
  readonly field: string
  readonly value: unknown
}

interface Listen {
  readonly host: string
  readonly port: number
}

/** What a config file contributed, already validated; `undefined` means absent or invalid. */
interface FileSettings {
  listen?: Listen | undefined
  cacheDir?: string | undefined
  maxDiskBytes?: number | undefined
  maxMemoryBytes?: number | undefined
  logLevel?: LogLevel | undefined
  upstreams?: { readonly field: string; readonly urls: readonly URL[] | undefined } | undefined
  readonly routes: Route[]
  /** How many entries the file's `routes` array has, valid or not. */
  declaredRoutes: number
  /** Each route prefix seen (valid or not) and the field of the route that declared it. */
  readonly prefixes: Map<string, string>
}

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
  // An unreadable file has already been reported; what routes it meant to declare is unknown.
  const routes = buildRoutes(args, env, file, configFile !== undefined && file === undefined, problems)

  if (problems.length > 0) throw new ConfigError(problems)
  return Object.freeze({
    host: listen?.host ?? DEFAULTS.host,
    port: listen?.port ?? DEFAULTS.port,
    cacheDir: cacheDir ?? defaultCacheDir(env),
    maxDiskBytes: maxDiskBytes ?? DEFAULTS.maxDiskBytes,
    maxMemoryBytes: maxMemoryBytes ?? DEFAULTS.maxMemoryBytes,
    logLevel: logLevel ?? DEFAULTS.logLevel,
    routes: Object.freeze(routes.sort((a, b) => b.prefix.length - a.prefix.length)),
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
): Route[] {
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
    routes.push(Object.freeze({ prefix: '/', upstreams: catchAll.urls, rules: Object.freeze([]) }))
  } else if (catchAll === undefined && (file?.declaredRoutes ?? 0) === 0 && !fileFailed) {
    problems.push(`${FLAGS.upstream}: at least one upstream is required (or a config file with routes)`)
  }
  return routes
}

function readConfigFile(source: Given, problems: string[]): FileSettings | undefined {
  const file = String(source.value)
  let text: string
  try {
    text = fs.readFileSync(path.resolve(file), 'utf8')
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : String(err)
    problems.push(`${source.field}: cannot read ${JSON.stringify(file)}: ${code}`)
    return undefined
  }
  let data: unknown
  try {
    // Some editors save JSON with a UTF-8 byte order mark, which JSON.parse rejects.
    data = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    // V8 quotes part of the file, newlines included: keep the message on one line.
    problems.push(`${source.field}: ${JSON.stringify(file)} is not valid JSON: ${reason.replace(/\s+/g, ' ')}`)
    return undefined
  }
  if (!isObject(data)) {
    problems.push(`${file}: expected a JSON object like {"upstreams": ["https://example.org/"]}, got ${show(data)}`)
    return undefined
  }

  const at = (key: string): Given => ({ field: `${file}: ${key}`, value: data[key] })
  const has = (key: string): boolean => data[key] !== undefined
  checkKeys(data, TOP_KEYS, (key) => `${file}: ${key}`, problems)
  const fileDir = path.dirname(path.resolve(file))
  const settings: FileSettings = { routes: [], declaredRoutes: 0, prefixes: new Map() }
  if (has('listen')) settings.listen = checkListen(at('listen'), problems)
  if (has('cacheDir')) settings.cacheDir = checkDir(at('cacheDir'), fileDir, problems)
  if (has('maxDisk')) settings.maxDiskBytes = checkSize(at('maxDisk'), '10GiB', problems)
  if (has('maxMemory')) settings.maxMemoryBytes = checkSize(at('maxMemory'), '256MiB', problems)
  if (has('logLevel')) settings.logLevel = checkLogLevel(at('logLevel'), problems)
  if (has('upstreams')) {
    const upstreams = at('upstreams')
    settings.upstreams = { field: upstreams.field, urls: checkUpstreamArray(upstreams, problems) }
  }
  if (has('routes')) {
    const routes = at('routes')
    if (!Array.isArray(routes.value)) {
      const example = '[{"prefix": "/debian/", "upstreams": [...]}]'
      problems.push(`${routes.field}: expected an array like ${example}, got ${show(routes.value)}`)
    } else {
      settings.declaredRoutes = routes.value.length
      routes.value.forEach((value: unknown, i) => {
        const route = checkRoute({ field: `${routes.field}[${i}]`, value }, settings.prefixes, problems)
        if (route !== undefined) settings.routes.push(route)
      })
    }
  }
  return settings
}

function checkRoute(given: Given, prefixes: Map<string, string>, problems: string[]): Route | undefined {
  const { field, value } = given
  if (!isObject(value)) {
    problems.push(`${field}: expected an object like {"prefix": "/debian/", "upstreams": [...]}, got ${show(value)}`)
    return undefined
  }
  checkKeys(value, ROUTE_KEYS, (key) => `${field}.${key}`, problems)
  const prefix = checkPrefix({ field: `${field}.prefix`, value: value['prefix'] }, problems)
  if (prefix !== undefined) {
    const first = prefixes.get(prefix)
    if (first === undefined) prefixes.set(prefix, field)
    else problems.push(`${field}.prefix: expected a unique prefix, got ${show(prefix)} (also ${first})`)
  }
  const upstreams = checkUpstreamArray({ field: `${field}.upstreams`, value: value['upstreams'] }, problems)
  const rules: CacheRule[] = []
  let rulesOk = true
  const rawRules = value['rules'] ?? []
  if (Array.isArray(rawRules)) {
    for (const [i, rule] of rawRules.entries()) {
      const checked = checkRule({ field: `${field}.rules[${i}]`, value: rule as unknown }, problems)
      if (checked === undefined) rulesOk = false
      else rules.push(checked)
    }
  } else {
    problems.push(`${field}.rules: expected an array like [${RULE_EXAMPLE}], got ${show(rawRules)}`)
    rulesOk = false
  }
  if (prefix === undefined || upstreams === undefined || !rulesOk) return undefined
  return Object.freeze({ prefix, upstreams, rules: Object.freeze(rules) })
}

function checkRule(given: Given, problems: string[]): CacheRule | undefined {
  const { field, value } = given
  if (!isObject(value)) {
    problems.push(`${field}: expected an object like ${RULE_EXAMPLE}, got ${show(value)}`)
    return undefined
  }
  checkKeys(value, RULE_KEYS, (key) => `${field}.${key}`, problems)
  const { match, cache = 'default', ttl, storeSetCookie = false } = value
  let pattern: RegExp | undefined
  if (typeof match !== 'string') {
    problems.push(`${field}.match: expected a regular expression like "\\\\.deb$", got ${show(match)}`)
  } else {
    try {
      pattern = new RegExp(match)
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      problems.push(`${field}.match: expected a valid regular expression, got ${show(match)} (${reason})`)
    }
  }
  const mode = CACHE_MODES.find((m) => m === cache)
  if (mode === undefined) problems.push(`${field}.cache: expected one of ${CACHE_MODES.join(', ')}, got ${show(cache)}`)
  let ttlMs: number | undefined
  if (ttl !== undefined) {
    ttlMs =
      typeof ttl === 'string' ? parseDuration(ttl)
      : typeof ttl === 'number' && ttl >= 0 ? Math.round(ttl * 1000)
      : undefined
    if (ttlMs === undefined || !Number.isSafeInteger(ttlMs)) {
      problems.push(`${field}.ttl: expected a duration like "10m" or a number of seconds, got ${show(ttl)}`)
      ttlMs = undefined
    }
  }
  if (typeof storeSetCookie !== 'boolean') problems.push(`${field}.storeSetCookie: expected true or false, got ${show(storeSetCookie)}`)
  if (pattern === undefined || mode === undefined || (ttl !== undefined && ttlMs === undefined)) return undefined
  return Object.freeze({ pattern, mode, ttlMs, storeSetCookie: storeSetCookie === true })
}

function checkPrefix({ field, value }: Given, problems: string[]): string | undefined {
  const expected = `${field}: expected a path prefix like "/debian/"`
  if (typeof value !== 'string' || !value.startsWith('/')) {
    problems.push(`${expected}, got ${show(value)}`)
    return undefined
  }
  if (/\.\.|\/\/|[?#]/.test(value)) {
    problems.push(`${expected} without "..", "//", "?" or "#", got ${show(value)}`)
    return undefined
  }
  const prefix = value.endsWith('/') ? value : `${value}/`
  if (prefix.startsWith('/_cachemir/')) {
    problems.push(`${expected} outside /_cachemir/ (reserved for the mirror's own endpoints), got ${show(value)}`)
    return undefined
  }
  return prefix
}

/** A JSON array of upstream URLs, as in the file's `upstreams` and `routes[i].upstreams`. */
function checkUpstreamArray({ field, value }: Given, problems: string[]): readonly URL[] | undefined {
  if (!Array.isArray(value)) {
    problems.push(`${field}: expected an array of http:// or https:// URLs, got ${show(value)}`)
    return undefined
  }
  const items = value.map((item: unknown, i) => ({ field: `${field}[${i}]`, value: item }))
  return checkUpstreams(items, field, problems)
}

function checkUpstreams(items: readonly Given[], listField: string, problems: string[]): readonly URL[] | undefined {
  if (items.length === 0) {
    problems.push(`${listField}: expected at least one http:// or https:// URL, got none`)
    return undefined
  }
  const urls: URL[] = []
  let ok = true
  for (const item of items) {
    const url = checkUpstream(item, problems)
    if (url === undefined) ok = false
    else if (urls.some((seen) => seen.href === url.href)) {
      problems.push(`${item.field}: expected distinct upstreams, got ${show(url.href)} twice`)
      ok = false
    } else urls.push(url)
  }
  return ok ? Object.freeze(urls) : undefined
}

function checkUpstream({ field, value }: Given, problems: string[]): URL | undefined {
  const expected = `${field}: expected an http:// or https:// URL`
  const url = typeof value === 'string' && URL.canParse(value) ? new URL(value) : undefined
  const hasCredentials = url !== undefined && (url.username !== '' || url.password !== '')
  if (url !== undefined && hasCredentials) {
    // Messages end up in logs: never echo a password or token.
    url.username = url.username === '' ? '' : '***'
    url.password = url.password === '' ? '' : '***'
  }
  const got = hasCredentials ? show(url?.href) : show(value)
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    problems.push(`${expected}, got ${got}`)
    return undefined
  }
  if (hasCredentials) {
    problems.push(`${expected} without user:password, got ${got}`)
    return undefined
  }
  // href, not search/hash: those are "" for a bare "?" or "#" too.
  if (url.href.includes('?') || url.href.includes('#')) {
    problems.push(`${expected} without a query or fragment, got ${got}`)
    return undefined
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/'
  return url
}

function checkListen({ field, value }: Given, problems: string[]): Listen | undefined {
  const text = typeof value === 'string' ? value : ''
  const match = /^(?:\[([^\]]+)\]:|([A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(text)
  const [, ipv6, name, port = ''] = match ?? []
  const host = ipv6 ?? (name === undefined || name === '' ? DEFAULTS.host : name)
  if (match === null || Number(port) > 65535 || (ipv6 !== undefined && !net.isIPv6(ipv6))) {
    problems.push(`${field}: expected HOST:PORT like "127.0.0.1:8080", got ${show(value)}`)
    return undefined
  }
  return { host, port: Number(port) }
}

function checkDir({ field, value }: Given, base: string, problems: string[]): string | undefined {
  if (typeof value !== 'string' || value === '') {
    problems.push(`${field}: expected a directory path, got ${show(value)}`)
    return undefined
  }
  return path.resolve(base, value)
}

/** A size string from anywhere, or a plain number of bytes from the config file. */
function checkSize({ field, value }: Given, example: string, problems: string[]): number | undefined {
  const bytes =
    typeof value === 'string' ? parseSize(value)
    : typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value
    : undefined
  if (bytes === undefined) problems.push(`${field}: expected a size like "${example}", got ${show(value)}`)
  return bytes
}

function checkLogLevel({ field, value }: Given, problems: string[]): LogLevel | undefined {
  const level = LOG_LEVELS.find((l) => l === value)
  if (level === undefined) problems.push(`${field}: expected one of ${LOG_LEVELS.join(', ')}, got ${show(value)}`)
  return level
}

function checkKeys(
  object: Record<string, unknown>,
  allowed: readonly string[],
  fieldOf: (key: string) => string,
  problems: string[],
): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      const expected = allowed.filter((k) => k !== '$schema').join(', ')
      problems.push(`${fieldOf(key)}: unknown key (expected one of ${expected})`)
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A received value for a message: JSON, so strings are quoted, cut short if long. */
function show(value: unknown): string {
  if (value === undefined) return 'nothing'
  const json = JSON.stringify(value)
  return json.length > 80 ? `${json.slice(0, 77)}...` : json
}
