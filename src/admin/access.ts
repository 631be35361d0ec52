// src/admin/access.ts
// Who may use an admin endpoint that changes state: the holder of --admin-token (a bearer token,
// compared in constant time), or, when no token is configured, a client on loopback only.

import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheStatusWriter } from '../respond/cache-status.js'
import { sendError } from '../respond/send-error.js'

export type Access = 'allowed' | 'unauthenticated' | 'forbidden'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/

/** 401 for no credentials where a token is needed, 403 for wrong ones or a non-loopback client. */
export function checkAccess(req: IncomingMessage, token: string | undefined): Access {
  if (token === undefined) return LOOPBACK.test(req.socket.remoteAddress ?? '') ? 'allowed' : 'forbidden'
  const given = /^Bearer +(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1]
  if (given === undefined) return 'unauthenticated'
  // Digests first: timingSafeEqual needs equal lengths, and the length must not leak either.
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(token).digest()
  return timingSafeEqual(a, b) ? 'allowed' : 'forbidden'
}

/** Answers 401 (with WWW-Authenticate) or 403 and returns false unless the request may change state. */
export function admitted(req: IncomingMessage, res: ServerResponse, token: string | undefined, cacheStatus: CacheStatusWriter): boolean {
  const access = checkAccess(req, token)
  if (access === 'allowed') return true
  if (access === 'unauthenticated') res.setHeader('WWW-Authenticate', 'Bearer')
  sendError(
    res,
    access === 'unauthenticated' ? 401 : 403,
    access === 'unauthenticated' ? 'admin token required' : 'not allowed',
    cacheStatus.format({}),
  )
  return false
}
