// src/proxy/exchange.ts
// What every step of the request flow is handed: the request's Exchange and the mirror's Deps.

import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { TieredStore } from '../cache/tiered-store.js'
import type { Integrity } from '../integrity/integrity.js'
import type { Peers } from '../cluster/peers.js'
import { bindTransform, type BodyTransform, type ServedTransform } from '../respond/body-transform.js'
import { publicBase } from './public-base.js'
import type { ForwardProxy } from './forward-proxy.js'
import type { CacheOutcome, CacheStatusWriter } from '../respond/cache-status.js'
import type { FillRegistry } from '../upstream/fill-registry.js'
import type { UpstreamClient } from '../upstream/client.js'
import type { PassThrough } from './pass-through.js'
import type { Routed } from './route.js'

export interface Deps {
  readonly config: Config
  readonly store: TieredStore
  readonly fills: FillRegistry
  readonly upstream: UpstreamClient
  readonly passThrough: PassThrough
  readonly now: () => number
  /** The other workers, when this process is one of `serve --workers N`. */
  readonly peers: Peers | undefined
  /** Writes every Cache-Status this mirror sends, under its node name. */
  readonly cacheStatus: CacheStatusWriter
  /** Body transforms by route prefix (empty: every route serves the stored bytes). */
  readonly transforms: ReadonlyMap<string, BodyTransform>
  /** Absolute-form requests for --proxy-allow hosts; undefined when none are allowed. */
  readonly forward: ForwardProxy | undefined
  /** Checks of npm, apt and PyPI files against their published digests. */
  readonly integrity: Integrity
}

/** One request's context; the handler fills in what the request-completed log line reports. */
export interface Exchange {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly log: Logger
  /** Handed over by another worker of the group: answer here, never forward again. */
  readonly fromPeer: boolean
  outcome: CacheOutcome
  upstreamMs: number | undefined
  /** The prefix of the route (or forward-proxy host) that answered, for the metrics. */
  route: string | undefined
}

/** The route's body transform bound to this request (its base URL), if the route has one. */
export function routeTransform(deps: Deps, routed: Routed, req: IncomingMessage): ServedTransform | undefined {
  const transform = deps.transforms.size === 0 ? undefined : deps.transforms.get(routed.route.prefix)
  if (transform === undefined) return undefined
  const base = publicBase(deps.config, req)
  return bindTransform(transform, { base }, () => createHash('sha256').update(base).digest('hex').slice(0, 8))
}

/** Why a request went upstream, in the Cache-Status words. */
export type Fwd = NonNullable<CacheOutcome['fwd']>
