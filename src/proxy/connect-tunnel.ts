// src/proxy/connect-tunnel.ts
// CONNECT for the host:port pairs in --connect-allow: a plain TCP tunnel (TLS end to end, so
// nothing is cached). Every other CONNECT is refused: the mirror is never a tunnel to anywhere.

import { connect, type Socket } from 'node:net'
import type { Logger } from 'pino'
import type { ConnectTarget } from '../config-types.js'

/** `host:port` of a CONNECT request target, lower-cased; undefined when it is not one. */
export function connectTarget(target: string | undefined): ConnectTarget | undefined {
  const m = target === undefined ? null : /^([^:\s/]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(target)
  return m === null ? undefined : { host: (m[1] as string).toLowerCase(), port: Number(m[2]) }
}

export function isConnectAllowed(allowed: readonly ConnectTarget[], target: ConnectTarget): boolean {
  return allowed.some((a) => a.host === target.host && a.port === target.port)
}

/**
 * Opens the tunnel: answers 200 once the upstream connection is up (502 when it cannot be made),
 * then copies bytes both ways; either side closing or failing ends both. `track` lets the server
 * end open tunnels when it closes.
 */
export function openTunnel(client: Socket, head: Buffer, target: ConnectTarget, log: Logger, track: (s: Socket) => void): void {
  const upstream = connect(target.port, target.host)
  track(upstream)
  const endBoth = (): void => {
    client.destroy()
    upstream.destroy()
  }
  upstream.once('connect', () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    if (head.length > 0) upstream.write(head)
    upstream.pipe(client)
    client.pipe(upstream)
  })
  upstream.on('error', (err) => {
    log.info({ err: { message: err.message }, host: target.host, port: target.port }, 'tunnel upstream failed')
    if (client.writable && upstream.connecting)
      client.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', endBoth)
    else endBoth()
  })
  upstream.on('close', endBoth)
  client.on('close', endBoth)
  client.on('error', endBoth)
}
