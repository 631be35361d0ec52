// test/integration/invalidation.test.ts
// RFC 9111 §4.4: a non-error response to an unsafe method invalidates the cached target URI, and
// the URIs in Location and Content-Location when they are on the same origin. Error responses and
// unreachable upstreams invalidate nothing; URLs on other origins are never purged; an upstream
// base path maps back onto the route's prefix.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { readBody, sendBody, startOrigin, type Origin } from '../helpers/origin.js'
import { startProxy, startRoutedProxy, type Proxy } from '../helpers/proxy.js'
import { get, getFirstBytes } from '../helpers/client.js'
import { gate, waitForFills, within } from '../helpers/wait.js'

interface Route {
  readonly prefix: string
  /** the upstream's base path, e.g. `/base/` */
  readonly base: string
}

interface Case {
  readonly name: string
  readonly method: 'POST' | 'PUT' | 'DELETE' | 'PATCH'
  /** mirror path the unsafe request is sent to */
  readonly target: string
  readonly status: number
  /** response fields of the unsafe request, given the origin's URL */
  readonly headers?: (originUrl: string) => Record<string, string>
  /** a route with an upstream base path; the catch-all route to the origin root otherwise */
  readonly route?: Route
  /** mirror paths whose cached GET must be gone afterwards */
  readonly invalidated: readonly string[]
  /** mirror paths whose cached GET must still be served */
  readonly kept: readonly string[]
}

const CASES: readonly Case[] = [
  {
    name: 'a PATCH answered 200 invalidates the cached GET of its URL',
    method: 'PATCH',
    target: '/a',
    status: 200,
    invalidated: ['/a'],
    kept: ['/b'],
  },
  {
    name: 'a PUT answered 201 invalidates the cached GET of its URL',
    method: 'PUT',
    target: '/a',
    status: 201,
    invalidated: ['/a'],
    kept: ['/b'],
  },
  {
    name: 'a DELETE answered 204 invalidates the cached GET of its URL',
    method: 'DELETE',
    target: '/a',
    status: 204,
    invalidated: ['/a'],
    kept: ['/b'],
  },
  {
    name: 'a POST answered with a 3xx invalidates its URL and the Location',
    method: 'POST',
    target: '/a',
    status: 303,
    headers: () => ({ location: '/b' }),
    invalidated: ['/a', '/b'],
    kept: ['/c'],
  },
  {
    name: 'a POST on a URL with a query invalidates that URL only',
    method: 'POST',
    target: '/a?x=1',
    status: 200,
    invalidated: ['/a?x=1'],
    kept: ['/a', '/a?x=2'],
  },
  {
    name: 'a relative Location (/b) is invalidated too',
    method: 'POST',
    target: '/a',
    status: 201,
    headers: () => ({ location: '/b' }),
    invalidated: ['/a', '/b'],
    kept: ['/c'],
  },
  {
    name: 'a relative reference without a slash resolves against the target',
    method: 'POST',
    target: '/dir/a',
    status: 201,
    headers: () => ({ location: 'b' }),
    invalidated: ['/dir/a', '/dir/b'],
    kept: ['/b'],
  },
  {
    name: "an absolute Location on the upstream's origin is invalidated too",
    method: 'POST',
    target: '/a',
    status: 201,
    headers: (o) => ({ location: `${o}/b` }),
    invalidated: ['/a', '/b'],
    kept: ['/c'],
  },
  {
    name: 'a Content-Location is invalidated too',
    method: 'POST',
    target: '/a',
    status: 200,
    headers: () => ({ 'content-location': '/c' }),
    invalidated: ['/a', '/c'],
    kept: ['/b'],
  },
  {
    name: 'Location and Content-Location are both invalidated',
    method: 'PUT',
    target: '/a',
    status: 200,
    headers: () => ({ location: '/b', 'content-location': '/c' }),
    invalidated: ['/a', '/b', '/c'],
    kept: ['/d'],
  },
  {
    name: 'a Location on another host does not invalidate the same path here',
    method: 'POST',
    target: '/a',
    status: 201,
    headers: () => ({ location: 'http://example.invalid/b' }),
    invalidated: ['/a'],
    kept: ['/b'],
  },
  {
    name: 'a Location on the same host but another port does not invalidate the same path here',
    method: 'POST',
    target: '/a',
    status: 201,
    headers: () => ({ location: 'http://127.0.0.1:1/b' }),
    invalidated: ['/a'],
    kept: ['/b'],
  },
  {
    name: 'a POST answered 400 invalidates nothing, not even its Location',
    method: 'POST',
    target: '/a',
    status: 400,
    headers: () => ({ location: '/b' }),
    invalidated: [],
    kept: ['/a', '/b'],
  },
  {
    name: 'a POST answered 500 invalidates nothing, not even its Content-Location',
    method: 'POST',
    target: '/a',
    status: 500,
    headers: () => ({ 'content-location': '/c' }),
    invalidated: [],
    kept: ['/a', '/c'],
  },
  {
    name: 'with an upstream base path, Location /base/x invalidates the mirror key /r/x',
    method: 'POST',
    target: '/r/a',
    status: 201,
    headers: () => ({ location: '/base/x' }),
    route: { prefix: '/r/', base: '/base/' },
    invalidated: ['/r/a', '/r/x'],
    kept: ['/r/y'],
  },
  {
    name: 'with an upstream base path, an absolute Location under it invalidates the mapped key',
    method: 'POST',
    target: '/r/a',
    status: 201,
    headers: (o) => ({ 'content-location': `${o}/base/y` }),
    route: { prefix: '/r/', base: '/base/' },
    invalidated: ['/r/a', '/r/y'],
    kept: ['/r/x'],
  },
  {
    name: 'with an upstream base path, a Location outside it invalidates nothing else',
    method: 'POST',
    target: '/r/a',
    status: 201,
    headers: () => ({ location: '/x' }),
    route: { prefix: '/r/', base: '/base/' },
    invalidated: ['/r/a'],
    kept: ['/r/x'],
  },
]

