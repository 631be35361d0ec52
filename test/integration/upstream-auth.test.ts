// test/integration/upstream-auth.test.ts
// Private upstreams: a route's credential (upstreamAuth) on every upstream request, what is stored
// and shared with and without shareAuthenticated, and the secret kept out of logs and health.

import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { connect } from 'node:net'
import type { Duplex } from 'node:stream'
import { ConfigError } from '../../src/errors.js'
import { cacheStatus, get } from '../helpers/client.js'
import { serveStatic, startOrigin, type Origin } from '../helpers/origin.js'
import { getHealth, startConfiguredProxy, type Proxy } from '../helpers/proxy.js'
import { closedPort } from '../helpers/tcp.js'
import { until, waitForFills } from '../helpers/wait.js'
import { listenOnLoopback } from '../helpers/tcp.js'

const SECRET = 'sekrit-7f3a9c1e-token'
const ENV = { PRIVATE_TOKEN: SECRET }
const BEARER = { env: 'PRIVATE_TOKEN', scheme: 'Bearer' }

/** An origin with one fresh file, /pkg, and one that must be revalidated on every use, /index. */
function startPrivateOrigin(t: TestContext): Promise<Origin> {
  return startOrigin(
    t,
    serveStatic({
      '/pkg': { body: 'package', headers: { 'cache-control': 'max-age=60' } },
      '/index': { body: 'index', etag: '"i1"', headers: { 'cache-control': 'no-cache' } },
    }),
  )
}

/** A mirror with one route `/` in front of `origin` and these extra route keys. */
function startPrivateProxy(t: TestContext, origin: Origin, keys: Record<string, unknown>): Promise<Proxy> {
  return startConfiguredProxy(t, { routes: [{ prefix: '/', upstreams: [`${origin.url}/`], ...keys }] }, { env: ENV })
}

test('with shareAuthenticated the fill carries the bearer token and the second request is a hit', async (t) => {
  const origin = await startPrivateOrigin(t)
  const proxy = await startPrivateProxy(t, origin, { upstreamAuth: BEARER, shareAuthenticated: true })

  const first = await get(proxy.url('/pkg'))
  await waitForFills(proxy)
  const second = await get(proxy.url('/pkg'))

  assert.equal(first.body.toString(), 'package')
  assert.equal(cacheStatus(first), 'cachemir; fwd=miss; stored')
  assert.equal(second.body.toString(), 'package')
  assert.match(cacheStatus(second), /^cachemir; hit/)
  assert.equal(origin.count('/pkg'), 1)
  assert.equal(origin.requests[0]?.headers.authorization, `Bearer ${SECRET}`)
})

test('without shareAuthenticated every request is its own upstream request with the token, and nothing is stored', async (t) => {
  const origin = await startPrivateOrigin(t)
  const proxy = await startPrivateProxy(t, origin, { upstreamAuth: BEARER })

  const first = await get(proxy.url('/pkg'))
  const second = await get(proxy.url('/pkg'))
  const head = await get(proxy.url('/pkg'), { method: 'HEAD' })

  for (const res of [first, second, head]) {
    assert.equal(res.status, 200)
    assert.equal(cacheStatus(res), 'cachemir; fwd=bypass')
  }
  assert.equal(second.body.toString(), 'package')
  assert.equal(origin.count('/pkg'), 3)
  assert.deepEqual(
    origin.requests.map((r) => r.headers.authorization),
    [`Bearer ${SECRET}`, `Bearer ${SECRET}`, `Bearer ${SECRET}`],
  )
  const { store } = await getHealth<{ store: { memoryEntries: number; diskEntries: number } }>(proxy)
  assert.deepEqual([store.memoryEntries, store.diskEntries], [0, 0])
})

test('without a scheme the variable is the whole value of the named header, and Authorization is left alone', async (t) => {
  const origin = await startPrivateOrigin(t)
  const proxy = await startPrivateProxy(t, origin, { upstreamAuth: { env: 'PRIVATE_TOKEN', header: 'X-Api-Key' } })

  const res = await get(proxy.url('/pkg'))

  assert.equal(res.body.toString(), 'package')
  assert.equal(origin.count('/pkg'), 1)
  assert.equal(origin.requests[0]?.headers['x-api-key'], SECRET)
  assert.equal(origin.requests[0]?.headers.authorization, undefined)
})

