// src/respond/send-error.ts
// Errors as responses: a status and a short plain-text body while headers are unsent; once they
// are out, the only honest signal left is closing the connection.

import type { ServerResponse } from 'node:http'
import { isCachemirError } from '../errors.js'

/** `cacheStatus` is the Cache-Status value to send (from the mirror's CacheStatusWriter). */
export function sendError(res: ServerResponse, status: number, message: string, cacheStatus: string): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = `${message}\n`
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'Cache-Status': cacheStatus,
  })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

/** 502 for an unreachable or failing upstream, 504 for a timeout, 500 for anything else. */
export function sendFailure(res: ServerResponse, err: unknown, cacheStatus: string): void {
  if (isCachemirError(err)) sendError(res, err.statusCode, err.message, cacheStatus)
  else sendError(res, 500, 'internal error', cacheStatus)
}
