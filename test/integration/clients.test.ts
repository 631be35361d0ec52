// test/integration/clients.test.ts
// Real clients against the mirror: curl for downloads and resumes, a raw socket for an upgrade.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { connect } from 'node:net'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startOrigin, makeBody, sha256, serveStatic } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { listenOnLoopback } from '../helpers/tcp.js'

const run = promisify(execFile)

test('curl downloads through the mirror; the second download is a hit with identical bytes', async (t) => {
  const body = makeBody(3 * 1024 * 1024, 7)
  const origin = await startOrigin(t, serveStatic({ '/pool/big.bin': { body, etag: '"b1"', headers: { 'cache-control': 'max-age=600' } } }))
  const proxy = await startProxy(t, { upstream: origin.url })
  const dir = await makeTempDir(t)

  const first = await run('curl', ['-sS', '-D', '-', '-o', join(dir, 'a'), proxy.url('/pool/big.bin')])
  const second = await run('curl', ['-sS', '-D', '-', '-o', join(dir, 'b'), proxy.url('/pool/big.bin')])

  assert.match(first.stdout, /^HTTP\/1\.1 200/)
  assert.match(first.stdout, /cache-status: cachemir; fwd=miss; stored/i)
  assert.match(second.stdout, /cache-status: cachemir; hit/i)
  assert.match(second.stdout, /^age: \d+/im)
  assert.equal(sha256(await readFile(join(dir, 'a'))), sha256(body))
  assert.equal(sha256(await readFile(join(dir, 'b'))), sha256(body))
  assert.equal(origin.count('/pool/big.bin'), 1)
})

test('curl resumes a partial download from the cache with a range request', async (t) => {
  const body = makeBody(2 * 1024 * 1024, 9)
  const origin = await startOrigin(t, serveStatic({ '/f.iso': { body, etag: '"i1"', headers: { 'cache-control': 'max-age=600' } } }))
  const proxy = await startProxy(t, { upstream: origin.url })
  const dir = await makeTempDir(t)
  const out = join(dir, 'f.iso')
  // A first, interrupted download: the first 1000 bytes only.
  await run('curl', ['-sS', '-r', '0-999', '-o', out, proxy.url('/f.iso')])
  assert.equal((await readFile(out)).length, 1000)
  // `curl -C -` continues where the file ends.
  const resumed = await run('curl', ['-sS', '-D', '-', '-C', '-', '-o', out, proxy.url('/f.iso')])

  assert.match(resumed.stdout, /^HTTP\/1\.1 206/)
  assert.match(resumed.stdout, /content-range: bytes 1000-2097151\/2097152/i)
  assert.equal(sha256(await readFile(out)), sha256(body))
  assert.equal(origin.count('/f.iso'), 1)
})

test('a WebSocket upgrade is passed through to the upstream and the tunnel carries bytes both ways', async (t) => {
  // The origin accepts the upgrade and echoes what it receives, upper-cased.
  const server = (await import('node:http')).createServer()
  const sockets = new Set<import('node:stream').Duplex>()
  server.on('upgrade', (req, socket) => {
    sockets.add(socket)
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Path: ${req.url}\r\n\r\n`)
    socket.on('data', (d: Buffer) => socket.write(d.toString().toUpperCase()))
  })
  const port = await listenOnLoopback(t, server, sockets)
  const proxy = await startProxy(t, { upstream: `http://127.0.0.1:${port}/base/` })

  const socket = connect(proxy.port, '127.0.0.1')
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  socket.write('GET /chat HTTP/1.1\r\nHost: mirror\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
  let received = ''
  socket.on('data', (d: Buffer) => (received += d.toString()))
  await waitFor(
    () => received.includes('\r\n\r\n'),
    () => received,
  )
  assert.match(received, /^HTTP\/1\.1 101/)
  assert.match(received, /x-path: \/base\/chat/i)
  socket.write('hello')
  await waitFor(() => received.endsWith('HELLO'))
})

async function waitFor(check: () => boolean, seen: () => string = () => '', timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting; received: ${JSON.stringify(seen())}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
