// test/faults/network.test.ts
// The network around the mirror: an HTTP forward proxy named by HTTP_PROXY (and bypassed by
// NO_PROXY) or HTTPS_PROXY (a CONNECT tunnel), an https upstream whose certificate only a private
// CA vouches for (--ca-file), both for fills and for passed-through POSTs, and a SIGTERM while
// responses that never finish are in flight (--shutdown-grace).
//
// The forward proxy is the classic kind (squid's default, or any corporate proxy): plain http
// requests arrive in absolute form (`GET http://host:port/path`) and are forwarded; CONNECT is
// only for TLS on port 443, so a CONNECT to anything else is refused with 403.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request as httpRequest, type OutgoingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'
import { assertBody } from '../helpers/assert.js'
import { cacheStatus, get, getFirstBytes } from '../helpers/client.js'
import { makeBody, sendBody, serveStatic, startOrigin } from '../helpers/origin.js'
import { makePki, startHttpsOrigin } from '../helpers/tls.js'
import { listenOnLoopback } from '../helpers/tcp.js'
import { startProxy, startProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { KiB } from '../helpers/sizes.js'
import { WAIT_MS, within } from '../helpers/wait.js'

const CACHEABLE = { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' }
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

function withoutHopByHop(headers: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
  return out
}

interface ForwardProxy {
  readonly url: string
  /** `METHOD target` of everything that reached the proxy, CONNECTs included. */
  readonly seen: string[]
}

/**
 * A plain HTTP forward proxy on 127.0.0.1:0: absolute-form http requests are recorded and
 * forwarded with node:http; CONNECT is recorded and refused (403), unless `tunnelTo` names the
 * one `host:port` it may open a tunnel to (standing in for port 443).
 */
async function startForwardProxy(t: TestContext, tunnelTo?: string): Promise<ForwardProxy> {
  const seen: string[] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''}`)
    const target = URL.canParse(req.url ?? '') ? new URL(req.url ?? '') : undefined
    if (target === undefined || target.protocol !== 'http:') {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('forward proxy: absolute-form http:// targets only\n')
      return
    }
    const forward = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method: req.method,
        headers: withoutHopByHop(req.headers),
        agent: false,
      },
      (upstream) => {
        res.writeHead(upstream.statusCode ?? 502, withoutHopByHop(upstream.headers))
        upstream.pipe(res)
        upstream.once('error', () => res.destroy())
      },
    )
    forward.once('error', () => {
      if (res.headersSent) res.destroy()
      else res.writeHead(502, { 'content-type': 'text/plain' }).end('forward proxy: upstream error\n')
    })
    req.pipe(forward)
  })
  server.on('connect', (req, socket: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url ?? ''}`)
    socket.on('error', () => {})
    if (tunnelTo === undefined || req.url !== tunnelTo) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      return
    }
    const [host, port] = tunnelTo.split(':') as [string, string]
    const tunnel = connect({ host, port: Number(port) }, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) tunnel.write(head)
      tunnel.pipe(socket)
      socket.pipe(tunnel)
    })
    tunnel.on('error', () => socket.destroy())
    socket.once('close', () => tunnel.destroy())
    sockets.add(tunnel)
    tunnel.once('close', () => sockets.delete(tunnel))
  })
  return { url: `http://127.0.0.1:${await listenOnLoopback(t, server, sockets)}`, seen }
}

test('with HTTP_PROXY set, the real binary reaches an http upstream through the forward proxy with an absolute-form GET', async (t) => {
  const body = makeBody(64 * KiB, 1)
  const origin = await startOrigin(t, serveStatic({ '/base/x': { body, headers: CACHEABLE } }))
  const forward = await startForwardProxy(t)
  const cacheDir = await makeTempDir(t, 'cachemir-proxy-env-')
  const proxy = await startProxyProcess(t, ['--upstream', `${origin.url}/base/`, '--cache-dir', cacheDir], { HTTP_PROXY: forward.url })

  const r = await within(get(proxy.url('/x')), WAIT_MS, 'a GET through the forward proxy')
  assert.deepEqual(forward.seen, [`GET ${origin.url}/base/x`], 'the mirror sent one absolute-form GET to the forward proxy')
  assertBody(r, body, 'through the forward proxy')
  assert.equal(cacheStatus(r), 'cachemir; fwd=miss; stored')
  assert.equal(origin.count('/base/x'), 1)

  const hit = await get(proxy.url('/x'))
  assertBody(hit, body, 'hit')
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  assert.equal(forward.seen.length, 1)
  assert.equal(await within(proxy.kill('SIGTERM'), WAIT_MS, 'exit after SIGTERM'), 0)
})

