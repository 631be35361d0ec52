// src/config-file.ts
// Reads and checks a JSON config file: top-level settings, routes and their cache rules.

import fs from 'node:fs'
import path from 'node:path'
import type { CacheMode, CacheRule, ConnectTarget, LogLevel, ProxyHost, Route, TimeoutOverrides } from './config-types.js'
import { checkConnectTargets, checkProxyHosts } from './config-proxy.js'
import { parseDuration } from './util/units.js'
import { checkRouteAuth, type UpstreamAuthSpec } from './config-upstream-auth.js'
import {
  checkBoolean,
  checkDuration,
  checkReadableFile,
  checkTimeouts,
  checkWorkers,
  checkName,
  checkProfile,
  checkPublicUrl,
  checkAdminToken,
  checkSyncEvery,
  checkLogFormat,
  checkDir,
  checkKeys,
  checkListen,
  checkLogLevel,
  checkPrefix,
  checkSize,
  checkUpstreamArray,
  isObject,
  show,
  type Given,
  type Listen,
} from './config-values.js'

const CACHE_MODES = ['default', 'immutable', 'revalidate', 'no-store'] as const satisfies readonly CacheMode[]
const TOP_KEYS = [
  '$schema',
  'listen',
  'cacheDir',
  'maxDisk',
  'maxMemory',
  'logLevel',
  'upstreams',
  'routes',
  'offline',
  'shutdownGrace',
  'caFile',
  'timeouts',
  'workers',
  'name',
  'profile',
  'publicUrl',
  'adminToken',
  'syncEvery',
  'logFormat',
  'proxyAllow',
  'connectAllow',
]
const ROUTE_KEYS = ['prefix', 'upstreams', 'rules', 'timeouts', 'followRedirects', 'profile', 'upstreamAuth', 'shareAuthenticated']
const RULE_KEYS = ['match', 'cache', 'ttl', 'storeSetCookie']
const RULE_EXAMPLE = String.raw`{"match": "\\.deb$", "cache": "immutable"}`

/** What a config file contributed, already validated; `undefined` means absent or invalid. */
/** A route as the file declares it; its timeouts are completed with the global ones later. */
export interface RouteSpec extends Omit<Route, 'timeouts' | 'upstreamAuth'> {
  readonly timeoutOverrides: TimeoutOverrides
  /** Where the credential is; resolveConfig() reads the variable. */
  readonly upstreamAuth: UpstreamAuthSpec | undefined
}

export interface FileSettings {
  listen?: Listen | undefined
  cacheDir?: string | undefined
  maxDiskBytes?: number | undefined
  maxMemoryBytes?: number | undefined
  logLevel?: LogLevel | undefined
  offline?: boolean | undefined
  shutdownGraceMs?: number | undefined
  ca?: string | undefined
  timeouts?: TimeoutOverrides | undefined
  workers?: number | undefined
  name?: string | undefined
  profile?: string | undefined
  publicUrl?: string | undefined
  adminToken?: string | undefined
  syncEveryMs?: number | undefined
  logFormat?: 'json' | 'pretty' | undefined
  proxyAllow?: readonly ProxyHost[] | undefined
  connectAllow?: readonly ConnectTarget[] | undefined
  upstreams?: { readonly field: string; readonly urls: readonly URL[] | undefined } | undefined
  readonly routes: RouteSpec[]
  /** How many entries the file's `routes` array has, valid or not. */
  declaredRoutes: number
  /** Each route prefix seen (valid or not) and the field of the route that declared it. */
  readonly prefixes: Map<string, string>
}

export function readConfigFile(source: Given, problems: string[]): FileSettings | undefined {
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
  if (has('offline')) settings.offline = checkBoolean(at('offline'), problems)
  if (has('shutdownGrace')) settings.shutdownGraceMs = checkDuration(at('shutdownGrace'), '10s', problems)
  if (has('caFile')) settings.ca = checkReadableFile(at('caFile'), fileDir, problems)
  if (has('timeouts')) settings.timeouts = checkTimeouts(at('timeouts'), problems)
  if (has('workers')) settings.workers = checkWorkers(at('workers'), problems)
  if (has('name')) settings.name = checkName(at('name'), problems)
  if (has('profile')) settings.profile = checkProfile(at('profile'), problems)
  if (has('publicUrl')) settings.publicUrl = checkPublicUrl(at('publicUrl'), problems)
  if (has('adminToken')) settings.adminToken = checkAdminToken(at('adminToken'), problems)
  if (has('syncEvery')) settings.syncEveryMs = checkSyncEvery(at('syncEvery'), problems)
  if (has('logFormat')) settings.logFormat = checkLogFormat(at('logFormat'), problems)
  if (has('proxyAllow')) settings.proxyAllow = checkProxyHosts(at('proxyAllow'), problems)
  if (has('connectAllow')) settings.connectAllow = checkConnectTargets(at('connectAllow'), problems)
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

export function checkRoute(given: Given, prefixes: Map<string, string>, problems: string[]): RouteSpec | undefined {
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
  const timeoutOverrides =
    value['timeouts'] === undefined ? {} : checkTimeouts({ field: `${field}.timeouts`, value: value['timeouts'] }, problems)
  const followRedirects =
    value['followRedirects'] === undefined
      ? false
      : checkBoolean({ field: `${field}.followRedirects`, value: value['followRedirects'] }, problems)
  const profile =
    value['profile'] === undefined ? undefined : checkProfile({ field: `${field}.profile`, value: value['profile'] }, problems)
  const auth = checkRouteAuth(value, field, problems)
  if (value['profile'] !== undefined && profile === undefined) return undefined
  if (prefix === undefined || upstreams === undefined || !rulesOk || timeoutOverrides === undefined || followRedirects === undefined)
    return undefined
  if (auth === undefined) return undefined
  return { prefix, upstreams, rules: Object.freeze(rules), timeoutOverrides, followRedirects, profile, ...auth }
}

export function checkRule(given: Given, problems: string[]): CacheRule | undefined {
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
    ttlMs = typeof ttl === 'string' ? parseDuration(ttl) : typeof ttl === 'number' && ttl >= 0 ? Math.round(ttl * 1000) : undefined
    if (ttlMs === undefined || !Number.isSafeInteger(ttlMs)) {
      problems.push(`${field}.ttl: expected a duration like "10m" or a number of seconds, got ${show(ttl)}`)
      ttlMs = undefined
    }
  }
  if (typeof storeSetCookie !== 'boolean') problems.push(`${field}.storeSetCookie: expected true or false, got ${show(storeSetCookie)}`)
  if (pattern === undefined || mode === undefined || (ttl !== undefined && ttlMs === undefined)) return undefined
  return Object.freeze({ pattern, mode, ttlMs, storeSetCookie: storeSetCookie === true })
}
