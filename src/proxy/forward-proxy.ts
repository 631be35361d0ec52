// src/proxy/forward-proxy.ts
// The mirror as an HTTP proxy (how apt-cacher-ng is used: Acquire::http::Proxy, HTTP_PROXY,
// `npm config set proxy`): an absolute-form request (`GET http://host/path`) for a host in
// --proxy-allow is fetched from that host and cached like a route's request, under a key that
// names the host; any other host gets 403 and is never contacted.

import type { Config, Route } from '../config-types.js'
import type { ProxyHost } from '../config-types.js'
import { ForbiddenError } from '../errors.js'
import { profileNamed } from '../profiles/profiles.js'
import { urlKey } from './cache-key.js'
import { badRequest, unsafePathReason, type Refused, type RouteResult } from './route.js'

/** Whether a request target is in absolute form (`http://host/path`) rather than a path. */
export function isAbsoluteForm(target: string): boolean {
  return target.startsWith('http://') || target.startsWith('https://')
}

export class ForwardProxy {
  readonly #config: Config
  readonly #hosts: ReadonlyMap<string, ProxyHost>
  /** One synthetic route per allowed host and profile, made on first use. */
  readonly #routes = new Map<string, Route>()

  constructor(config: Config) {
    this.#config = config
    this.#hosts = new Map(config.proxyAllow.map((h) => [`${h.host}:${h.port}`, h]))
  }

  /** The route for an absolute-form target, or the refusal (400 malformed, 403 host not allowed). */
  route(target: string): RouteResult {
    let url: URL
    try {
      url = new URL(target)
    } catch {
      return badRequest('malformed absolute-form request target')
    }
    if (url.protocol !== 'http:' || url.username !== '' || url.password !== '') return badRequest('only http:// targets are proxied')
    const port = url.port === '' ? 80 : Number(url.port)
    const allowed = this.#hosts.get(`${url.hostname}:${port}`)
    if (allowed === undefined) return forbidden(`host not allowed: ${url.hostname}:${port}`)
    const path = url.pathname
    const unsafe = unsafePathReason(path)
    if (unsafe !== undefined) return badRequest(unsafe)
    const relativePath = path.slice(1) + url.search
    const profile = allowed.profile ?? guessProfile(relativePath)
    return { route: this.#routeFor(allowed, profile), relativePath, key: urlKey(`//${url.hostname}:${port}${path}`, url.search) }
  }

  #routeFor(host: ProxyHost, profile: string | undefined): Route {
    const id = `${host.host}:${host.port}/${profile ?? ''}`
    let route = this.#routes.get(id)
    if (route === undefined) {
      const upstream = new URL(`${host.https ? 'https' : 'http'}://${host.host}:${host.upstreamPort}/`)
      route = Object.freeze({
        prefix: `//${host.host}:${host.port}/`,
        upstreams: Object.freeze([upstream]),
        rules: profileNamed(profile)?.rules ?? Object.freeze([]),
        timeouts: this.#config.timeouts,
        followRedirects: false,
        profile,
        upstreamAuth: undefined,
        shareAuthenticated: false,
      })
      this.#routes.set(id, route)
    }
    return route
  }
}

/** A profile for a host configured without one, from the shape of the path. */
export function guessProfile(relativePath: string): string | undefined {
  if (/(^|\/)(dists|pool)\//.test(relativePath)) return 'debian'
  if (/(^|\/)APKINDEX\.tar\.gz$|\.apk$/.test(relativePath)) return 'alpine'
  if (/(^|\/)simple\/|\.whl$/.test(relativePath)) return 'pypi'
  if (/^(@[^/]+\/)?[^/]+\/-\/[^/]+\.tgz$/.test(relativePath)) return 'npm'
  return undefined
}

function forbidden(reason: string): Refused {
  return { status: 403, reason, error: new ForbiddenError(reason) }
}