interface Site {
  origin: Origin
  /** the representation version GETs currently get */
  version: number
}

/** GET answers `<path> v<version>`, fresh for 10 minutes; other methods answer `unsafe(req)`. */
async function startSite(
  t: TestContext,
  unsafe: (req: IncomingMessage) => { status: number; headers: Record<string, string> },
): Promise<Site> {
  const site: Site = { origin: undefined as unknown as Origin, version: 1 }
  site.origin = await startOrigin(t, async (req, res) => {
    if (req.method === 'GET' || req.method === 'HEAD') {
      await sendBody(req, res, Buffer.from(`${req.url ?? ''} v${site.version}`), { headers: { 'cache-control': 'max-age=600' } })
      return
    }
    await readBody(req)
    const { status, headers } = unsafe(req)
    await sendBody(req, res, Buffer.from(`${req.method} done`), { status, headers: { 'content-type': 'text/plain', ...headers } })
  })
  return site
}

async function startMirror(t: TestContext, origin: Origin, route: Route | undefined): Promise<Proxy> {
  if (route === undefined) return startProxy(t, { upstream: origin.url })
  return startRoutedProxy(t, [{ prefix: route.prefix, upstreams: [`${origin.url}${route.base}`] }])
}

/** The origin path a mirror path is fetched from. */
function originPath(path: string, route: Route | undefined): string {
  return route === undefined ? path : route.base + path.slice(route.prefix.length)
}

function gets(origin: Origin, path: string): number {
  return origin.requests.filter((r) => r.method === 'GET' && r.url === path).length
}

