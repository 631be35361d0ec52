// src/config-values.ts
// Checks for single configuration values (listen address, sizes, URLs, prefixes, levels): each
// takes a value and where it came from, and records a problem naming that place when it is bad.

import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { LogLevel, TimeoutOverrides } from './config-types.js'
import { parseDuration, parseSize } from './util/units.js'
import { PROFILES } from './profiles/profiles.js'

/** Where the mirror listens when only a port is given. */
export const DEFAULT_HOST = '127.0.0.1'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LogLevel[]

/** A raw value and the name of where it came from: a flag, a variable, or `file: key.path`. */
export interface Given {
  readonly field: string
  readonly value: unknown
}

export interface Listen {
  readonly host: string
  readonly port: number
}

export function checkPrefix({ field, value }: Given, problems: string[]): string | undefined {
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
export function checkUpstreamArray({ field, value }: Given, problems: string[]): readonly URL[] | undefined {
  if (!Array.isArray(value)) {
    problems.push(`${field}: expected an array of http:// or https:// URLs, got ${show(value)}`)
    return undefined
  }
  const items = value.map((item: unknown, i) => ({ field: `${field}[${i}]`, value: item }))
  return checkUpstreams(items, field, problems)
}

export function checkUpstreams(items: readonly Given[], listField: string, problems: string[]): readonly URL[] | undefined {
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

export function checkUpstream({ field, value }: Given, problems: string[]): URL | undefined {
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

export function checkListen({ field, value }: Given, problems: string[]): Listen | undefined {
  const text = typeof value === 'string' ? value : ''
  const match = /^(?:\[([^\]]+)\]:|([A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(text)
  const [, ipv6, name, port = ''] = match ?? []
  const host = ipv6 ?? (name === undefined || name === '' ? DEFAULT_HOST : name)
  if (match === null || Number(port) > 65535 || (ipv6 !== undefined && !net.isIPv6(ipv6))) {
    problems.push(`${field}: expected HOST:PORT like "127.0.0.1:8080", got ${show(value)}`)
    return undefined
  }
  return { host, port: Number(port) }
}

export function checkDir({ field, value }: Given, base: string, problems: string[]): string | undefined {
  if (typeof value !== 'string' || value === '') {
    problems.push(`${field}: expected a directory path, got ${show(value)}`)
    return undefined
  }
  return path.resolve(base, value)
}

/** A size string from anywhere, or a plain number of bytes from the config file. */
export function checkSize({ field, value }: Given, example: string, problems: string[]): number | undefined {
  const bytes =
    typeof value === 'string'
      ? parseSize(value)
      : typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
        ? value
        : undefined
  if (bytes === undefined) problems.push(`${field}: expected a size like "${example}", got ${show(value)}`)
  return bytes
}

export function checkLogLevel({ field, value }: Given, problems: string[]): LogLevel | undefined {
  const level = LOG_LEVELS.find((l) => l === value)
  if (level === undefined) problems.push(`${field}: expected one of ${LOG_LEVELS.join(', ')}, got ${show(value)}`)
  return level
}

export function checkKeys(
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

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A received value for a message: JSON, so strings are quoted, cut short if long. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing'
  const json = JSON.stringify(value)
  return json.length > 80 ? `${json.slice(0, 77)}...` : json
}

/** A duration: a string like "30s" or a number of seconds. */
export function checkDuration({ field, value }: Given, example: string, problems: string[]): number | undefined {
  const ms =
    typeof value === 'string'
      ? parseDuration(value)
      : typeof value === 'number' && Number.isFinite(value) && value >= 0
        ? Math.round(value * 1000)
        : undefined
  if (ms === undefined || !Number.isSafeInteger(ms)) {
    problems.push(`${field}: expected a duration like "${example}" or a number of seconds, got ${show(value)}`)
    return undefined
  }
  return ms
}

/** true/false, or (from a flag or variable) "1", "0", "true", "false", "yes", "no". */
export function checkBoolean({ field, value }: Given, problems: string[]): boolean | undefined {
  if (typeof value === 'boolean') return value
  const text = typeof value === 'string' ? value.trim().toLowerCase() : undefined
  if (text === '1' || text === 'true' || text === 'yes') return true
  if (text === '0' || text === 'false' || text === 'no') return false
  problems.push(`${field}: expected true or false, got ${show(value)}`)
  return undefined
}

/** Worker processes: 1 to 64, or "auto" for one per CPU the process may use. */
export const MAX_WORKERS = 64
export function checkWorkers({ field, value }: Given, problems: string[]): number | undefined {
  if (value === 'auto') return Math.min(os.availableParallelism(), MAX_WORKERS)
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : NaN
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    problems.push(`${field}: expected a number of workers from 1 to ${MAX_WORKERS} or "auto", got ${show(value)}`)
    return undefined
  }
  return n
}

/** RFC 8941 §3.3.4 token, as a Cache-Status member name must be (and short enough to read). */
const TOKEN = /^[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]{0,63}$/

/** A node name for Cache-Status: an RFC 8941 token such as `mirror-1`. */
export function checkName({ field, value }: Given, problems: string[]): string | undefined {
  if (typeof value !== 'string' || !TOKEN.test(value.trim())) {
    problems.push(`${field}: expected a name like "mirror-1" (a letter, then letters, digits or -._:/*, at most 64), got ${show(value)}`)
    return undefined
  }
  return value.trim()
}

/** An admin token: 16 to 256 visible ASCII characters; the message never repeats it. */
export function checkAdminToken({ field, value }: Given, problems: string[]): string | undefined {
  if (typeof value === 'string' && /^[\x21-\x7e]{16,256}$/.test(value.trim())) return value.trim()
  problems.push(`${field}: expected a token of 16 to 256 visible ASCII characters (the value is not shown)`)
  return undefined
}

/** A duration of at least one second between background syncs. */
export function checkSyncEvery(given: Given, problems: string[]): number | undefined {
  const ms = checkDuration(given, '1h', problems)
  if (ms === undefined || ms >= 1000) return ms
  problems.push(`${given.field}: expected at least 1s, got ${show(given.value)}`)
  return undefined
}

export function checkLogFormat({ field, value }: Given, problems: string[]): 'json' | 'pretty' | undefined {
  if (value === 'json' || value === 'pretty') return value
  problems.push(`${field}: expected json or pretty, got ${show(value)}`)
  return undefined
}

/** The name of one of src/profiles/. */
export function checkProfile({ field, value }: Given, problems: string[]): string | undefined {
  if (typeof value === 'string' && PROFILES.has(value.trim())) return value.trim()
  problems.push(`${field}: expected one of ${[...PROFILES.keys()].join(', ')}, got ${show(value)}`)
  return undefined
}

/** An http(s) base URL without query or fragment, kept without its trailing slash: `https://mirror.example.org`. */
export function checkPublicUrl({ field, value }: Given, problems: string[]): string | undefined {
  let url: URL | undefined
  try {
    url = typeof value === 'string' ? new URL(value.trim()) : undefined
  } catch {
    url = undefined
  }
  if (
    url === undefined ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.search !== '' ||
    url.hash !== '' ||
    url.username !== ''
  ) {
    problems.push(`${field}: expected the mirror's public base URL like "http://mirror.example.org:8080", got ${show(value)}`)
    return undefined
  }
  return url.href.replace(/\/+$/, '')
}

/** A readable file's text (PEM bundles). */
export function checkReadableFile({ field, value }: Given, base: string, problems: string[]): string | undefined {
  if (typeof value !== 'string' || value === '') {
    problems.push(`${field}: expected a file path, got ${show(value)}`)
    return undefined
  }
  try {
    return fs.readFileSync(path.resolve(base, value), 'utf8')
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : String(err)
    problems.push(`${field}: cannot read ${JSON.stringify(value)}: ${code}`)
    return undefined
  }
}

/** A `timeouts` object: `{ "connect": "10s", "headers": "30s", "idle": "60s" }`, each optional. */
export function checkTimeouts({ field, value }: Given, problems: string[]): TimeoutOverrides | undefined {
  if (!isObject(value)) {
    problems.push(`${field}: expected an object like {"connect": "10s", "headers": "30s", "idle": "60s"}, got ${show(value)}`)
    return undefined
  }
  checkKeys(value, ['connect', 'headers', 'idle'], (key) => `${field}.${key}`, problems)
  const out: { connectMs?: number; headersMs?: number; bodyIdleMs?: number } = {}
  const one = (key: string, example: string): number | undefined =>
    value[key] === undefined ? undefined : checkDuration({ field: `${field}.${key}`, value: value[key] }, example, problems)
  const connectMs = one('connect', '10s')
  const headersMs = one('headers', '30s')
  const bodyIdleMs = one('idle', '60s')
  if (connectMs !== undefined) out.connectMs = connectMs
  if (headersMs !== undefined) out.headersMs = headersMs
  if (bodyIdleMs !== undefined) out.bodyIdleMs = bodyIdleMs
  return out
}
