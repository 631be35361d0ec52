// test/integration/revalidation.test.ts
// Revalidating stale entries (RFC 9111 §4.3): conditional requests upstream, 304s that refresh the
// stored headers without refetching the body, new bodies that replace the entry, a stale copy when
// the origin is down, and clients that insist on revalidation.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import type { OutgoingHttpHeaders } from 'node:http'
import { makeBody, sendBody, serveStatic, sha256, startOrigin, type Handler, type Origin, type StaticFile } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { get } from '../helpers/client.js'
import { fakeClock } from '../helpers/clock.js'

const SECOND = 1000
const MINUTE = 60 * SECOND

const ETAG = '"v1"'
const BODY = makeBody(100 * 1024, 7)
const LAST_MODIFIED = new Date(Date.now() - 30 * 24 * 3600 * SECOND).toUTCString()

/** Wraps a handler to record the status of every response the origin finished sending. */
function recordingStatuses(handler: Handler): { handler: Handler; statuses: number[] } {
  const statuses: number[] = []
  return {
    statuses,
    handler: (req, res) => {
      res.once('finish', () => statuses.push(res.statusCode))
      return handler(req, res)
    },
  }
}

/** An origin serving `files` that records its response statuses. */
async function startFiles(t: TestContext, files: Record<string, StaticFile>): Promise<{ origin: Origin; statuses: number[] }> {
  const recorded = recordingStatuses(serveStatic(files))
  const origin = await startOrigin(t, recorded.handler)
  return { origin, statuses: recorded.statuses }
}

