// test/integration/coalescing.test.ts
// One fill per cache key: concurrent misses share one origin request, late joiners get the whole
// body, slow or departed clients never hold up the fill or the other clients, and memory stays
// flat however many clients follow one large fill. Ordering, not timing, proves each claim: the
// origin holds its answer until the test has seen every client join (fills.counters), so a mirror
// that did not coalesce would send more origin requests and one that buffered would never answer.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import type { ClientRequest, IncomingHttpHeaders } from 'node:http'
import type { TestContext } from 'node:test'
import { makeBody, sendBody, sha256, startOrigin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { get, getFirstBytes, slowGet } from '../helpers/client.js'
import type { Fetched } from '../helpers/client.js'
import { tempFilesIn } from '../helpers/cache-files.js'
import { collectGarbage } from '../helpers/gc.js'
import { KiB, MiB } from '../helpers/sizes.js'
import { gate, LONG_WAIT_MS, until, within } from '../helpers/wait.js'

const CACHEABLE = { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=300' }

function tracked<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false
  const p = promise.finally(() => {
    settled = true
  })
  return { promise: p, settled: () => settled }
}

interface Streamed {
  status: number
  headers: IncomingHttpHeaders
  bytes: number
  sha256: string
  complete: boolean
}

interface StreamingClient {
  /** Resolves when the first body bytes have arrived. */
  readonly firstBytes: Promise<void>
  readonly done: Promise<Streamed>
}

/**
 * GET that hashes the body as it arrives and keeps none of it, so the test process itself does not
 * hold the object. With `holdUntil`, it stops reading after the first chunk until that resolves
 * (a client that has stalled: the server sees TCP backpressure).
 */
function streamingGet(t: TestContext, url: string, holdUntil?: Promise<void>): StreamingClient {
  let gotFirst!: () => void
  const firstBytes = new Promise<void>((resolve) => (gotFirst = resolve))
  let req: ClientRequest | undefined
  t.after(() => req?.destroy())
  const done = new Promise<Streamed>((resolve, reject) => {
    req = httpRequest(url, { agent: false })
    req.once('error', reject)
    req.once('response', (res) => {
      const hash = createHash('sha256')
      let bytes = 0
      let ended = false
      const finish = (complete: boolean): void => {
        gotFirst()
        resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, sha256: hash.digest('hex'), complete })
        req?.destroy()
      }
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0) {
          gotFirst()
          if (holdUntil !== undefined) {
            res.pause()
            void holdUntil.then(() => res.resume())
          }
        }
        hash.update(chunk)
        bytes += chunk.length
      })
      res.once('end', () => {
        ended = true
        finish(res.complete)
      })
      res.once('close', () => {
        if (!ended) finish(false)
      })
    })
    req.end()
  })
  return { firstBytes, done }
}

