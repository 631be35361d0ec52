// test/integration/body-transform.test.ts
// The serve-time body transform seam (MirrorOptions.transforms): a route's transform rewrites the
// bodies it serves on every path (filling, memory hit, disk hit, uncached, private), while the
// cache keeps the upstream's bytes. The headers it invalidates are handled in one place: no
// Content-Length (chunked), ETag derived from the upstream's, no Accept-Ranges, Range ignored,
// coded bodies decoded and coded again as the client accepts, other statuses untouched. Routes without a transform are unchanged.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Transform } from 'node:stream'
import { gunzipSync, gzipSync } from 'node:zlib'
import type { BodyTransform } from '../../src/respond/body-transform.js'
import { get } from '../helpers/client.js'
import { makeBody, sendBody, sha256, startOrigin, type Origin } from '../helpers/origin.js'
import { flipMiddle, storedBodyFile } from '../helpers/cache-files.js'
import { startConfiguredProxy, startProxy, type Proxy, type ProxyOptions } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { until, WAIT_MS } from '../helpers/wait.js'

/** Upper-cases ASCII letters: visible in every byte, and the same length, so a missed path shows. */
const UPPER: BodyTransform = {
  name: 'upper-v1',
  applies: (relativePath) => relativePath.endsWith('.txt'),
  create: () =>
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        const out = Buffer.from(chunk)
        for (let i = 0; i < out.length; i++) {
          const c = out[i] as number
          if (c >= 0x61 && c <= 0x7a) out[i] = c - 0x20
        }
        done(null, out)
      },
    }),
}

const TEXT = 'hello mirror, a body in lower case\n'
const BIG = Buffer.from(makeBody(3 * 1024 * 1024).toString('base64'))

function upper(body: Buffer | string): Buffer {
  return Buffer.from(body.toString('latin1').toUpperCase(), 'latin1')
}

/**
 * An origin with validators: `/x.txt` (cacheable text), `/big.txt` (3 MiB, larger than the memory
 * tier keeps), `/bypass/x.txt` (a route rule forbids storing it), `/gz.txt` (gzip-coded), `/private.txt` (no-store), `/x.bin` (not a .txt) and
 * `/missing.txt` (404).
 */
async function startTextOrigin(t: TestContext): Promise<Origin> {
  return startOrigin(t, (req, res) => {
    const path = (req.url ?? '').replace(/^\/(plain|text)/, '')
    const cacheable = { 'cache-control': 'max-age=600', etag: '"v1"', 'accept-ranges': 'bytes' }
    if (path === '/x.txt' || path === '/x.bin' || path === '/bypass/x.txt')
      return sendBody(req, res, Buffer.from(TEXT), { headers: cacheable })
    if (path === '/big.txt') return sendBody(req, res, BIG, { headers: { ...cacheable, etag: '"big"' } })
    if (path === '/gz.txt') return sendBody(req, res, gzipSync(TEXT), { headers: { ...cacheable, 'content-encoding': 'gzip' } })
    if (path === '/private.txt') return sendBody(req, res, Buffer.from(TEXT), { headers: { 'cache-control': 'no-store', etag: '"p1"' } })
    return sendBody(req, res, Buffer.from('not here\n'), { status: 404, headers: { 'cache-control': 'max-age=600' } })
  })
}

/** Routes `/text/` (transformed) and `/plain/` (no transform) in front of the same origin. */
function startTransformingProxy(t: TestContext, origin: Origin, options: ProxyOptions = {}): Promise<Proxy> {
  const routes = [
    { prefix: '/text/', upstreams: [`${origin.url}/text/`], rules: [{ match: '^bypass/', cache: 'no-store' }] },
    { prefix: '/plain/', upstreams: [`${origin.url}/plain/`] },
  ]
  return startConfiguredProxy(t, { routes }, { ...options, transforms: new Map([['/text/', UPPER]]) })
}

/**
 * A transformed response: streamed ones are chunked; a small body already in memory (`whole`) is
 * transformed first and carries the transformed length.
 */
function assertTransformed(res: Awaited<ReturnType<typeof get>>, expected: Buffer, etag: string, what: string, whole = false): void {
  assert.equal(res.status, 200, what)
  assert.equal(res.body.toString('latin1'), expected.toString('latin1'), what)
  if (whole) assert.equal(res.headers['content-length'], String(expected.length), `${what}: the transformed length`)
  else {
    assert.equal(res.headers['content-length'], undefined, `${what}: no Content-Length`)
    assert.equal(res.headers['transfer-encoding'], 'chunked', `${what}: chunked`)
  }
  assert.equal(res.headers['etag'], etag, `${what}: derived ETag`)
  assert.equal(res.headers['accept-ranges'], undefined, `${what}: no Accept-Ranges`)
}