test('a stale entry with an ETag is revalidated with If-None-Match, and a 304 serves the stored body', async (t) => {
  const clock = fakeClock()
  const { origin, statuses } = await startFiles(t, { '/e': { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=60' } } })
  const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

  await get(proxy.url('/e'))
  clock.set(65 * SECOND)
  const res = await get(proxy.url('/e'))

  assert.equal(res.status, 200)
  assert.equal(sha256(res.body), sha256(BODY))
  assert.equal(res.headers['content-length'], String(BODY.length))
  assert.equal(res.headers.etag, ETAG)
  assert.equal(res.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
  assert.equal(origin.count('/e'), 2)
  assert.equal(origin.requests[0]?.headers['if-none-match'], undefined)
  assert.equal(origin.requests[1]?.headers['if-none-match'], ETAG)
  assert.deepEqual(statuses, [200, 304], 'the body was fetched once')
})

test('a stale entry with only Last-Modified is revalidated with If-Modified-Since', async (t) => {
  const clock = fakeClock()
  const { origin, statuses } = await startFiles(t, {
    '/lm': { body: BODY, lastModified: LAST_MODIFIED, headers: { 'cache-control': 'max-age=60' } },
  })
  const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

  await get(proxy.url('/lm'))
  clock.set(65 * SECOND)
  const res = await get(proxy.url('/lm'))

  assert.equal(res.status, 200)
  assert.equal(sha256(res.body), sha256(BODY))
  assert.equal(res.headers['last-modified'], LAST_MODIFIED)
  assert.equal(res.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
  assert.equal(origin.requests[1]?.headers['if-modified-since'], LAST_MODIFIED)
  assert.equal(origin.requests[1]?.headers['if-none-match'], undefined)
  assert.deepEqual(statuses, [200, 304])
})

test('a 304 refreshes the stored headers, and later requests are hits that carry them', async (t) => {
  const clock = fakeClock()
  const file: StaticFile = { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=60', 'x-version': '1' } }
  const { origin, statuses } = await startFiles(t, { '/h': file })
  const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

  const first = await get(proxy.url('/h'))
  assert.equal(first.headers['x-version'], '1')

  file.headers = { 'cache-control': 'max-age=600', 'x-version': '2' }
  clock.set(65 * SECOND)
  const revalidated = await get(proxy.url('/h'))
  assert.equal(revalidated.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
  assert.equal(revalidated.headers['x-version'], '2')
  assert.equal(revalidated.headers['cache-control'], 'max-age=600')
  assert.equal(sha256(revalidated.body), sha256(BODY))

  // Fresh under the new max-age=600, stale under the old max-age=60.
  clock.set(65 * SECOND + 5 * MINUTE)
  const hit = await get(proxy.url('/h'))
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit; ttl=\d+$/)
  assert.equal(hit.headers['x-version'], '2')
  assert.equal(hit.headers['cache-control'], 'max-age=600')
  assert.equal(hit.headers['content-length'], String(BODY.length))
  assert.equal(sha256(hit.body), sha256(BODY))
  assert.equal(origin.count('/h'), 2)
  assert.deepEqual(statuses, [200, 304], 'the body was fetched once')
})

test('a stale entry whose origin now has a new body is replaced by it', async (t) => {
  const newBody = makeBody(150 * 1024, 8)
  // The first response's Date is 100 s old, so it arrives stale (apparent age 100 s > max-age 60).
  const file: StaticFile = {
    body: BODY,
    etag: ETAG,
    headers: { 'cache-control': 'max-age=60', date: new Date(Date.now() - 100 * SECOND).toUTCString() },
  }
  const { origin, statuses } = await startFiles(t, { '/n': file })
  const proxy = await startProxy(t, { upstream: origin.url })

  await get(proxy.url('/n'))
  file.body = newBody
  file.etag = '"v2"'
  file.headers = { 'cache-control': 'max-age=60' }
  const res = await get(proxy.url('/n'))

  assert.equal(res.status, 200)
  assert.equal(sha256(res.body), sha256(newBody))
  assert.equal(res.headers.etag, '"v2"')
  assert.match(res.headers['cache-status'] ?? '', /^cachemir; fwd=stale(;.*)?; stored$/)
  assert.equal(origin.requests[1]?.headers['if-none-match'], ETAG)

  const hit = await get(proxy.url('/n'))
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(hit.headers.etag, '"v2"')
  assert.equal(sha256(hit.body), sha256(newBody))
  assert.equal(origin.count('/n'), 2)
  assert.deepEqual(statuses, [200, 200])
})

test('a 304 that carries Content-Length: 0 keeps the stored body and its length', async (t) => {
  const clock = fakeClock()
  const origin = await startOrigin(t, async (req, res) => {
    if (req.headers['if-none-match'] === ETAG) {
      res.writeHead(304, { etag: ETAG, 'cache-control': 'max-age=600', 'content-length': '0' })
      res.end()
      return
    }
    await sendBody(req, res, BODY, { headers: { etag: ETAG, 'cache-control': 'max-age=60' } })
  })
  const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

  await get(proxy.url('/cl'))
  clock.set(65 * SECOND)
  const revalidated = await get(proxy.url('/cl'))
  const hit = await get(proxy.url('/cl'))

  for (const res of [revalidated, hit]) {
    assert.equal(res.status, 200)
    assert.equal(res.headers['content-length'], String(BODY.length))
    assert.ok(res.complete)
    assert.equal(sha256(res.body), sha256(BODY))
  }
  assert.equal(revalidated.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
  assert.equal(origin.count('/cl'), 2)
})

interface OriginDownCase {
  readonly cacheControl: string
  /** true: the stale copy is served; false: 502 */
  readonly servesStale: boolean
}

const ORIGIN_DOWN_CASES: readonly OriginDownCase[] = [
  { cacheControl: 'max-age=60', servesStale: true },
  { cacheControl: 'max-age=60, must-revalidate', servesStale: false },
  { cacheControl: 'max-age=60, proxy-revalidate', servesStale: false },
  { cacheControl: 's-maxage=60', servesStale: false },
]

for (const c of ORIGIN_DOWN_CASES) {
  const behaviour = c.servesStale ? 'the stale copy is served with stale-if-error' : 'the client gets 502, not the stale copy'
  test(`when the origin is down and the entry has "${c.cacheControl}", ${behaviour}`, async (t) => {
    const clock = fakeClock()
    const origin = await startOrigin(t, serveStatic({ '/d': { body: BODY, etag: ETAG, headers: { 'cache-control': c.cacheControl } } }))
    const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

    await get(proxy.url('/d'))
    await origin.close()
    clock.set(65 * SECOND)
    const res = await get(proxy.url('/d'))

    if (c.servesStale) {
      assert.equal(res.status, 200)
      assert.equal(sha256(res.body), sha256(BODY))
      assert.equal(res.headers['cache-status'], 'cachemir; fwd=stale; detail=stale-if-error')
      assert.ok(Number(res.headers.age) >= 65, `Age shows the copy is stale, got ${res.headers.age}`)
    } else {
      assert.equal(res.status, 502)
      assert.notEqual(sha256(res.body), sha256(BODY))
      assert.match(res.headers['cache-status'] ?? '', /^cachemir; fwd=stale$/)
    }
    assert.equal(origin.count('/d'), 1)
  })
}

const FORCING_HEADERS: readonly OutgoingHttpHeaders[] = [{ 'cache-control': 'no-cache' }, { pragma: 'no-cache' }]

for (const headers of FORCING_HEADERS) {
  const [name, value] = Object.entries(headers)[0] ?? []
  test(`a client "${name}: ${String(value)}" revalidates a fresh entry`, async (t) => {
    const { origin, statuses } = await startFiles(t, { '/c': { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=3600' } } })
    const proxy = await startProxy(t, { upstream: origin.url })

    await get(proxy.url('/c'))
    const forced = await get(proxy.url('/c'), { headers: { [String(name)]: String(value) } })
    assert.equal(forced.status, 200)
    assert.equal(sha256(forced.body), sha256(BODY))
    assert.equal(forced.headers['cache-status'], 'cachemir; fwd=request; fwd-status=304')
    assert.equal(origin.requests[1]?.headers['if-none-match'], ETAG)

    const plain = await get(proxy.url('/c'))
    assert.match(plain.headers['cache-status'] ?? '', /^cachemir; hit/)
    assert.equal(origin.count('/c'), 2)
    assert.deepEqual(statuses, [200, 304])
  })
}

test('a client no-cache request picks up a changed body while the entry is still fresh', async (t) => {
  const newBody = makeBody(10 * 1024, 9)
  const file: StaticFile = { body: BODY, etag: ETAG, headers: { 'cache-control': 'max-age=3600' } }
  const origin = await startOrigin(t, serveStatic({ '/c2': file }))
  const proxy = await startProxy(t, { upstream: origin.url })

  await get(proxy.url('/c2'))
  file.body = newBody
  file.etag = '"v2"'
  const stillCached = await get(proxy.url('/c2'))
  assert.equal(sha256(stillCached.body), sha256(BODY), 'a fresh entry is served until a client asks')

  const forced = await get(proxy.url('/c2'), { headers: { 'cache-control': 'no-cache' } })
  assert.equal(sha256(forced.body), sha256(newBody))
  assert.match(forced.headers['cache-status'] ?? '', /^cachemir; fwd=request(;.*)?; stored$/)

  const after = await get(proxy.url('/c2'))
  assert.equal(sha256(after.body), sha256(newBody))
  assert.match(after.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(origin.count('/c2'), 2)
})

test('after a 304 the Age counts from the revalidation, not from the first response', async (t) => {
  // The first response's Date is 100 s old, so it arrives stale (apparent age 100 s > max-age 60).
  const file: StaticFile = {
    body: BODY,
    etag: ETAG,
    headers: { 'cache-control': 'max-age=60', date: new Date(Date.now() - 100 * SECOND).toUTCString() },
  }
  const { origin, statuses } = await startFiles(t, { '/a': file })
  const proxy = await startProxy(t, { upstream: origin.url })

  await get(proxy.url('/a'))
  // The 304 carries a current Date (node adds it when the handler sets none).
  file.headers = { 'cache-control': 'max-age=60' }
  const revalidated = await get(proxy.url('/a'))
  assert.equal(revalidated.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
  assert.ok(Number(revalidated.headers.age) <= 1, `Age after the 304 should be about 0, got ${revalidated.headers.age}`)

  const hit = await get(proxy.url('/a'))
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.ok(Number(hit.headers.age) <= 1, `Age should be about 0, got ${hit.headers.age}`)
  assert.equal(origin.count('/a'), 2)
  assert.deepEqual(statuses, [200, 304])
})

test('after a 304 the Age restarts from the revalidation time of the injected clock', async (t) => {
  const clock = fakeClock()
  // The origin's Date follows the same injected clock, as a real origin's Date follows real time.
  const headers: Record<string, string> = { 'cache-control': 'max-age=60', date: new Date(clock.now()).toUTCString() }
  const { origin, statuses } = await startFiles(t, { '/ac': { body: BODY, etag: ETAG, headers } })
  const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

  await get(proxy.url('/ac'))
  clock.set(120 * SECOND)
  headers.date = new Date(clock.now()).toUTCString()
  const revalidated = await get(proxy.url('/ac'))
  assert.equal(revalidated.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
  assert.ok(Number(revalidated.headers.age) <= 1, `Age after the 304 should be about 0, got ${revalidated.headers.age}`)

  // Same instant: the entry was just revalidated, so it is fresh for another 60 s.
  const hit = await get(proxy.url('/ac'))
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(origin.count('/ac'), 2)
  assert.deepEqual(statuses, [200, 304])
})
