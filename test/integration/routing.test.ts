// test/integration/routing.test.ts
// Which requests reach which upstream: route prefixes, the mirror's own endpoints, unsafe targets,
// other methods (passed through, invalidating), failover, Vary and credentials.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readBody, sendBody, startEchoOrigin, startOrigin, type Handler, type Origin } from '../helpers/origin.js'
import { startProxy, startRoutedProxy } from '../helpers/proxy.js'
import { get, rawRequest } from '../helpers/client.js'

test('paths outside every route get a short 404 and the origins are not contacted', async (t) => {
  const a = await startEchoOrigin(t, 'A')
  const b = await startEchoOrigin(t, 'B')
  const proxy = await startRoutedProxy(t, [
    { prefix: '/debian/', upstreams: [`${a.url}/deb-root/`] },
    { prefix: '/alpine/', upstreams: [`${b.url}/alp-root/`] },
  ])

  for (const path of ['/other/x', '/', '/debianx/y', '/debian', '/ALPINE/x']) {
    const res = await get(proxy.url(path))
    assert.equal(res.status, 404, path)
    assert.ok(res.body.length > 0 && res.body.length < 200, `${path}: short body, got ${res.body.length} bytes`)
    assert.match(res.headers['content-type'] ?? '', /^text\/plain/)
  }
  assert.equal(a.count() + b.count(), 0)
})

test('each route maps its prefix onto its own upstream base path', async (t) => {
  const a = await startEchoOrigin(t, 'A')
  const b = await startEchoOrigin(t, 'B')
  const proxy = await startRoutedProxy(t, [
    { prefix: '/debian/', upstreams: [`${a.url}/deb-root/`] },
    { prefix: '/alpine/', upstreams: [`${b.url}/alp-root/`] },
  ])

  const cases: readonly [string, Origin, string, string][] = [
    ['/debian/dists/stable/InRelease', a, 'A', '/deb-root/dists/stable/InRelease'],
    ['/debian/pool/a.deb?arch=amd64', a, 'A', '/deb-root/pool/a.deb?arch=amd64'],
    ['/alpine/v3.20/main/APKINDEX.tar.gz', b, 'B', '/alp-root/v3.20/main/APKINDEX.tar.gz'],
  ]
  for (const [path, origin, name, upstreamPath] of cases) {
    const res = await get(proxy.url(path))
    assert.equal(res.status, 200, path)
    assert.equal(res.body.toString(), `${name} ${upstreamPath}`)
    assert.equal(origin.count(upstreamPath), 1, `${path} reached ${name} as ${upstreamPath}`)
  }
  assert.equal(a.count(), 2)
  assert.equal(b.count(), 1)
})

test('the longest matching prefix wins', async (t) => {
  const a = await startEchoOrigin(t, 'A')
  const b = await startEchoOrigin(t, 'B')
  const proxy = await startRoutedProxy(t, [
    { prefix: '/debian/', upstreams: [`${a.url}/deb-root/`] },
    { prefix: '/debian/security/', upstreams: [`${b.url}/sec-root/`] },
  ])

  const security = await get(proxy.url('/debian/security/dists/x'))
  const main = await get(proxy.url('/debian/main/dists/x'))

  assert.equal(security.body.toString(), 'B /sec-root/dists/x')
  assert.equal(main.body.toString(), 'A /deb-root/main/dists/x')
  assert.deepEqual(
    a.requests.map((r) => r.url),
    ['/deb-root/main/dists/x'],
  )
  assert.deepEqual(
    b.requests.map((r) => r.url),
    ['/sec-root/dists/x'],
  )
})

test('/_cachemir/health answers 200 JSON with status ok without contacting the origin', async (t) => {
  const origin = await startEchoOrigin(t, 'O')
  const proxy = await startProxy(t, { upstream: origin.url })

  const res = await get(proxy.url('/_cachemir/health'))

  assert.equal(res.status, 200)
  assert.match(res.headers['content-type'] ?? '', /^application\/json/)
  const health = JSON.parse(res.body.toString()) as { status?: unknown }
  assert.equal(health.status, 'ok')
  assert.equal(origin.count(), 0)
})

test('other /_cachemir/ paths get 404 and are never routed upstream', async (t) => {
  const origin = await startEchoOrigin(t, 'O')
  const proxy = await startProxy(t, { upstream: origin.url })

  for (const path of ['/_cachemir/x', '/_cachemir/', '/_cachemir', '/_cachemir?probe=1', '/_cachemir/health/extra']) {
    const res = await get(proxy.url(path))
    assert.equal(res.status, 404, path)
  }
  assert.equal(origin.count(), 0, 'the catch-all route does not take the reserved prefix')
})

const UNSAFE_TARGETS = [
  '/debian/../etc/passwd',
  '/debian/./x',
  '/debian/%2e%2e/x',
  '/debian/%2E%2E/x',
  '/debian/.%2e/x',
  '/debian/a%2fb',
  '/debian/a%2Fb',
  '/debian/a\\b',
  '/debian/a%5cb',
  '/debian/a%00b',
  '/debian/x/..',
]

