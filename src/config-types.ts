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
}
