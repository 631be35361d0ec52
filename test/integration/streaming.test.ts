// test/integration/streaming.test.ts
// A miss streams: the client gets the first bytes while the origin still holds back the rest, the
// whole body arrives intact, and the stored copy answers the next request without the origin.
// Streaming is proven by ordering, never by timing: the origin releases the rest of the body only
// after the client has received its first bytes through the mirror, so a mirror that buffered the
// whole object would never deliver them and the bounded wait below would fail the test.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { makeBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { get, getFirstBytes } from '../helpers/client.js'
import { KiB, MiB } from '../helpers/sizes.js'
import { gate, until, WAIT_MS, within } from '../helpers/wait.js'

/**
 * Writes the headers and the first `at` bytes, waits for `release`, then writes the rest.
 * Content-Length is whatever `headers` says (absent = chunked).
 */
async function holdBack(
  res: ServerResponse,
  headers: OutgoingHttpHeaders,
  body: Buffer,
  at: number,
  release: Promise<void>,
): Promise<void> {
  res.writeHead(200, headers)
  res.write(body.subarray(0, at))
  await release
  if (res.destroyed) return
  res.end(body.subarray(at))
}

test('a miss streams the first bytes to the client while the origin still holds back the rest', async (t) => {
  const body = makeBody(1 * MiB, 11)
  const release = gate(t)
  let originFinished = false
  const origin = await startOrigin(t, async (_req, res) => {
    await holdBack(
      res,
      { 'content-type': 'application/octet-stream', 'content-length': body.length, 'cache-control': 'max-age=300' },
      body,
      64 * KiB,
      release.promise,
    )
    originFinished = true
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  // Resolves only if the mirror forwards bytes before the origin has sent the whole body.
  const first = await within(getFirstBytes(proxy.url('/stream.bin'), 1), WAIT_MS, 'first bytes while the origin holds back the rest')
  assert.equal(originFinished, false)
  assert.equal(first.status, 200)
  assert.equal(first.headers['content-length'], String(body.length))
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  assert.ok(first.first.length > 0 && first.first.length <= 64 * KiB, `got ${first.first.length} bytes before the release`)
  assert.deepEqual(first.first, body.subarray(0, first.first.length))

  release.open()
  const whole = await within(first.rest(), WAIT_MS, 'rest of the body')
  assert.equal(whole.complete, true)
  assert.equal(whole.body.length, body.length)
  assert.equal(sha256(whole.body), sha256(body))

  const second = await get(proxy.url('/stream.bin'))
  assert.equal(second.status, 200)
  assert.match(second.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(second.headers['content-length'], String(body.length))
  assert.equal(sha256(second.body), sha256(body))
  assert.equal(origin.count('/stream.bin'), 1)
})

test('a chunked upstream body (no Content-Length) is streamed and stored', async (t) => {
  const body = makeBody(1 * MiB + 123, 12)
  const release = gate(t)
  const origin = await startOrigin(t, (_req, res) =>
    holdBack(res, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=300' }, body, 100 * KiB, release.promise),
  )
  const proxy = await startProxy(t, { upstream: origin.url })

  const first = await within(
    getFirstBytes(proxy.url('/chunked.bin'), 1),
    WAIT_MS,
    'first bytes of a chunked body while the origin holds back the rest',
  )
  assert.equal(first.status, 200)
  assert.equal(first.headers['content-length'], undefined)
  assert.equal(first.headers['transfer-encoding'], 'chunked')
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  assert.deepEqual(first.first, body.subarray(0, first.first.length))

  release.open()
  const whole = await within(first.rest(), WAIT_MS, 'rest of the chunked body')
  assert.equal(whole.complete, true)
  assert.equal(sha256(whole.body), sha256(body))

  const second = await get(proxy.url('/chunked.bin'))
  assert.equal(second.status, 200)
  assert.match(second.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(second.complete, true)
  assert.equal(sha256(second.body), sha256(body))
  assert.equal(origin.count('/chunked.bin'), 1)
})

test('a 32 MiB object arrives intact through a miss and then a hit', async (t) => {
  const body = makeBody(32 * MiB, 13)
  const origin = await startOrigin(
    t,
    serveStatic({ '/big.iso': { body, headers: { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=300' } } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url })

  const miss = await get(proxy.url('/big.iso'))
  assert.equal(miss.status, 200)
  assert.equal(miss.complete, true)
  assert.equal(miss.headers['cache-status'], 'cachemir; fwd=miss; stored')
  assert.equal(miss.headers['content-length'], String(body.length))
  assert.equal(miss.body.length, body.length)
  assert.equal(sha256(miss.body), sha256(body))

  const hit = await get(proxy.url('/big.iso'))
  assert.equal(hit.status, 200)
  assert.equal(hit.complete, true)
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(hit.headers['content-length'], String(body.length))
  assert.equal(sha256(hit.body), sha256(body))
  assert.equal(origin.count('/big.iso'), 1)
})

test('a HEAD during a fill gets the headers at once without another origin request', async (t) => {
  const body = makeBody(1 * MiB, 14)
  const release = gate(t)
  const origin = await startOrigin(t, (_req, res) =>
    holdBack(
      res,
      { 'content-type': 'application/x-test', 'content-length': body.length, etag: '"v1"', 'cache-control': 'max-age=300' },
      body,
      64 * KiB,
      release.promise,
    ),
  )
  const proxy = await startProxy(t, { upstream: origin.url })

  const getter = await within(getFirstBytes(proxy.url('/head.bin'), 1), WAIT_MS, 'first bytes of the GET that starts the fill')
  // The fill is still held by the origin: the HEAD must be answered from it, not wait for it.
  const head = await within(get(proxy.url('/head.bin'), { method: 'HEAD' }), WAIT_MS, 'HEAD answered during the fill')
  assert.equal(proxy.mirror.fills.size, 1, 'the fill is still running when the HEAD is answered')
  assert.equal(head.status, 200)
  assert.equal(head.complete, true)
  assert.equal(head.body.length, 0)
  assert.equal(head.headers['content-length'], String(body.length))
  assert.equal(head.headers['content-type'], 'application/x-test')
  assert.equal(head.headers.etag, '"v1"')
  assert.equal(head.headers['cache-status'], 'cachemir; fwd=miss; stored; collapsed')

  release.open()
  const whole = await within(getter.rest(), WAIT_MS, 'rest of the GET')
  assert.equal(whole.complete, true)
  assert.equal(sha256(whole.body), sha256(body))

  const headHit = await get(proxy.url('/head.bin'), { method: 'HEAD' })
  assert.equal(headHit.status, 200)
  assert.equal(headHit.body.length, 0)
  assert.equal(headHit.headers['content-length'], String(body.length))
  assert.match(headHit.headers['cache-status'] ?? '', /^cachemir; hit/)

  await until(() => proxy.mirror.fills.size === 0, 'the fill to leave the registry')
  assert.equal(origin.count('/head.bin'), 1)
  assert.deepEqual(
    origin.requests.map((r) => r.method),
    ['GET'],
  )
})