test('with HTTP_PROXY and NO_PROXY=127.0.0.1 the forward proxy is bypassed', async (t) => {
  const body = makeBody(64 * KiB, 2)
  const origin = await startOrigin(t, serveStatic({ '/base/x': { body, headers: CACHEABLE } }))
  const forward = await startForwardProxy(t)
  const cacheDir = await makeTempDir(t, 'cachemir-proxy-env-')
  const proxy = await startProxyProcess(t, ['--upstream', `${origin.url}/base/`, '--cache-dir', cacheDir], {
    HTTP_PROXY: forward.url,
    NO_PROXY: '127.0.0.1',
  })

  const r = await within(get(proxy.url('/x')), WAIT_MS, 'a GET with the proxy bypassed')
  assertBody(r, body, 'direct')
  assert.equal(cacheStatus(r), 'cachemir; fwd=miss; stored')
  assert.deepEqual(forward.seen, [], 'nothing went through the forward proxy')
  assert.equal(origin.count('/base/x'), 1)
  assert.equal(await within(proxy.kill('SIGTERM'), WAIT_MS, 'exit after SIGTERM'), 0)
})

test('with HTTP_PROXY set, a POST passed through by the real binary also goes through the forward proxy', async (t) => {
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(`posted ${req.url ?? ''}`), { headers: { 'content-type': 'text/plain' } }),
  )
  const forward = await startForwardProxy(t)
  const cacheDir = await makeTempDir(t, 'cachemir-proxy-env-')
  const proxy = await startProxyProcess(t, ['--upstream', `${origin.url}/base/`, '--cache-dir', cacheDir], { HTTP_PROXY: forward.url })

  const r = await within(get(proxy.url('/upload'), { method: 'POST', body: 'payload' }), WAIT_MS, 'a POST through the forward proxy')
  assert.deepEqual(forward.seen, [`POST ${origin.url}/base/upload`], 'the POST went through the forward proxy')
  assert.equal(r.status, 200, r.body.toString())
  assert.equal(r.body.toString(), 'posted /base/upload')
  assert.equal(await within(proxy.kill('SIGTERM'), WAIT_MS, 'exit after SIGTERM'), 0)
})

test('an https upstream with a certificate from a private CA: 502 without --ca-file, served and stored with it', async (t) => {
  const body = makeBody(64 * KiB, 3)
  const pki = await makePki(t)
  const origin = await startHttpsOrigin(t, pki, body)
  const upstream = `${origin.url}/base/`

  const untrusting = await startProxy(t, { upstream })
  const refused = await within(get(untrusting.url('/x')), WAIT_MS, 'the answer without --ca-file')
  assert.equal(refused.status, 502, refused.body.toString())
  assert.match(refused.headers['content-type'] ?? '', /^text\/plain/)
  assert.ok(refused.body.length > 0 && refused.body.length < 512, `short body, got ${refused.body.length} bytes`)
  assert.ok(
    refused.body.toString().includes(`${origin.url}/base/x`),
    `the body names the upstream URL: ${JSON.stringify(refused.body.toString())}`,
  )
  assert.doesNotMatch(cacheStatus(refused), /hit|stored/)
  assert.equal(origin.requests.length, 0, 'no request got past the TLS handshake')
  await untrusting.close()

  const trusting = await startProxy(t, { upstream, caFile: pki.caPath })
  const served = await within(get(trusting.url('/x')), WAIT_MS, 'the answer with --ca-file')
  assertBody(served, body, 'with --ca-file')
  assert.equal(cacheStatus(served), 'cachemir; fwd=miss; stored')
  const hit = await get(trusting.url('/x'))
  assertBody(hit, body, 'hit')
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  assert.deepEqual(
    origin.requests.map((r) => r.url),
    ['/base/x'],
  )
})