test('revalidations and passed-on methods carry the credential too', async (t) => {
  const origin = await startPrivateOrigin(t)
  const proxy = await startPrivateProxy(t, origin, { upstreamAuth: BEARER, shareAuthenticated: true })

  await get(proxy.url('/index'))
  await waitForFills(proxy)
  const revalidated = await get(proxy.url('/index'))
  const posted = await get(proxy.url('/upload'), { method: 'POST', body: 'data' })

  assert.equal(revalidated.body.toString(), 'index')
  assert.equal(cacheStatus(revalidated), 'cachemir; fwd=stale; fwd-status=304')
  assert.equal(posted.status, 404)
  assert.equal(cacheStatus(posted), 'cachemir; fwd=method')
  assert.deepEqual(
    origin.requests.map((r) => [r.method, r.url, r.headers['if-none-match'], r.headers.authorization]),
    [
      ['GET', '/index', undefined, `Bearer ${SECRET}`],
      ['GET', '/index', '"i1"', `Bearer ${SECRET}`],
      ['POST', '/upload', undefined, `Bearer ${SECRET}`],
    ],
  )
})

test('a WebSocket upgrade reaches the upstream with the credential', async (t) => {
  const server = createServer()
  const sockets = new Set<Duplex>()
  const seen: (string | undefined)[] = []
  server.on('upgrade', (req, socket) => {
    sockets.add(socket)
    seen.push(req.headers.authorization)
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
  })
  const port = await listenOnLoopback(t, server, sockets)
  const routes = [{ prefix: '/', upstreams: [`http://127.0.0.1:${port}/`], upstreamAuth: BEARER }]
  const proxy = await startConfiguredProxy(t, { routes }, { env: ENV })

  const socket = connect(proxy.port, '127.0.0.1')
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (d: Buffer) => (received += d.toString()))
  socket.write('GET /live HTTP/1.1\r\nHost: mirror\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
  await until(() => received.includes('\r\n\r\n'), 'the 101 answer')

  assert.match(received, /^HTTP\/1\.1 101/)
  assert.deepEqual(seen, [`Bearer ${SECRET}`])
})

test('what was stored while a route shared its answers is not served once it stops, offline included', async (t) => {
  const origin = await startPrivateOrigin(t)
  const shared = await startPrivateProxy(t, origin, { upstreamAuth: BEARER, shareAuthenticated: true })
  assert.equal(cacheStatus(await get(shared.url('/pkg'))), 'cachemir; fwd=miss; stored')
  await waitForFills(shared)
  await shared.close()
  const routes = [{ prefix: '/', upstreams: [`${origin.url}/`], upstreamAuth: BEARER }]

  const online = await startConfiguredProxy(t, { routes }, { env: ENV, cacheDir: shared.cacheDir })
  const bypassed = await get(online.url('/pkg'))
  await online.close()
  const offline = await startConfiguredProxy(t, { routes }, { env: ENV, cacheDir: shared.cacheDir, offline: true })
  const refused = await get(offline.url('/pkg'))

  assert.equal(cacheStatus(bypassed), 'cachemir; fwd=bypass')
  assert.equal(refused.status, 504)
  assert.equal(cacheStatus(refused), 'cachemir; fwd=miss; detail=offline')
  assert.equal(origin.count('/pkg'), 2)
})

test("a client's own Authorization goes upstream instead of the route's, on a fill of its own that is never shared", async (t) => {
  const origin = await startPrivateOrigin(t)
  const proxy = await startPrivateProxy(t, origin, { upstreamAuth: BEARER, shareAuthenticated: true })
  const own = { authorization: 'Basic b3duOnVzZXI=' }

  const mine = await get(proxy.url('/pkg'), { headers: own })
  const anonymous = await get(proxy.url('/pkg'))
  await waitForFills(proxy)
  const mineAgain = await get(proxy.url('/pkg'), { headers: own })

  assert.equal(cacheStatus(mine), 'cachemir; fwd=bypass; detail=authorization')
  assert.equal(cacheStatus(anonymous), 'cachemir; fwd=miss; stored')
  assert.equal(cacheStatus(mineAgain), 'cachemir; fwd=bypass; detail=authorization')
  assert.deepEqual(
    origin.requests.map((r) => r.headers.authorization),
    ['Basic b3duOnVzZXI=', `Bearer ${SECRET}`, 'Basic b3duOnVzZXI='],
  )
})