test('path traversal and encoded separators get 400 and never reach the origin', async (t) => {
  const a = await startEchoOrigin(t, 'A')
  const proxy = await startRoutedProxy(t, [{ prefix: '/debian/', upstreams: [`${a.url}/deb-root/`] }])

  for (const target of UNSAFE_TARGETS) {
    await t.test(target, async () => {
      const raw = await rawRequest(proxy.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nConnection: close\r\n\r\n`)
      assert.match(raw, /^HTTP\/1\.1 400 /, `response was: ${JSON.stringify(raw.slice(0, 200))}`)
    })
  }
  // A safe path on the same route does go through, so the 400s above are about the targets.
  const safe = await get(proxy.url('/debian/a.b/c'))
  assert.equal(safe.body.toString(), 'A /deb-root/a.b/c')
  assert.deepEqual(
    a.requests.map((r) => r.url),
    ['/deb-root/a.b/c'],
  )
})

test("targets that look like URLs or start with // stay under the route's upstream path", async (t) => {
  const a = await startEchoOrigin(t, 'A')
  const proxy = await startRoutedProxy(t, [{ prefix: '/debian/', upstreams: [`${a.url}/deb-root/`] }])

  const cases: readonly [string, string][] = [
    ['/debian//evil.example/x', '/deb-root//evil.example/x'],
    ['/debian/http://evil.example/x', '/deb-root/http://evil.example/x'],
    ['/debian/a:b', '/deb-root/a:b'],
  ]
  for (const [path, upstreamPath] of cases) {
    const res = await get(proxy.url(path))
    assert.equal(res.status, 200, path)
    assert.equal(res.body.toString(), `A ${upstreamPath}`, path)
  }
  assert.deepEqual(
    a.requests.map((r) => r.url),
    cases.map(([, upstreamPath]) => upstreamPath),
  )
})

test('an absolute-form request target gets 400 and is not forwarded anywhere', async (t) => {
  const origin = await startEchoOrigin(t, 'O')
  const proxy = await startProxy(t, { upstream: origin.url })

  for (const target of ['http://example.invalid/', `http://127.0.0.1:${origin.port}/x`]) {
    const raw = await rawRequest(proxy.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nConnection: close\r\n\r\n`)
    assert.match(raw, /^HTTP\/1\.1 400 /, `${target}: response was ${JSON.stringify(raw.slice(0, 200))}`)
  }
  assert.equal(origin.count(), 0)
})

interface Recorded {
  readonly method: string
  readonly url: string
  readonly body: string
}

/**
 * GET answers a cacheable representation whose body counts the GETs; other methods answer
 * `unsafeStatus` and are recorded with their bodies.
 */
async function startWritableOrigin(t: TestContext, unsafeStatus: number): Promise<{ origin: Origin; writes: Recorded[] }> {
  const writes: Recorded[] = []
  let gets = 0
  const handler: Handler = async (req, res) => {
    if (req.method === 'GET' || req.method === 'HEAD') {
      gets++
      await sendBody(req, res, Buffer.from(`version ${gets}`), { headers: { 'cache-control': 'max-age=600' } })
      return
    }
    const body = await readBody(req)
    writes.push({ method: req.method ?? '', url: req.url ?? '', body })
    await sendBody(req, res, Buffer.from(`${req.method} done`), { status: unsafeStatus, headers: { 'content-type': 'text/plain' } })
  }
  return { origin: await startOrigin(t, handler), writes }
}

for (const method of ['POST', 'PUT', 'DELETE']) {
  test(`a successful ${method} is passed through with its body and invalidates the cached GET`, async (t) => {
    const { origin, writes } = await startWritableOrigin(t, 200)
    const proxy = await startProxy(t, { upstream: origin.url })

    await get(proxy.url('/doc'))
    const hit = await get(proxy.url('/doc'))
    assert.equal(hit.body.toString(), 'version 1')
    assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)

    const write = await get(proxy.url('/doc'), { method, body: `payload of ${method}`, headers: { 'content-type': 'text/plain' } })
    assert.equal(write.status, 200)
    assert.equal(write.body.toString(), `${method} done`)
    assert.equal(write.headers['cache-status'], 'cachemir; fwd=method')
    assert.deepEqual(writes, [{ method, url: '/doc', body: `payload of ${method}` }])

    const after = await get(proxy.url('/doc'))
    assert.equal(after.body.toString(), 'version 2')
    assert.match(after.headers['cache-status'] ?? '', /^cachemir; fwd=miss/)
    assert.equal(origin.requests.filter((r) => r.method === 'GET').length, 2)
  })
}

test("a POST under a route goes to that route's upstream path with its query", async (t) => {
  const { origin, writes } = await startWritableOrigin(t, 201)
  const proxy = await startRoutedProxy(t, [{ prefix: '/debian/', upstreams: [`${origin.url}/deb-root/`] }])

  const write = await get(proxy.url('/debian/submit?x=1'), { method: 'POST', body: 'form data' })

  assert.equal(write.status, 201)
  assert.equal(write.body.toString(), 'POST done')
  assert.deepEqual(writes, [{ method: 'POST', url: '/deb-root/submit?x=1', body: 'form data' }])
})

test('a failed POST does not invalidate the cached GET', async (t) => {
  const { origin, writes } = await startWritableOrigin(t, 500)
  const proxy = await startProxy(t, { upstream: origin.url })

  await get(proxy.url('/doc'))
  const write = await get(proxy.url('/doc'), { method: 'POST', body: 'payload' })
  assert.equal(write.status, 500)
  assert.equal(writes.length, 1)

  const after = await get(proxy.url('/doc'))
  assert.equal(after.body.toString(), 'version 1')
  assert.match(after.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(origin.requests.filter((r) => r.method === 'GET').length, 1)
})

test('when the first upstream is down the fill fails over to the second', async (t) => {
  const dead = await startOrigin(t, (_req, res) => {
    res.end('never')
  })
  const deadUrl = dead.url
  await dead.close()
  const live = await startEchoOrigin(t, 'live')
  const proxy = await startProxy(t, { upstream: [deadUrl, live.url] })

  const first = await get(proxy.url('/pkg'))
  assert.equal(first.status, 200)
  assert.equal(first.body.toString(), 'live /pkg')
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')

  const second = await get(proxy.url('/pkg'))
  assert.equal(second.body.toString(), 'live /pkg')
  assert.match(second.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(live.count('/pkg'), 1)
})

test('a response with Vary: Accept-Encoding is served only to requests with the same Accept-Encoding', async (t) => {
  const origin = await startOrigin(t, (req, res) => {
    const encoding = req.headers['accept-encoding'] ?? 'none'
    return sendBody(req, res, Buffer.from(`body for ${encoding}`), { headers: { 'cache-control': 'max-age=600', vary: 'Accept-Encoding' } })
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const gzip1 = await get(proxy.url('/v'), { headers: { 'accept-encoding': 'gzip' } })
  const gzip2 = await get(proxy.url('/v'), { headers: { 'accept-encoding': 'gzip' } })
  assert.equal(gzip1.body.toString(), 'body for gzip')
  assert.equal(gzip2.body.toString(), 'body for gzip')
  assert.match(gzip2.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(origin.count('/v'), 1)

  const br = await get(proxy.url('/v'), { headers: { 'accept-encoding': 'br' } })
  assert.equal(br.body.toString(), 'body for br')
  assert.doesNotMatch(br.headers['cache-status'] ?? '', /hit/)
  assert.equal(origin.count('/v'), 2)
  assert.equal(origin.requests[1]?.headers['accept-encoding'], 'br')

  const none = await get(proxy.url('/v'), { headers: { 'accept-encoding': 'identity' } })
  assert.equal(none.body.toString(), 'body for identity')
  assert.equal(origin.count('/v'), 3)
})

test('a response with Vary: * is never stored', async (t) => {
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from('varies'), { headers: { 'cache-control': 'max-age=600', vary: '*' } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url })

  for (let i = 1; i <= 2; i++) {
    const res = await get(proxy.url('/star'))
    assert.equal(res.body.toString(), 'varies')
    assert.doesNotMatch(res.headers['cache-status'] ?? '', /hit|stored/)
    assert.equal(origin.count('/star'), i)
  }
})

/** Public body for anonymous requests, a per-user body for requests with Authorization. */
function authOrigin(t: TestContext): Promise<Origin> {
  return startOrigin(t, (req, res) => {
    const auth = req.headers.authorization
    const body = auth === undefined ? 'public' : `private for ${auth}`
    return sendBody(req, res, Buffer.from(body), { headers: { 'cache-control': 'max-age=600' } })
  })
}

test('a request with Authorization is not served from cache', async (t) => {
  const origin = await authOrigin(t)
  const proxy = await startProxy(t, { upstream: origin.url })

  await get(proxy.url('/p'))
  const authed = await get(proxy.url('/p'), { headers: { authorization: 'Bearer alice' } })

  assert.equal(authed.body.toString(), 'private for Bearer alice')
  assert.doesNotMatch(authed.headers['cache-status'] ?? '', /hit/)
  assert.equal(origin.count('/p'), 2)
  assert.equal(origin.requests[1]?.headers.authorization, 'Bearer alice')

  const anonymous = await get(proxy.url('/p'))
  assert.equal(anonymous.body.toString(), 'public', 'the authorized response did not replace the shared copy')
  assert.match(anonymous.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(origin.count('/p'), 2)
})

test('the response to a request with Authorization is not stored', async (t) => {
  const origin = await authOrigin(t)
  const proxy = await startProxy(t, { upstream: origin.url })

  const authed = await get(proxy.url('/p'), { headers: { authorization: 'Bearer alice' } })
  assert.equal(authed.body.toString(), 'private for Bearer alice')
  assert.doesNotMatch(authed.headers['cache-status'] ?? '', /stored/)

  const anonymous = await get(proxy.url('/p'))
  assert.equal(anonymous.body.toString(), 'public')
  assert.match(anonymous.headers['cache-status'] ?? '', /^cachemir; fwd=miss; stored/)
  assert.equal(origin.count('/p'), 2)
})