test('with --ca-file, a POST passed through to the https upstream from a private CA is trusted too', async (t) => {
  const pki = await makePki(t)
  const origin = await startHttpsOrigin(t, pki, Buffer.from('posted'))
  const proxy = await startProxy(t, { upstream: `${origin.url}/base/`, caFile: pki.caPath })

  const posted = await within(get(proxy.url('/x'), { method: 'POST', body: 'payload' }), WAIT_MS, 'a POST with --ca-file')
  assert.equal(posted.status, 200, `POST with --ca-file: ${posted.body.toString()}`)
  assert.equal(posted.body.toString(), 'posted')
  assert.match(cacheStatus(posted), /fwd=method/)
  assert.deepEqual(
    origin.requests.map((r) => `${r.method} ${r.url}`),
    ['POST /base/x'],
  )
})

test('with HTTPS_PROXY set, an https upstream from a private CA is reached through a CONNECT tunnel and trusted with --ca-file', async (t) => {
  const body = makeBody(64 * KiB, 5)
  const pki = await makePki(t)
  const origin = await startHttpsOrigin(t, pki, body)
  const hostPort = new URL(origin.url).host
  const forward = await startForwardProxy(t, hostPort)
  const cacheDir = await makeTempDir(t, 'cachemir-proxy-env-')
  const args = ['--upstream', `${origin.url}/base/`, '--cache-dir', cacheDir, '--ca-file', pki.caPath]
  const proxy = await startProxyProcess(t, args, { HTTPS_PROXY: forward.url })

  const r = await within(get(proxy.url('/x')), WAIT_MS, 'a GET through the tunnel')
  assert.deepEqual(forward.seen, [`CONNECT ${hostPort}`], 'the mirror tunnelled through the forward proxy')
  assertBody(r, body, 'through the tunnel')
  assert.equal(cacheStatus(r), 'cachemir; fwd=miss; stored')
  assert.deepEqual(
    origin.requests.map((q) => q.url),
    ['/base/x'],
  )
  assert.equal(await within(proxy.kill('SIGTERM'), WAIT_MS, 'exit after SIGTERM'), 0)
})

test('SIGTERM with --shutdown-grace 500ms and responses that never finish in flight: the process exits 0 within a few seconds, the clients are cut short', async (t) => {
  const body = makeBody(1024 * KiB, 4)
  const origin = await startOrigin(t, (req, res) => {
    const cc = req.url === '/stuck-pass.bin' ? { 'cache-control': 'no-store' } : CACHEABLE
    return sendBody(req, res, body, { headers: cc, stallAfterBytes: 64 * KiB })
  })
  const cacheDir = await makeTempDir(t, 'cachemir-grace-')
  const proxy = await startProxyProcess(t, ['--upstream', origin.url, '--cache-dir', cacheDir, '--shutdown-grace', '500ms'])

  // A fill and a pass-through, each stalled after its first 64 KiB.
  const fill = await within(getFirstBytes(proxy.url('/stuck.bin'), 1), WAIT_MS, 'the stalled fill to start')
  t.after(() => fill.abort())
  const pass = await within(getFirstBytes(proxy.url('/stuck-pass.bin'), 1), WAIT_MS, 'the stalled pass-through to start')
  t.after(() => pass.abort())
  assert.equal(fill.status, 200)
  assert.equal(pass.status, 200)

  const exited = proxy.kill('SIGTERM')
  // The default grace is 10 s; 5 s leaves room for a slow machine and still tells them apart.
  const code = await within(exited, 5_000, 'exit after SIGTERM with --shutdown-grace 500ms')
  assert.equal(code, 0, proxy.output().slice(-2000))
  assert.match(proxy.output(), /"graceMs":500\b/, 'the shutdown log line names the configured grace')

  for (const [name, client] of [
    ['fill', fill],
    ['pass-through', pass],
  ] as const) {
    const r = await within(client.rest(), WAIT_MS, `the ${name} client to see the end`)
    assert.equal(r.complete, false, `${name}: the unfinished response must not end cleanly`)
    assert.ok(r.body.length < body.length, `${name}: got ${r.body.length} of ${body.length} bytes`)
    assert.deepEqual(r.body, body.subarray(0, r.body.length), `${name}: what arrived is the start of the body`)
  }
  assert.equal(origin.count('/stuck.bin'), 1)
  assert.equal(origin.count('/stuck-pass.bin'), 1)
})
