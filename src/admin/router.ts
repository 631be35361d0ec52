// src/admin/router.ts
// Everything under /_cachemir/: the mirror's own endpoints, never routed upstream. One router;
// each endpoint (health now; ready, metrics, stats, purge, the dashboard next) plugs into it.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { NotFoundError } from '../errors.js'
import type { CacheStatusWriter } from '../respond/cache-status.js'
import { sendError, sendFailure } from '../respond/send-error.js'

/** Paths under this prefix are the mirror's own endpoints. */
export const ADMIN_PREFIX = '/_cachemir/'

/** Answers one admin request; may be async (the router catches its failures). */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

export interface AdminEndpoint {
  /** The path below ADMIN_PREFIX, e.g. `health`. */
  readonly path: string
  /** Methods it answers; others get 405 with Allow. */
  readonly methods: readonly string[]
  readonly handle: AdminHandler
}

/** Whether `path` (without the query) belongs to the admin room rather than to a route. */
export function isAdminPath(path: string): boolean {
  return path.startsWith(ADMIN_PREFIX) || path === '/_cachemir'
}

export class AdminRouter {
  readonly #endpoints = new Map<string, AdminEndpoint>()
  readonly #cacheStatus: CacheStatusWriter

  constructor(cacheStatus: CacheStatusWriter) {
    this.#cacheStatus = cacheStatus
  }

  add(endpoint: AdminEndpoint): this {
    this.#endpoints.set(ADMIN_PREFIX + endpoint.path, endpoint)
    return this
  }

  /** Answers a request whose path isAdminPath(); undefined when answered synchronously. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    const path = (req.url ?? '').split('?', 1)[0] ?? ''
    const endpoint = this.#endpoints.get(path)
    if (endpoint === undefined) {
      sendFailure(res, new NotFoundError('no such cachemir endpoint'), this.#cacheStatus.format({}))
      return undefined
    }
    if (!endpoint.methods.includes(req.method ?? 'GET')) {
      res.setHeader('Allow', endpoint.methods.join(', '))
      sendError(res, 405, 'method not allowed', this.#cacheStatus.format({}))
      return undefined
    }
    const answered = endpoint.handle(req, res)
    return answered === undefined ? undefined : answered
  }
}

/** Sends `value` as a JSON body that no cache keeps. */
export function sendJson(req: IncomingMessage, res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) })
  res.end(req.method === 'HEAD' ? undefined : body)
}
