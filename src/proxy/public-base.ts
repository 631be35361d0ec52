// src/proxy/public-base.ts
// The mirror's base URL as one client reaches it, for metadata rewritten to point at the mirror:
// the configured --public-url, else the scheme and Host the client used. The Host is checked,
// since it ends up inside served bodies; a Host that is not a plain name or address is not used.

import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { Config } from '../config.js'

/** host[:port], or an IPv6 literal in brackets[:port]: nothing that could break out of a URL. */
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

export function publicBase(config: Pick<Config, 'publicUrl'>, req: IncomingMessage): string {
  if (config.publicUrl !== undefined) return config.publicUrl
  const scheme = (req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http'
  const host = req.headers.host
  if (host !== undefined && HOST.test(host)) return `${scheme}://${host.toLowerCase()}`
  // No usable Host (HTTP/1.0, or a malformed one): the address this connection reached.
  const local = req.socket.localAddress ?? '127.0.0.1'
  const address = local.includes(':') ? `[${local.replace(/^::ffff:(?=\d)/, '')}]` : local
  return `${scheme}://${address.startsWith('[') && /^\[\d+\.\d+\.\d+\.\d+\]$/.test(address) ? address.slice(1, -1) : address}:${req.socket.localPort ?? 80}`
}
