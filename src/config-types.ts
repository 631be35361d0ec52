// src/config-types.ts
// The shapes of a resolved configuration. A module of its own so that config.ts, config-file.ts
// and config-values.ts can all use them without importing one another in a circle.

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
  /** Where the rule comes from, for `cachemir profiles` and logs: a profile's reason for it. */
  readonly why?: string
}

/** Limits on one upstream exchange. */
export interface Timeouts {
  /** TCP (and TLS) connect. */
  readonly connectMs: number
  /** From sending the request to the end of the response headers. */
  readonly headersMs: number
  /** Longest silence between two body chunks; a stalled body is a mid-body failure. */
  readonly bodyIdleMs: number
}

export type TimeoutOverrides = Partial<Timeouts>

export interface Route {
  /** Path prefix served by this route; starts and ends with `/` (the catch-all route is `/`). */
  readonly prefix: string
  /** Equivalent upstream base URLs, tried in order; each ends with `/`. */
  readonly upstreams: readonly URL[]
  /** First matching rule wins; no match means mode `default`. */
  readonly rules: readonly CacheRule[]
  /** This route's upstream limits (the global ones, overridden per route). */
  readonly timeouts: Timeouts
  /** Follow upstream redirects that stay within this route's upstreams, storing the target under the requested key. */
  readonly followRedirects: boolean
  /** The ecosystem profile (debian, alpine, npm, pypi, static) whose rules follow the route's own. */
  readonly profile: string | undefined
  /**
   * A credential sent on every upstream request of this route (`upstreamAuth`): the lower-case
   * header name and its whole value, read from the environment. Undefined: none.
   */
  readonly upstreamAuth: { readonly header: string; readonly value: string } | undefined
  /** Store and share what was fetched with `upstreamAuth` (default false: nothing is stored, each request goes upstream). */
  readonly shareAuthenticated: boolean
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
  /** Serve only from cache; never contact an upstream. */
  readonly offline: boolean
  /** After SIGTERM, how long in-flight responses may run on before connections are closed. */
  readonly shutdownGraceMs: number
  /** Extra trusted CA certificates (PEM) for https upstreams. */
  readonly ca: string | undefined
  /** Default upstream limits (routes may override). */
  readonly timeouts: Timeouts
  /** Server processes sharing the port and the disk cache (1: no cluster). */
  readonly workers: number
  /** This node's name in the Cache-Status it writes (an RFC 8941 token). */
  readonly name: string
  /**
   * The mirror's public base URL (`--public-url`), used where served metadata points at the
   * mirror; undefined: the scheme and Host the client used.
   */
  readonly publicUrl: string | undefined
  /**
   * The bearer token the admin API's state-changing endpoints require (`--admin-token`); without
   * one they answer loopback clients only. Never logged.
   */
  readonly adminToken: string | undefined
  /** Between background syncs of every cached entry with its upstream (`--sync-every`); undefined: none. */
  readonly syncEveryMs: number | undefined
  /** `json` (pino's lines, the default) or `pretty` (pino-pretty's human lines, for a terminal). */
  readonly logFormat: 'json' | 'pretty'
  /** Hosts whose absolute-form requests (the mirror as an HTTP proxy) are fetched and cached. */
  readonly proxyAllow: readonly ProxyHost[]
  /** Where CONNECT may open a tunnel (uncached); empty: CONNECT is refused. */
  readonly connectAllow: readonly ConnectTarget[]
}

/** A host the mirror serves as a forward proxy (`--proxy-allow`). */
export interface ProxyHost {
  /** Lower-case host name, as clients write it in absolute-form requests. */
  readonly host: string
  /** The port clients name (80 when they name none). */
  readonly port: number
  /** Fetch from the host over HTTPS although the client speaks HTTP to the mirror. */
  readonly https: boolean
  /** The port the mirror fetches from. */
  readonly upstreamPort: number
  /** Its profile; undefined: guessed from each request's path. */
  readonly profile: string | undefined
}

export interface ConnectTarget {
  readonly host: string
  readonly port: number
}