test('twenty concurrent misses for one object make exactly one origin request', async (t) => {
  const body = makeBody(2 * MiB, 21)
  const clients = 20
  const release = gate(t)
  const origin = await startOrigin(t, async (req, res) => {
    await release.promise
    // Throttled so the fill takes about a second.
    await sendBody(req, res, body, { headers: CACHEABLE, bytesPerSecond: 2 * MiB })
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const responses = Array.from({ length: clients }, () => get(proxy.url('/pkg.deb')))
  // Every request has reached the mirror and joined the one fill before the origin answers.
  // (A second origin request ends the wait too, so a mirror that does not coalesce fails on the count.)
  await until(
    () => proxy.mirror.fills.counters.joined === clients - 1 || origin.count('/pkg.deb') > 1,
    `${clients - 1} requests to join the fill`,
    LONG_WAIT_MS,
  )
  release.open()
  const all = await within(Promise.all(responses), LONG_WAIT_MS, 'all coalesced responses')

  for (const r of all) {
    assert.equal(r.status, 200)
    assert.equal(r.complete, true)
    assert.equal(r.headers['content-length'], String(body.length))
    assert.equal(sha256(r.body), sha256(body))
  }
  const statuses = all.map((r) => r.headers['cache-status'])
  assert.equal(statuses.filter((s) => s === 'cachemir; fwd=miss; stored').length, 1, 'one initiator')
  assert.equal(statuses.filter((s) => s === 'cachemir; fwd=miss; stored; collapsed').length, clients - 1, 'every other request collapsed')
  assert.equal(origin.count('/pkg.deb'), 1)
  assert.equal(proxy.mirror.fills.counters.started, 1)

  const hit = await get(proxy.url('/pkg.deb'))
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(sha256(hit.body), sha256(body))
  assert.equal(origin.count('/pkg.deb'), 1)
})

test('late joiners that arrive mid-fill get the whole body', async (t) => {
  const body = makeBody(3 * MiB, 22)
  const half = 1536 * KiB
  const release = gate(t)
  const origin = await startOrigin(t, async (_req, res) => {
    res.writeHead(200, { ...CACHEABLE, 'content-length': body.length })
    res.write(body.subarray(0, half))
    await release.promise
    if (!res.destroyed) res.end(body.subarray(half))
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  // The first client has half the body: the fill is well under way when the others arrive.
  const first = await within(getFirstBytes(proxy.url('/late.bin'), half), LONG_WAIT_MS, 'first client to receive half the body')
  assert.equal(first.first.length, half)
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  const late = [get(proxy.url('/late.bin')), get(proxy.url('/late.bin')), get(proxy.url('/late.bin'))]
  await until(
    () => proxy.mirror.fills.counters.joined === late.length || origin.count('/late.bin') > 1,
    'late requests to join the running fill',
    LONG_WAIT_MS,
  )
  release.open()

  const whole = await within(first.rest(), LONG_WAIT_MS, 'first client to finish')
  assert.equal(whole.complete, true)
  assert.equal(sha256(whole.body), sha256(body))
  for (const r of await within(Promise.all(late), LONG_WAIT_MS, 'late joiners to finish')) {
    assert.equal(r.status, 200)
    assert.equal(r.complete, true)
    assert.equal(r.headers['cache-status'], 'cachemir; fwd=miss; stored; collapsed')
    assert.equal(r.body.length, body.length)
    assert.equal(sha256(r.body), sha256(body))
  }
  assert.equal(origin.count('/late.bin'), 1)
})

test('slow and stalled clients do not slow a fast client on the same fill, and the fill is stored meanwhile', async (t) => {
  const body = makeBody(16 * MiB, 23)
  const release = gate(t)
  const origin = await startOrigin(t, async (_req, res) => {
    res.writeHead(200, { ...CACHEABLE, 'content-length': body.length })
    res.write(body.subarray(0, 64 * KiB))
    await release.promise
    if (!res.destroyed) res.end(body.subarray(64 * KiB))
  })
  const proxy = await startProxy(t, { upstream: origin.url })
  const order: string[] = []

  // A slow reader: 16 MiB at 4 MiB/s takes it about four seconds whatever the mirror does.
  const slow = tracked(slowGet(proxy.url('/iso'), 4 * MiB).then((r) => (order.push('slow'), r)))
  await until(() => origin.count('/iso') === 1, 'the slow client to start the fill', LONG_WAIT_MS)
  // A stalled reader: takes its first bytes, then reads nothing until the test says so. If the
  // fill or the other clients were paced by the slowest reader, the fast client could not finish.
  const stalledFirst = getFirstBytes(proxy.url('/iso'), 1)
  const fast = get(proxy.url('/iso')).then((r) => (order.push('fast'), r))
  await until(
    () => proxy.mirror.fills.counters.joined === 2 || origin.count('/iso') > 1,
    'the other clients to join the fill',
    LONG_WAIT_MS,
  )
  release.open()
  const stalled = await within(stalledFirst, LONG_WAIT_MS, 'first bytes of the stalled client')

  const fastResult = await within(fast, LONG_WAIT_MS, 'fast client, while another client is stalled')
  assert.deepEqual(order, ['fast'], 'the fast client finished while the slow one was still reading')
  assert.equal(fastResult.complete, true)
  assert.equal(fastResult.headers['cache-status'], 'cachemir; fwd=miss; stored; collapsed')
  assert.equal(sha256(fastResult.body), sha256(body))

  // The fill is done and stored although the slow and the stalled clients are still reading it.
  await until(() => proxy.mirror.fills.size === 0, 'the fill to be committed while a client is stalled', LONG_WAIT_MS)
  const third = await get(proxy.url('/iso'))
  assert.equal(slow.settled(), false, 'the slow client is still reading when the third request is a hit')
  assert.match(third.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(sha256(third.body), sha256(body))

  const stalledResult = await within(stalled.rest(), LONG_WAIT_MS, 'the stalled client to read on')
  assert.equal(stalledResult.complete, true)
  assert.equal(stalledResult.headers['cache-status'], 'cachemir; fwd=miss; stored; collapsed')
  assert.equal(sha256(stalledResult.body), sha256(body))
  const slowResult: Fetched = await within(slow.promise, 30_000, 'slow client')
  assert.deepEqual(order, ['fast', 'slow'])
  assert.equal(slowResult.status, 200)
  assert.equal(slowResult.complete, true)
  assert.equal(slowResult.headers['cache-status'], 'cachemir; fwd=miss; stored')
  assert.equal(slowResult.body.length, body.length)
  assert.equal(sha256(slowResult.body), sha256(body))
  assert.equal(origin.count('/iso'), 1)
})

test('memory stays flat while ten clients, some stalled, follow one 64 MiB fill', async (t) => {
  const body = makeBody(64 * MiB, 24)
  const warmBody = makeBody(4 * MiB, 25)
  const release = gate(t)
  const origin = await startOrigin(t, async (req, res) => {
    if (req.url === '/warm') return sendBody(req, res, warmBody, { headers: CACHEABLE })
    await release.promise
    await sendBody(req, res, body, { headers: CACHEABLE })
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  // Warm-up: the same code paths once, so lazily allocated pools are not counted as growth.
  const warm = [streamingGet(t, proxy.url('/warm')), streamingGet(t, proxy.url('/warm'))]
  for (const w of warm) assert.equal((await within(w.done, LONG_WAIT_MS, 'warm-up')).sha256, sha256(warmBody))
  assert.equal((await within(streamingGet(t, proxy.url('/warm')).done, LONG_WAIT_MS, 'warm-up hit')).sha256, sha256(warmBody))
  // RSS counts garbage that V8 has not collected yet and that the allocator has not returned;
  // collecting before every sample makes the figure what the process actually retains.
  collectGarbage()
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sample = (): void => {
    collectGarbage()
    peak = Math.max(peak, process.memoryUsage().rss)
  }
  const sampler = setInterval(sample, 50)
  t.after(() => clearInterval(sampler))

  const joinedBefore = proxy.mirror.fills.counters.joined
  const stalledRelease = gate(t)
  const fast = Array.from({ length: 7 }, () => streamingGet(t, proxy.url('/huge.img')))
  const stalled = Array.from({ length: 3 }, () => streamingGet(t, proxy.url('/huge.img'), stalledRelease.promise))
  await until(
    () => proxy.mirror.fills.counters.joined === joinedBefore + 9 || origin.count('/huge.img') > 1,
    'ten clients on one fill',
    LONG_WAIT_MS,
  )
  release.open()

  const fastResults = await within(Promise.all(fast.map((c) => c.done)), 30_000, 'fast clients')
  // Stalled clients have read at most a little: the fill must have finished without them.
  await within(Promise.all(stalled.map((c) => c.firstBytes)), LONG_WAIT_MS, 'stalled clients to receive their first bytes')
  await until(() => proxy.mirror.fills.size === 0, 'the fill to complete while three clients are stalled', LONG_WAIT_MS)
  assert.match((await get(proxy.url('/huge.img'), { method: 'HEAD' })).headers['cache-status'] ?? '', /^cachemir; hit/)
  stalledRelease.open()
  const stalledResults = await within(Promise.all(stalled.map((c) => c.done)), 30_000, 'stalled clients')
  sample()
  clearInterval(sampler)

  for (const r of [...fastResults, ...stalledResults]) {
    assert.equal(r.status, 200)
    assert.equal(r.complete, true)
    assert.equal(r.bytes, body.length)
    assert.equal(r.sha256, sha256(body))
  }
  assert.equal(origin.count('/huge.img'), 1)
  const growth = peak - baseline
  t.diagnostic(`rss baseline ${(baseline / MiB).toFixed(1)} MiB, peak growth ${(growth / MiB).toFixed(1)} MiB`)
  // A mirror that buffered the object would hold at least 64 MiB (ten copies: 640 MiB).
  assert.ok(growth < 48 * MiB, `rss grew by ${(growth / MiB).toFixed(1)} MiB while serving a 64 MiB object to 10 clients`)
})

test('a client that disconnects mid-fill does not stop the fill', async (t) => {
  const body = makeBody(2 * MiB, 26)
  const release = gate(t)
  const origin = await startOrigin(t, async (_req, res) => {
    res.writeHead(200, { ...CACHEABLE, 'content-length': body.length })
    res.write(body.subarray(0, 64 * KiB))
    await release.promise
    if (!res.destroyed) res.end(body.subarray(64 * KiB))
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const first = await within(getFirstBytes(proxy.url('/gone.bin'), 1), LONG_WAIT_MS, 'first bytes')
  assert.equal(first.status, 200)
  await first.abort()
  // The mirror has seen the client go (its request-completed line says aborted) before the origin goes on.
  await until(
    () => proxy.logs.some((l) => l.msg === 'request completed' && l['url'] === '/gone.bin' && l['aborted'] === true),
    'the mirror to notice the client abort',
    LONG_WAIT_MS,
  )
  assert.equal(proxy.mirror.fills.size, 1, 'the fill is still running after its only client left')
  release.open()
  await until(() => proxy.mirror.fills.size === 0, 'the fill to finish without clients', LONG_WAIT_MS)

  const later = await get(proxy.url('/gone.bin'))
  assert.equal(later.status, 200)
  assert.match(later.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(later.complete, true)
  assert.equal(sha256(later.body), sha256(body))
  assert.equal(origin.count('/gone.bin'), 1)
  assert.deepEqual(await tempFilesIn(proxy.cacheDir), [])
})

test('concurrent requests for different keys each get their own fill', async (t) => {
  const paths = ['/a.bin', '/b.bin', '/c.bin', '/d.bin']
  const bodies = new Map(paths.map((p, i) => [p, makeBody(512 * KiB + i, 30 + i)]))
  const release = gate(t)
  const origin = await startOrigin(t, async (req, res) => {
    await release.promise
    await sendBody(req, res, bodies.get(req.url ?? '') ?? Buffer.from('unknown'), { headers: CACHEABLE })
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const responses = paths.map((p) => get(proxy.url(p)))
  // All four requests reach the origin while none has been answered: four separate fills.
  await until(() => origin.count() === paths.length, 'one origin request per key', LONG_WAIT_MS)
  assert.equal(proxy.mirror.fills.size, paths.length)
  release.open()
  const results = await within(Promise.all(responses), LONG_WAIT_MS, 'all keys')

  for (const [i, p] of paths.entries()) {
    const r = results[i]
    assert.ok(r !== undefined)
    assert.equal(r.status, 200)
    assert.equal(r.complete, true)
    assert.equal(r.headers['cache-status'], 'cachemir; fwd=miss; stored')
    assert.equal(sha256(r.body), sha256(bodies.get(p) ?? Buffer.alloc(0)))
    assert.equal(origin.count(p), 1)
  }
  assert.equal(proxy.mirror.fills.counters.started, paths.length)
  assert.equal(proxy.mirror.fills.counters.joined, 0)
})
