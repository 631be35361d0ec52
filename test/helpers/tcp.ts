// test/helpers/tcp.ts
// Raw TCP on 127.0.0.1, below HTTP: exchanges that report who closed the connection, a listener
// that only counts who reached it, and a port that nothing listens on.

import { connect, createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import type { TestContext } from 'node:test'

export interface RawExchange {
  /** Everything received, latin1. */
  readonly text: string
  /** The status code of the first response, or 0 when nothing parseable came back. */
  readonly status: number
  /** True when the server ended or reset the connection (false: the test gave up waiting). */
  readonly closedByServer: boolean
}

/** The status code of the HTTP/1.0 or HTTP/1.1 status line `raw` starts with, or 0 without one. */
export function statusOf(raw: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw)
  return m === null ? 0 : Number(m[1])
}

/**
 * Writes `parts` over one TCP connection (each part after `gapMs`), then waits until the server
 * closes the connection or `silenceMs` pass without a byte. Never throws after connecting.
 */
export function rawExchange(
  port: number,
  parts: readonly (string | Buffer)[],
  opts: { gapMs?: number; silenceMs?: number } = {},
): Promise<RawExchange> {
  const gapMs = opts.gapMs ?? 0
  const silenceMs = opts.silenceMs ?? 3000
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let settled = false
    let connected = false
    let timer: NodeJS.Timeout | undefined
    const socket = connect({ port, host: '127.0.0.1' })
    const finish = (closedByServer: boolean): void => {
      if (settled) return
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      socket.destroy()
      const text = Buffer.concat(chunks).toString('latin1')
      resolve({ text, status: statusOf(text), closedByServer })
    }
    socket.setTimeout(silenceMs, () => finish(false))
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.once('end', () => finish(true))
    socket.once('close', () => finish(true))
    socket.once('error', (err) => {
      if (connected) return finish(true)
      settled = true
      socket.destroy()
      reject(err)
    })
    socket.once('connect', () => {
      connected = true
      let i = 0
      const writeNext = (): void => {
        if (settled || socket.destroyed) return
        const part = parts[i++]
        if (part === undefined) return
        socket.write(part)
        if (i < parts.length) timer = setTimeout(writeNext, gapMs)
      }
      writeNext()
    })
  })
}

export interface TcpSink {
  readonly port: number
  /** Connections accepted so far. */
  connections(): number
  /** Everything any connection sent, latin1. */
  received(): string
}

/** A TCP listener on 127.0.0.1:0 that accepts, records and never answers; closed by t.after. */
export async function startTcpSink(t: TestContext): Promise<TcpSink> {
  const sockets = new Set<Socket>()
  let connections = 0
  const chunks: Buffer[] = []
  const server = createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    received: () => Buffer.concat(chunks).toString('latin1'),
  }
}

/** A port on 127.0.0.1 with nothing listening on it: connections to it are refused. */
export async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * Listens on 127.0.0.1:0 and returns the port. Every connection (and every upgraded socket the
 * caller adds to `sockets`) is destroyed and the server closed by t.after.
 */
export async function listenOnLoopback(
  t: TestContext,
  server: import('node:net').Server & { closeAllConnections?(): void },
  sockets: Set<import('node:stream').Duplex> = new Set(),
): Promise<number> {
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections?.()
        for (const socket of sockets) socket.destroy()
      }),
  )
  return (server.address() as AddressInfo).port
}