for (const c of CASES) {
  test(c.name, async (t) => {
    let originUrl = ''
    const site = await startSite(t, () => ({ status: c.status, headers: c.headers?.(originUrl) ?? {} }))
    const origin = site.origin
    originUrl = origin.url
    const proxy = await startMirror(t, origin, c.route)
    const paths = [...c.invalidated, ...c.kept]

    // Every path is cached, and a hit.
    for (const path of paths) {
      const miss = await get(proxy.url(path))
      assert.equal(miss.body.toString(), `${originPath(path, c.route)} v1`)
      assert.equal(miss.headers['cache-status'], 'cachemir; fwd=miss; stored', `${path} was stored`)
      await waitForFills(proxy)
      const hit = await get(proxy.url(path))
      assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/, `${path} is a hit before the ${c.method}`)
    }

    site.version = 2
    const write = await get(proxy.url(c.target), { method: c.method, body: 'change', headers: { 'content-type': 'text/plain' } })
    assert.equal(write.status, c.status)
    assert.equal(write.headers['cache-status'], 'cachemir; fwd=method')
    const unsafe = origin.requests.filter((r) => r.method === c.method)
    assert.deepEqual(
      unsafe.map((r) => r.url),
      [originPath(c.target, c.route)],
      `the ${c.method} reached the origin once`,
    )

    for (const path of c.invalidated) {
      const res = await get(proxy.url(path))
      assert.equal(res.body.toString(), `${originPath(path, c.route)} v2`, `${path} was invalidated`)
      assert.equal(res.headers['cache-status'], 'cachemir; fwd=miss; stored', `${path}: Cache-Status`)
      assert.equal(gets(origin, originPath(path, c.route)), 2, `${path}: GETs at the origin`)
      await waitForFills(proxy)
    }
    for (const path of c.kept) {
      const res = await get(proxy.url(path))
      assert.equal(res.body.toString(), `${originPath(path, c.route)} v1`, `${path} was kept`)
      assert.match(res.headers['cache-status'] ?? '', /^cachemir; hit/, `${path}: Cache-Status`)
      assert.equal(gets(origin, originPath(path, c.route)), 1, `${path}: GETs at the origin`)
    }
  })
}

test('a POST to an unreachable upstream gets a prompt 502 and invalidates nothing', async (t) => {
  const site = await startSite(t, () => ({ status: 200, headers: {} }))
  const proxy = await startProxy(t, { upstream: site.origin.url })

  await get(proxy.url('/a'))
  await waitForFills(proxy)
  await site.origin.close()

  const write = await within(get(proxy.url('/a'), { method: 'POST', body: 'change', timeoutMs: 5000 }), 6000, 'the POST is answered')
  assert.equal(write.status, 502)
  assert.equal(write.headers['cache-status'], 'cachemir; fwd=method')
  assert.ok(write.complete, 'the 502 body is complete')

  const after = await get(proxy.url('/a'))
  assert.equal(after.status, 200)
  assert.equal(after.body.toString(), '/a v1')
  assert.match(after.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(gets(site.origin, '/a'), 1)
})

test('a fill in flight when a POST succeeds does not leave the pre-POST body in the cache', async (t) => {
  const release = gate(t)
  let version = 1
  const origin = await startOrigin(t, async (req, res) => {
    if (req.method !== 'GET') {
      await readBody(req)
      version++
      await sendBody(req, res, Buffer.from('POST done'), { headers: { 'content-type': 'text/plain' } })
      return
    }
    const body = `version ${version} `.padEnd(64, '.')
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': String(body.length) })
    res.write(body.slice(0, 32))
    if (version === 1) await release.promise
    res.end(body.slice(32))
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  // The fill has the first half of version 1 when the POST changes the resource.
  const inFlight = await getFirstBytes(proxy.url('/a'), 1)
  assert.match(inFlight.first.toString(), /^version 1/)
  const write = await get(proxy.url('/a'), { method: 'POST', body: 'change' })
  assert.equal(write.status, 200)
  release.open()
  const old = await inFlight.rest()
  assert.match(old.body.toString(), /^version 1 /, 'the client that asked before the POST gets the old version')
  await waitForFills(proxy)

  const after = await get(proxy.url('/a'))
  assert.match(after.body.toString(), /^version 2 /, 'a GET after the POST never gets the pre-POST bytes')
  assert.doesNotMatch(after.headers['cache-status'] ?? '', /hit/)
  assert.equal(gets(origin, '/a'), 2)
})