test("a client cannot put its own value of the route's credential header on a shared fill", async (t) => {
  const origin = await startPrivateOrigin(t)
  const auth = { env: 'PRIVATE_TOKEN', header: 'X-Api-Key' }
  const proxy = await startPrivateProxy(t, origin, { upstreamAuth: auth, shareAuthenticated: true })

  const res = await get(proxy.url('/pkg'), { headers: { 'x-api-key': 'forged' } })

  assert.equal(cacheStatus(res), 'cachemir; fwd=miss; stored')
  assert.equal(origin.count('/pkg'), 1)
  assert.equal(origin.requests[0]?.headers['x-api-key'], SECRET)
})

test('the secret appears in no log line, even at debug level with upstream failures, and not in /_cachemir/health', async (t) => {
  const origin = await startPrivateOrigin(t)
  const dead = `http://127.0.0.1:${await closedPort()}/`
  const routes = [
    // A dead first upstream: failovers, a failed pass-through, errors in the health report.
    { prefix: '/shared/', upstreams: [dead, `${origin.url}/`], upstreamAuth: BEARER, shareAuthenticated: true },
    { prefix: '/own/', upstreams: [`${origin.url}/`], upstreamAuth: { env: 'PRIVATE_TOKEN', header: 'X-Api-Key' } },
  ]
  const proxy = await startConfiguredProxy(t, { routes }, { env: ENV, logLevel: 'debug' })

  assert.equal((await get(proxy.url('/shared/pkg'))).status, 200)
  await waitForFills(proxy)
  assert.equal((await get(proxy.url('/shared/pkg'))).status, 200)
  assert.equal((await get(proxy.url('/shared/upload'), { method: 'PUT', body: 'x' })).status, 502)
  assert.equal((await get(proxy.url('/own/pkg'))).status, 200)
  assert.equal((await get(proxy.url('/own/pkg'), { headers: { authorization: 'Basic b3duOnVzZXI=' } })).status, 200)
  const health = await get(proxy.url('/_cachemir/health'))
  await until(() => proxy.logs.filter((l) => l.msg === 'request completed').length === 6, 'every request-completed line')

  assert.equal(origin.count('/pkg'), 3)
  assert.ok(
    proxy.logs.some((l) => l.msg === 'pass-through failed'),
    'a warn line with an error was written',
  )
  const logs = JSON.stringify(proxy.logs)
  assert.ok(!logs.includes(SECRET), 'no log line carries the secret')
  assert.equal(health.status, 200)
  assert.match(health.body.toString(), /"state":"down"/)
  assert.ok(!health.body.toString().includes(SECRET), 'the health report does not carry the secret')
})

test('an unset or empty variable is a ConfigError naming the field and the variable, never a secret', async (t) => {
  const origin = await startPrivateOrigin(t)
  const routes = [
    { prefix: '/a/', upstreams: [`${origin.url}/`], upstreamAuth: BEARER },
    { prefix: '/b/', upstreams: [`${origin.url}/`], upstreamAuth: { env: 'MISSING_TOKEN' } },
    { prefix: '/c/', upstreams: [`${origin.url}/`], upstreamAuth: { env: 'EMPTY_TOKEN', header: 'X-Api-Key' } },
  ]

  const err: unknown = await startConfiguredProxy(t, { routes }, { env: { ...ENV, EMPTY_TOKEN: ' ' } }).then(
    () => assert.fail('expected a ConfigError'),
    (e: unknown) => e,
  )

  assert.ok(err instanceof ConfigError, String(err))
  assert.equal(err.problems.length, 2, err.message)
  assert.match(err.problems[0] ?? '', /routes\[1\]\.upstreamAuth\.env: .*MISSING_TOKEN.*unset/)
  assert.match(err.problems[1] ?? '', /routes\[2\]\.upstreamAuth\.env: .*EMPTY_TOKEN.*empty/)
  assert.ok(!err.message.includes(SECRET))
  assert.equal(origin.requests.length, 0)
})
