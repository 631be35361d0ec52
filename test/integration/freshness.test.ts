// test/integration/freshness.test.ts
// How long a stored response may be served without the origin (RFC 9111 §4.2), which responses
// are never stored (§3), and the per-route cache rules of the config file. Time is a fake clock.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { OutgoingHttpHeaders } from 'node:http'
import { sendBody, serveStatic, startOrigin, type Origin } from '../helpers/origin.js'
import { startConfiguredProxy, startProxy, type Proxy } from '../helpers/proxy.js'
import { get, type Fetched } from '../helpers/client.js'
import { fakeClock, httpDate } from '../helpers/clock.js'

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

const ETAG = '"v1"'
const BODY = 'the stored representation'

/** The ttl member of a hit's Cache-Status, or undefined when it has none. */
function ttlOf(res: Fetched): number | undefined {
  const m = /; ttl=(-?\d+)(;|$)/.exec(res.headers['cache-status'] ?? '')
  return m === null ? undefined : Number(m[1])
}

function assertClose(actual: number | undefined, expected: number, slack: number, what: string): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) <= slack, `${what}: expected about ${expected}, got ${actual}`)
}

/** Asserts a response was revalidated with the origin (304) and the stored body was served. */
function assertRevalidated(res: Fetched, origin: Origin, path: string): void {
  assert.equal(res.status, 200)
  assert.equal(res.body.toString(), BODY)
  assert.equal(res.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
  const last = origin.requests.at(-1)
  assert.equal(last?.url, path)
  assert.equal(last?.headers['if-none-match'], ETAG, 'the mirror revalidates with the stored ETag')
}

interface LifetimeCase {
  /** the behaviour, as the test name */
  readonly name: string
  /** response headers, built when the test starts (dates are relative to the real clock) */
  readonly headers: () => OutgoingHttpHeaders
  /** clock offset at which the entry is still fresh; undefined when it is never fresh */
  readonly freshAt?: number
  /** freshness lifetime the mirror should derive, for the hit's ttl */
  readonly lifetime?: number
  /** Age the origin announced, in seconds */
  readonly initialAgeS?: number
  /** clock offset at which the entry must be stale */
  readonly staleAt: number
}

const LIFETIME_CASES: readonly LifetimeCase[] = [
  {
    name: 'a max-age response is a hit with Age and ttl while fresh, and revalidated once max-age has passed',
    headers: () => ({ 'cache-control': 'max-age=60' }),
    freshAt: 30 * SECOND,
    lifetime: 60 * SECOND,
    staleAt: 65 * SECOND,
  },
  {
    name: 's-maxage wins over a shorter max-age',
    headers: () => ({ 'cache-control': 'max-age=10, s-maxage=120' }),
    freshAt: 60 * SECOND,
    lifetime: 120 * SECOND,
    staleAt: 125 * SECOND,
  },
  {
    name: 's-maxage wins over a longer max-age',
    headers: () => ({ 'cache-control': 's-maxage=10, max-age=120' }),
    freshAt: 5 * SECOND,
    lifetime: 10 * SECOND,
    staleAt: 15 * SECOND,
  },
  {
    name: 'an Expires date in the future keeps the response fresh until then',
    headers: () => ({ expires: httpDate(Date.now() + HOUR) }),
    freshAt: 50 * MINUTE,
    lifetime: HOUR,
    staleAt: 65 * MINUTE,
  },
  {
    name: 'max-age wins over an Expires date in the past',
    headers: () => ({ 'cache-control': 'max-age=600', expires: httpDate(Date.now() - HOUR) }),
    freshAt: 5 * MINUTE,
    lifetime: 10 * MINUTE,
    staleAt: 11 * MINUTE,
  },
  {
    name: 'an Expires date in the past makes the response stale at once',
    headers: () => ({ expires: httpDate(Date.now() - HOUR) }),
    staleAt: 0,
  },
  {
    name: 'an invalid Expires value makes the response stale at once',
    headers: () => ({ expires: '0' }),
    staleAt: 0,
  },
  {
    name: 'a response without freshness information or Last-Modified is stored but stale at once',
    headers: () => ({}),
    staleAt: 0,
  },
  {
    name: 'Last-Modified 10 days ago is heuristically fresh for one day',
    headers: () => ({ 'last-modified': httpDate(Date.now() - 10 * DAY) }),
    freshAt: 23 * HOUR,
    lifetime: DAY,
    staleAt: 25 * HOUR,
  },
  {
    name: 'Last-Modified 2 days ago is heuristically fresh for 10% of that',
    headers: () => ({ 'last-modified': httpDate(Date.now() - 2 * DAY) }),
    freshAt: 4 * HOUR,
    lifetime: 4.8 * HOUR,
    staleAt: 5 * HOUR,
  },
  {
    name: 'the Last-Modified heuristic is capped at one day',
    headers: () => ({ 'last-modified': httpDate(Date.now() - 100 * DAY) }),
    freshAt: 23 * HOUR,
    lifetime: DAY,
    staleAt: 25 * HOUR,
  },
  {
    name: 'an Age from upstream counts toward the current age',
    headers: () => ({ 'cache-control': 'max-age=100', age: '90' }),
    freshAt: 5 * SECOND,
    lifetime: 100 * SECOND,
    initialAgeS: 90,
    staleAt: 11 * SECOND,
  },
]

for (const c of LIFETIME_CASES) {
  test(c.name, async (t) => {
    const clock = fakeClock()
    const origin = await startOrigin(t, serveStatic({ '/f': { body: BODY, etag: ETAG, headers: c.headers() } }))
    const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

    const first = await get(proxy.url('/f'))
    assert.equal(first.status, 200)
    assert.equal(first.body.toString(), BODY)
    assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')

    if (c.freshAt !== undefined) {
      clock.set(c.freshAt)
      const hit = await get(proxy.url('/f'))
      assert.equal(hit.status, 200)
      assert.equal(hit.body.toString(), BODY)
      assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit; ttl=\d+$/)
      assertClose(ttlOf(hit), ((c.lifetime ?? 0) - c.freshAt) / SECOND - (c.initialAgeS ?? 0), 2, 'ttl')
      assertClose(Number(hit.headers.age), (c.initialAgeS ?? 0) + c.freshAt / SECOND, 2, 'Age')
      assert.equal(origin.count('/f'), 1, 'a fresh entry is served without the origin')
    }

    clock.set(c.staleAt)
    const stale = await get(proxy.url('/f'))
    assertRevalidated(stale, origin, '/f')
    assert.equal(origin.count('/f'), 2)
  })
}