test('a filling response and the memory hit after it both go through the route transform; the origin is asked once', async (t) => {
  const origin = await startTextOrigin(t)
  const proxy = await startTransformingProxy(t, origin)

  const miss = await get(proxy.url('/text/x.txt'))
  assertTransformed(miss, upper(TEXT), '"v1+upper-v1"', 'miss', true)
  assert.match(miss.headers['cache-status'] ?? '', /^cachemir; fwd=miss; stored$/)

  const hit = await get(proxy.url('/text/x.txt'))
  assertTransformed(hit, upper(TEXT), '"v1+upper-v1"', 'hit', true)
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit; ttl=\d+$/)

  const head = await get(proxy.url('/text/x.txt'), { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(head.body.length, 0)
  assert.equal(head.headers['etag'], '"v1+upper-v1"')
  assert.equal(head.headers['content-length'], undefined)
  assert.equal(origin.count('/text/x.txt'), 1)
})

test('the cache keeps the upstream bytes: the route without a transform serves them with their length and ranges', async (t) => {
  const origin = await startTextOrigin(t)
  const proxy = await startTransformingProxy(t, origin)

  await get(proxy.url('/text/x.txt'))
  const plain = await get(proxy.url('/plain/x.txt'))
  assert.equal(plain.body.toString(), TEXT)
  assert.equal(plain.headers['content-length'], String(TEXT.length))
  assert.equal(plain.headers['etag'], '"v1"')
  const range = await get(proxy.url('/plain/x.txt'), { headers: { range: 'bytes=0-4' } })
  assert.equal(range.status, 206)
  assert.equal(range.body.toString(), 'hello')
  // A path the transform does not apply to, on the transformed route: untouched too.
  const bin = await get(proxy.url('/text/x.bin'))
  assert.equal(bin.body.toString(), TEXT)
  assert.equal(bin.headers['content-length'], String(TEXT.length))
  assert.equal(bin.headers['etag'], '"v1"')
})

test('conditional requests: the derived tag gets 304 from the cache, the upstream tag does not match', async (t) => {
  const origin = await startTextOrigin(t)
  const proxy = await startTransformingProxy(t, origin)
  await get(proxy.url('/text/x.txt'))

  const derived = await get(proxy.url('/text/x.txt'), { headers: { 'if-none-match': '"v1+upper-v1"' } })
  assert.equal(derived.status, 304)
  assert.equal(derived.headers['etag'], '"v1+upper-v1"')
  assert.equal(derived.body.length, 0)

  const original = await get(proxy.url('/text/x.txt'), { headers: { 'if-none-match': '"v1"' } })
  assertTransformed(original, upper(TEXT), '"v1+upper-v1"', 'If-None-Match with the upstream tag', true)
  assert.equal(origin.count('/text/x.txt'), 1)
})

test('Range is ignored on a transformed response: the whole transformed body, status 200', async (t) => {
  const origin = await startTextOrigin(t)
  const proxy = await startTransformingProxy(t, origin)

  const first = await get(proxy.url('/text/x.txt'), { headers: { range: 'bytes=0-4' } })
  assertTransformed(first, upper(TEXT), '"v1+upper-v1"', 'range while filling', true)
  const cached = await get(proxy.url('/text/x.txt'), { headers: { range: 'bytes=0-4' } })
  assertTransformed(cached, upper(TEXT), '"v1+upper-v1"', 'range on a hit', true)
  assert.equal(origin.count('/text/x.txt'), 1)
})

test('a body read from disk is verified and transformed; its digest is that of the transformed bytes', async (t) => {
  const origin = await startTextOrigin(t)
  // 1 MiB of memory keeps no 3 MiB body: the hit reads the body file.
  const proxy = await startTransformingProxy(t, origin, { maxMemory: '1MiB' })

  // 3 MiB: streamed through the transform while it fills (chunked), never held whole.
  const miss = await get(proxy.url('/text/big.txt'))
  assert.equal(sha256(miss.body), sha256(upper(BIG)))
  assert.equal(miss.headers['content-length'], undefined)
  assert.equal(miss.headers['transfer-encoding'], 'chunked')
  const hit = await get(proxy.url('/text/big.txt'))
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(hit.headers['etag'], '"big+upper-v1"')
  assert.equal(hit.headers['content-length'], undefined)
  assert.equal(sha256(hit.body), sha256(upper(BIG)))
  assert.equal(origin.count('/text/big.txt'), 1)
})

test('a rotten body file is never sent complete through the transform: the entry is dropped and refetched', async (t) => {
  const origin = await startTextOrigin(t)
  const cacheDir = await makeTempDir(t, 'cachemir-corrupt-')
  const options = { maxMemory: '1MiB', cacheDir }
  const a = await startTransformingProxy(t, origin, options)
  await get(a.url('/text/big.txt'))
  await until(() => a.mirror.fills.size === 0 && a.mirror.store.stats().diskEntries === 1, 'the entry to reach the disk', WAIT_MS)
  await a.close()
  await flipMiddle(await storedBodyFile(cacheDir), 4096)

  const b = await startTransformingProxy(t, origin, options)
  const damaged = await get(b.url('/text/big.txt'))
  assert.equal(damaged.complete, false, 'the damaged copy is cut short (chunked: no last chunk)')
  const next = await get(b.url('/text/big.txt'))
  assert.equal(next.complete, true)
  assert.equal(sha256(next.body), sha256(upper(BIG)))
  assert.match(next.headers['cache-status'] ?? '', /fwd=miss/)
  assert.equal(origin.count('/text/big.txt'), 2)
})

test('a gzip-coded body is decoded for the transform and sent gzip again, or identity to a client that does not take gzip', async (t) => {
  const origin = await startTextOrigin(t)
  const proxy = await startTransformingProxy(t, origin)

  for (let i = 0; i < 2; i++) {
    const gz = await get(proxy.url('/text/gz.txt'), { headers: { 'accept-encoding': 'gzip' } })
    assert.equal(gz.headers['content-encoding'], 'gzip', `round ${i}`)
    assert.equal(gunzipSync(gz.body).toString(), upper(TEXT).toString())
    assert.equal(gz.headers['etag'], '"v1+upper-v1"')
    // A small body is transformed whole, miss and hit alike, and says its length.
    assert.equal(gz.headers['content-length'], String(gz.body.length))
    assert.match(gz.headers['vary'] ?? '', /accept-encoding/i)

    const plain = await get(proxy.url('/text/gz.txt'))
    assert.equal(plain.headers['content-encoding'], undefined)
    assert.equal(plain.body.toString(), upper(TEXT).toString())
    assert.equal(plain.headers['etag'], '"v1+upper-v1.identity"')
  }
  assert.equal(origin.count('/text/gz.txt'), 1)
})

test('a 404 passes untouched, with its own headers', async (t) => {
  const origin = await startTextOrigin(t)
  const proxy = await startTransformingProxy(t, origin)
  for (let i = 0; i < 2; i++) {
    const missing = await get(proxy.url('/text/missing.txt'))
    assert.equal(missing.status, 404)
    assert.equal(missing.body.toString(), 'not here\n')
    assert.equal(missing.headers['content-length'], '9')
  }
})

test('uncached and private responses go through the transform too', async (t) => {
  const origin = await startTextOrigin(t)
  const proxy = await startTransformingProxy(t, origin)

  for (let i = 0; i < 2; i++) {
    const uncached = await get(proxy.url('/text/private.txt'))
    assertTransformed(uncached, upper(TEXT), '"p1+upper-v1"', 'no-store')
    assert.match(uncached.headers['cache-status'] ?? '', /fwd=miss/)
  }
  // A route rule that forbids storing: each client's own upstream request.
  const bypassed = await get(proxy.url('/text/bypass/x.txt'))
  assertTransformed(bypassed, upper(TEXT), '"v1+upper-v1"', 'no-store rule')
  assert.match(bypassed.headers['cache-status'] ?? '', /fwd=bypass/)
  const authorized = await get(proxy.url('/text/x.txt'), { headers: { authorization: 'Bearer t' } })
  assertTransformed(authorized, upper(TEXT), '"v1+upper-v1"', 'with credentials')
  assert.equal(origin.count('/text/private.txt'), 2)
})

test('a transform for a prefix that no route has is refused at start-up', async (t) => {
  const origin = await startTextOrigin(t)
  await assert.rejects(
    startProxy(t, { upstream: origin.url, transforms: new Map([['/nope/', UPPER]]) }),
    /transforms: no route has the prefix \/nope\//,
  )
})
