// src/config-proxy.ts
// Checks the forward-proxy settings: the hosts whose absolute-form requests the mirror caches
// (--proxy-allow) and the host:port pairs a CONNECT may tunnel to (--connect-allow).

import type { ConnectTarget, ProxyHost } from './config-types.js'
import { checkKeys, isObject, show, type Given } from './config-values.js'
import { PROFILES } from './profiles/profiles.js'

const HOSTNAME = /^(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)*$/
const PROXY_HOST_EXAMPLE = '"deb.example.org", "https://registry.example.org" or {"host": "deb.example.org", "profile": "debian"}'

/** A comma- or space-separated flag or variable value, or a config file array, as items. */
export function listItems({ field, value }: Given): Given[] {
  if (Array.isArray(value)) return value.map((item: unknown, i) => ({ field: `${field}[${i}]`, value: item }))
  if (typeof value !== 'string') return [{ field, value }]
  return value
    .split(/[\s,]+/)
    .filter((item) => item !== '')
    .map((item) => ({ field, value: item }))
}

/**
 * One allowed host: `host`, `host:port`, `https://host[:port]` (fetched over HTTPS while clients
 * speak HTTP to the mirror), or in a config file an object with `host`, `https`, `profile`.
 */
export function checkProxyHost(given: Given, problems: string[]): ProxyHost | undefined {
  const { field, value } = given
  if (isObject(value)) {
    checkKeys(value, ['host', 'https', 'profile'], (key) => `${field}.${key}`, problems)
    const base = checkProxyHost({ field: `${field}.host`, value: value['host'] }, problems)
    const https = value['https'] ?? base?.https ?? false
    if (typeof https !== 'boolean') problems.push(`${field}.https: expected true or false, got ${show(https)}`)
    const profile = value['profile']
    if (profile !== undefined && (typeof profile !== 'string' || !PROFILES.has(profile))) {
      problems.push(`${field}.profile: expected one of ${[...PROFILES.keys()].join(', ')}, got ${show(profile)}`)
      return undefined
    }
    if (base === undefined || typeof https !== 'boolean') return undefined
    return Object.freeze({ ...base, https, upstreamPort: https && base.upstreamPort === 80 ? 443 : base.upstreamPort, profile })
  }
  const text = typeof value === 'string' ? value.trim().toLowerCase() : undefined
  const m = text === undefined ? null : /^(?:(https?):\/\/)?([^/:]+)(?::(\d{1,5}))?\/?$/.exec(text)
  const host = m?.[2]
  const port = m?.[3] === undefined ? 80 : Number(m[3])
  if (m === null || host === undefined || !HOSTNAME.test(host) || port < 1 || port > 65535) {
    problems.push(`${field}: expected a host like ${PROXY_HOST_EXAMPLE}, got ${show(value)}`)
    return undefined
  }
  const https = m[1] === 'https'
  return Object.freeze({
    host,
    port: https ? 80 : port,
    https,
    upstreamPort: https ? (m[3] === undefined ? 443 : port) : port,
    profile: undefined,
  })
}

/** `host:port` a CONNECT may open a tunnel to. */
export function checkConnectTarget({ field, value }: Given, problems: string[]): ConnectTarget | undefined {
  const m = typeof value === 'string' ? /^([^:\s]+):(\d{1,5})$/.exec(value.trim().toLowerCase()) : null
  const port = m === null ? NaN : Number(m[2])
  if (m === null || !HOSTNAME.test(m[1] as string) || port < 1 || port > 65535) {
    problems.push(`${field}: expected host:port like "registry.example.org:443", got ${show(value)}`)
    return undefined
  }
  return Object.freeze({ host: m[1] as string, port })
}

export function checkProxyHosts(given: Given, problems: string[]): readonly ProxyHost[] | undefined {
  const hosts = listItems(given).map((item) => checkProxyHost(item, problems))
  return hosts.includes(undefined) ? undefined : Object.freeze(hosts as ProxyHost[])
}

export function checkConnectTargets(given: Given, problems: string[]): readonly ConnectTarget[] | undefined {
  const targets = listItems(given).map((item) => checkConnectTarget(item, problems))
  return targets.includes(undefined) ? undefined : Object.freeze(targets as ConnectTarget[])
}