test('a no-cache response is stored but revalidated on every request', async (t) => {
  const clock = fakeClock()
  const origin = await startOrigin(
    t,
    serveStatic({ '/nc': { body: BODY, etag: ETAG, headers: { 'cache-control': 'no-cache, max-age=3600' } } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

  const first = await get(proxy.url('/nc'))
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  for (let i = 1; i <= 3; i++) {
    const res = await get(proxy.url('/nc'))
    assertRevalidated(res, origin, '/nc')
    assert.equal(origin.count('/nc'), i + 1)
  }
  assert.ok(
    origin.requests.slice(1).every((r) => r.headers['if-none-match'] === ETAG),
    'every later request is conditional',
  )
})

interface UnstoredCase {
  readonly name: string
  readonly status: number
  readonly headers: OutgoingHttpHeaders
}

const UNSTORED_CASES: readonly UnstoredCase[] = [
  { name: 'a no-store response is never stored', status: 200, headers: { 'cache-control': 'no-store' } },
  { name: 'a private response is not stored', status: 200, headers: { 'cache-control': 'private, max-age=60' } },
  {
    name: 'a response with Set-Cookie is not stored',
    status: 200,
    headers: { 'cache-control': 'max-age=60', 'set-cookie': 'session=abc' },
  },
  { name: 'a 302 without explicit freshness is not stored', status: 302, headers: { location: '/elsewhere' } },
  { name: 'a 500 without explicit freshness is not stored', status: 500, headers: { 'content-type': 'text/plain' } },
]

for (const c of UNSTORED_CASES) {
  test(c.name, async (t) => {
    const origin = await startOrigin(t, (req, res) => sendBody(req, res, Buffer.from(BODY), { status: c.status, headers: c.headers }))
    const proxy = await startProxy(t, { upstream: origin.url })

    for (let i = 1; i <= 2; i++) {
      const res = await get(proxy.url('/u'))
      assert.equal(res.status, c.status)
      assert.equal(res.body.toString(), BODY)
      for (const [name, value] of Object.entries(c.headers)) assert.equal(res.headers[name], String(value), `the client gets ${name}`)
      const cacheStatus = res.headers['cache-status'] ?? ''
      assert.match(cacheStatus, /^cachemir; fwd=miss(;|$)/)
      assert.doesNotMatch(cacheStatus, /stored|hit/)
      assert.equal(origin.count('/u'), i, 'every request reaches the origin')
    }
  })
}

test('a redirect with an explicit max-age is stored and served from cache', async (t) => {
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(BODY), { status: 301, headers: { location: '/elsewhere', 'cache-control': 'max-age=60' } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url })

  await get(proxy.url('/moved'))
  const second = await get(proxy.url('/moved'))

  assert.equal(second.status, 301)
  assert.equal(second.headers.location, '/elsewhere')
  assert.equal(second.body.toString(), BODY)
  assert.match(second.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(origin.count('/moved'), 1)
})

// Per-route rules from a config file.

const RULES = [
  { match: '\\.deb$', cache: 'immutable' },
  { match: 'InRelease$', cache: 'revalidate' },
  { match: '\\.nocache$', cache: 'no-store' },
  { match: '\\.ttl$', ttl: '1h' },
]

function startRuleMirror(t: TestContext, origin: Origin, now: () => number): Promise<Proxy> {
  return startConfiguredProxy(t, { routes: [{ prefix: '/r/', upstreams: [`${origin.url}/`], rules: RULES }] }, { now })
}

test('an immutable rule serves max-age=0 content from cache, even a year later', async (t) => {
  const clock = fakeClock()
  const origin = await startOrigin(t, serveStatic({ '/pool/a.deb': { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=0' } } }))
  const proxy = await startRuleMirror(t, origin, clock.now)

  const first = await get(proxy.url('/r/pool/a.deb'))
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  for (const offset of [0, 365 * DAY]) {
    clock.set(offset)
    const res = await get(proxy.url('/r/pool/a.deb'))
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), BODY)
    assert.match(res.headers['cache-status'] ?? '', /^cachemir; hit(;|$)/)
  }
  assert.equal(origin.count('/pool/a.deb'), 1)
})

test('a revalidate rule revalidates fresh content on every request', async (t) => {
  const clock = fakeClock()
  const path = '/dists/stable/InRelease'
  const origin = await startOrigin(t, serveStatic({ [path]: { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=3600' } } }))
  const proxy = await startRuleMirror(t, origin, clock.now)

  const first = await get(proxy.url(`/r${path}`))
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  for (let i = 1; i <= 2; i++) {
    const res = await get(proxy.url(`/r${path}`))
    assertRevalidated(res, origin, path)
    assert.equal(origin.count(path), i + 1)
  }
})

test('a no-store rule sends every request to the origin', async (t) => {
  const clock = fakeClock()
  const origin = await startOrigin(
    t,
    serveStatic({ '/x.nocache': { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=3600' } } }),
  )
  const proxy = await startRuleMirror(t, origin, clock.now)

  for (let i = 1; i <= 2; i++) {
    const res = await get(proxy.url('/r/x.nocache'))
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), BODY)
    assert.doesNotMatch(res.headers['cache-status'] ?? '', /hit|stored/)
    assert.equal(origin.count('/x.nocache'), i)
    assert.equal(origin.requests.at(-1)?.headers['if-none-match'], undefined, 'nothing stored, so nothing to revalidate')
  }
})

test('a ttl rule keeps a response without freshness information fresh for that long', async (t) => {
  const clock = fakeClock()
  const origin = await startOrigin(t, serveStatic({ '/y.ttl': { body: BODY, etag: ETAG } }))
  const proxy = await startRuleMirror(t, origin, clock.now)

  await get(proxy.url('/r/y.ttl'))
  clock.set(59 * MINUTE)
  const hit = await get(proxy.url('/r/y.ttl'))
  assert.equal(hit.body.toString(), BODY)
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit; ttl=\d+$/)
  assertClose(ttlOf(hit), 60, 2, 'ttl')
  assert.equal(origin.count('/y.ttl'), 1)

  clock.set(61 * MINUTE)
  assertRevalidated(await get(proxy.url('/r/y.ttl')), origin, '/y.ttl')
  assert.equal(origin.count('/y.ttl'), 2)
})

test('a ttl rule does not override an explicit max-age', async (t) => {
  const clock = fakeClock()
  const origin = await startOrigin(t, serveStatic({ '/z.ttl': { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=10' } } }))
  const proxy = await startRuleMirror(t, origin, clock.now)

  await get(proxy.url('/r/z.ttl'))
  clock.set(15 * SECOND)
  assertRevalidated(await get(proxy.url('/r/z.ttl')), origin, '/z.ttl')
  assert.equal(origin.count('/z.ttl'), 2)
})
