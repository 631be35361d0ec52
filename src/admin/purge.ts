// src/admin/purge.ts
// POST /_cachemir/purge with {"paths": [...]}, {"prefix": "/p/"} or {"all": true}: removes those
// entries through the one purge sequence (proxy/purge.ts: fills stop storing, the store drops
// every variant, other workers follow) and answers how many were removed. Token or loopback only.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Route } from '../config-types.js'
import type { Deps } from '../proxy/exchange.js'
import { purgeKeyOf, representationKeys } from '../proxy/cache-key.js'
import { purgeKeys } from '../proxy/purge.js'
import { routeRequest } from '../proxy/route.js'
import type { CacheStatusWriter } from '../respond/cache-status.js'
import { sendError } from '../respond/send-error.js'
import { admitted } from './access.js'
import { sendJson, type AdminEndpoint } from './router.js'

const MAX_BODY_BYTES = 64 * 1024

export type PurgeRequest = { readonly paths: readonly string[] } | { readonly prefix: string } | { readonly all: true }

export function purgeEndpoint(
  deps: Pick<Deps, 'store' | 'fills' | 'peers'>,
  routes: readonly Route[],
  token: string | undefined,
  cacheStatus: CacheStatusWriter,
): AdminEndpoint {
  const refuse = (res: ServerResponse, status: number, message: string): void => sendError(res, status, message, cacheStatus.format({}))
  return {
    path: 'purge',
    methods: ['POST'],
    handle: async (req, res) => {
      if (!admitted(req, res, token, cacheStatus)) return
      const body = await readBody(req)
      if (body === undefined) return refuse(res, 413, `request body over ${MAX_BODY_BYTES} bytes`)
      const parsed = parsePurge(body)
      if (typeof parsed === 'string') return refuse(res, 400, parsed)
      const keys = await keysToPurge(deps, routes, parsed)
      if (typeof keys === 'string') return refuse(res, 400, keys)
      const purge = purgeKeys(deps, keys)
      await purge.everywhere
      const removed = (await purge.removed).filter((r) => r.status === 'fulfilled' && r.value).length
      sendJson(req, res, 200, { removed })
    },
  }
}

/** The request's JSON, or a one-line reason it is not a purge request. */
export function parsePurge(text: string): PurgeRequest | string {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return 'expected a JSON body like {"paths": ["/debian/pool/x.deb"]}, {"prefix": "/npm/"} or {"all": true}'
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a JSON object'
  const o = value as Record<string, unknown>
  const given = ['paths', 'prefix', 'all'].filter((k) => o[k] !== undefined)
  if (given.length !== 1) return 'expected exactly one of "paths", "prefix" or "all"'
  if (o['all'] !== undefined) return o['all'] === true ? { all: true } : '"all": expected true'
  if (o['prefix'] !== undefined)
    return typeof o['prefix'] === 'string' && o['prefix'].startsWith('/')
      ? { prefix: o['prefix'] }
      : '"prefix": expected a path starting with /'
  const paths = o['paths']
  if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p): p is string => typeof p === 'string'))
    return '"paths": expected a non-empty array of paths'
  return { paths }
}

async function keysToPurge(deps: Pick<Deps, 'store'>, routes: readonly Route[], request: PurgeRequest): Promise<string[] | string> {
  if ('paths' in request) {
    const keys: string[] = []
    for (const [i, path] of request.paths.entries()) {
      const routed = routeRequest(routes, path)
      if ('error' in routed) return `paths[${i}]: ${routed.reason}`
      keys.push(...representationKeys(routed.route, routed.key))
    }
    return keys
  }
  // A prefix or everything: what the disk index holds, by the key a purge takes (a Vary variant's
  // key is purged through its URL's, which drops every variant).
  const keys = new Set<string>()
  for await (const { meta } of deps.store.list()) {
    const key = purgeKeyOf(meta.key)
    if ('all' in request || key.startsWith(request.prefix)) keys.add(key)
  }
  return [...keys]
}

/** The body as text, or undefined when it is larger than MAX_BODY_BYTES. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length
    if (bytes > MAX_BODY_BYTES) return undefined
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}
