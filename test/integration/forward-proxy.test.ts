// test/integration/forward-proxy.test.ts
// The mirror as an HTTP proxy (--proxy-allow): absolute-form requests for allowed hosts are
// fetched from them and cached under keys that name the host, with the host's profile; other
// hosts get 403 and are never contacted; an https:// entry fetches over TLS while the client
// speaks HTTP. CONNECT is refused unless --connect-allow lists the target, then it tunnels bytes.
// The real curl, used with -x, drives it as a user's tools would.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { request as httpRequest } from 'node:http'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { promisify } from 'node:util'
import { makeBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { makePki, startHttpsOrigin } from '../helpers/tls.js'
import { KiB } from '../helpers/sizes.js'

const run = promisify(execFile)
const NO_VALIDATORS = { 'content-type': 'application/octet-stream' }

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** One absolute-form GET sent to the mirror as to a proxy (what HTTP_PROXY clients send). */
function proxyGet(proxyPort: number, url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: proxyPort, path: url, headers: { host: new URL(url).host }, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end()
  })
}

test('an allowed host is proxied and cached under a key naming the host, with its profile; other hosts get 403 unseen', async (t) => {
  const deb = makeBody(64 * KiB, 1)
  const origin = await startOrigin(
    t,
    serveStatic({
      '/debian/pool/main/a.deb': { body: deb, headers: NO_VALIDATORS },
      '/other': { body: Buffer.from('o'), headers: NO_VALIDATORS },
    }),
  )
  const other = await startOrigin(t, serveStatic({ '/x': { body: Buffer.from('x'), headers: NO_VALIDATORS } }))
  const sameOriginRoute = await startOrigin(
    t,
    serveStatic({ '/debian/pool/main/a.deb': { body: Buffer.from('route'), headers: NO_VALIDATORS } }),
  )
  const proxy = await startProxy(t, { upstream: sameOriginRoute.url, proxyAllow: `127.0.0.1:${origin.port}` })

  const url = `${origin.url}/debian/pool/main/a.deb`
  const first = await proxyGet(proxy.port, url)
  assert.equal(first.status, 200)
  assert.equal(sha256(first.body), sha256(deb))
  assert.match(String(first.headers['cache-status']), /fwd=miss; stored/)
  // No validators, yet a hit: the guessed debian profile makes pool/ immutable.
  const second = await proxyGet(proxy.port, url)
  assert.match(String(second.headers['cache-status']), /^cachemir; hit/)
  assert.equal(sha256(second.body), sha256(deb))
  assert.equal(origin.count('/debian/pool/main/a.deb'), 1)

  // The same path through the route is another key: the proxied host's copy never answers it.
  const routed = await fetch(proxy.url('/debian/pool/main/a.deb'))
  assert.equal(await routed.text(), 'route')

  const denied = await proxyGet(proxy.port, `${other.url}/x`)
  assert.equal(denied.status, 403)
  assert.equal(other.count(), 0, 'a host outside --proxy-allow is never contacted')
})

test('without --proxy-allow an absolute-form request is refused as before', async (t) => {
  const origin = await startOrigin(t, serveStatic({ '/x': { body: Buffer.from('x'), headers: NO_VALIDATORS } }))
  const proxy = await startProxy(t, { upstream: origin.url })
  const r = await proxyGet(proxy.port, `${origin.url}/x`)
  assert.equal(r.status, 400)
  assert.equal(origin.count(), 0)
})

test('an https:// entry: the client speaks HTTP to the mirror, the mirror fetches over TLS', async (t) => {
  const body = makeBody(16 * KiB, 2)
  const pki = await makePki(t)
  const origin = await startHttpsOrigin(t, pki, body, NO_VALIDATORS)
  const port = new URL(origin.url).port
  const fallback = await startOrigin(t, serveStatic({}))
  const proxy = await startProxy(t, { upstream: fallback.url, proxyAllow: `https://127.0.0.1:${port}`, caFile: pki.caPath })

  const r = await proxyGet(proxy.port, 'http://127.0.0.1/base/x')
  assert.equal(r.status, 200)
  assert.equal(sha256(r.body), sha256(body))
  assert.deepEqual(
    origin.requests.map((q) => q.url),
    ['/base/x'],
  )
})

test('the real curl through -x: fetched once, then a hit', async (t) => {
  const body = makeBody(8 * KiB, 3)
  const origin = await startOrigin(t, serveStatic({ '/pool/main/b.deb': { body, headers: NO_VALIDATORS } }))
  const proxy = await startProxy(t, { upstream: origin.url, proxyAllow: `127.0.0.1:${origin.port}` })
  for (let i = 0; i < 2; i++) {
    const { stdout } = await run(
      'curl',
      [
        '-sS',
        '--noproxy',
        '',
        '-x',
        `http://127.0.0.1:${proxy.port}`,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{size_download}',
        `${origin.url}/pool/main/b.deb`,
      ],
      { env: { PATH: process.env.PATH ?? '' }, timeout: 20_000 },
    )
    assert.equal(stdout, `200 ${body.length}`)
  }
  assert.equal(origin.count('/pool/main/b.deb'), 1)
})

/** A TCP server that answers every line with "echo: <line>". */
async function startEcho(t: Parameters<typeof startOrigin>[0]): Promise<{ port: number; connections: () => number }> {
  let connections = 0
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    connections++
    sockets.add(socket)
    socket.on('data', (d: Buffer) => socket.write(`echo: ${d.toString()}`))
    socket.on('error', () => socket.destroy())
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t?.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  )
  return { port: (server.address() as AddressInfo).port, connections: () => connections }
}

/** Sends CONNECT, then `line` once the answer's head is in; resolves with all it read until close or 2 s. */
function tunnel(proxyPort: number, target: string, line: string): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    let sent = false
    const socket = connect(proxyPort, '127.0.0.1', () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`))
    const timer = setTimeout(() => socket.destroy(), 2000)
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      if (!sent && text.includes('\r\n\r\n')) {
        sent = true
        if (text.startsWith('HTTP/1.1 200')) socket.write(line)
      }
      if (text.includes('echo: ')) socket.destroy()
    })
    socket.on('error', () => socket.destroy())
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(text)
    })
  })
}

test('CONNECT tunnels only to --connect-allow targets; others get 403 and are never contacted', async (t) => {
  const allowed = await startEcho(t)
  const denied = await startEcho(t)
  const origin = await startOrigin(t, serveStatic({}))
  const proxy = await startProxy(t, { upstream: origin.url, connectAllow: `127.0.0.1:${allowed.port}` })

  const through = await tunnel(proxy.port, `127.0.0.1:${allowed.port}`, 'hello\n')
  assert.match(through, /^HTTP\/1\.1 200 Connection Established\r\n\r\necho: hello\n$/)
  const refused = await tunnel(proxy.port, `127.0.0.1:${denied.port}`, 'hello\n')
  assert.match(refused, /^HTTP\/1\.1 403 /)
  assert.equal(denied.connections(), 0)
  assert.equal(allowed.connections(), 1)
})
