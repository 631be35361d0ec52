// test/faults/clients.test.ts
// Misbehaving clients against a real mirror: a slow-loris trickling its headers, clients that
// open a large hit and never read, clients that vanish mid-response (from a hit and from a fill),
// and a crowd of keep-alive clients. Each test checks that everybody else is still served,
// correctly and promptly (bounds generous enough that only a broken mirror reaches them).
//
// Already covered elsewhere, not repeated here (test/integration/coalescing.test.ts): stalled and
// slow clients on one fill (memory stays flat, the fill is stored), and the only client of a fill
// leaving mid-fill; (test/integration/robustness.test.ts) thirty clients leaving a large fill at
// random points leak no file handles.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Client } from 'undici'
import { assertBody } from '../helpers/assert.js'
import { cacheStatus, get, getFirstBytes, type Fetched } from '../helpers/client.js'
import { collectGarbage } from '../helpers/gc.js'
import { makeBody, serveStatic, startOrigin, type StaticFile } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { KiB, MiB } from '../helpers/sizes.js'
import { until, WAIT_MS, within } from '../helpers/wait.js'

const CACHEABLE = { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' }

/** Raw TCP connections that t.after destroys. */
function socketPool(t: TestContext): { open(port: number): Promise<Socket>; all: Set<Socket> } {
  const all = new Set<Socket>()
  t.after(() => {
    for (const s of all) s.destroy()
  })
  return {
    all,
    open: (port) =>
      new Promise((resolve, reject) => {
        const s = connect({ port, host: '127.0.0.1' })
        all.add(s)
        s.once('connect', () => {
          s.off('error', reject)
          s.on('error', () => {})
          resolve(s)
        })
        s.once('error', reject)
        s.once('close', () => all.delete(s))
      }),
  }
}

test('slow-loris connections trickling their headers do not hold up other clients', async (t) => {
  const small = makeBody(4 * KiB, 1)
  const files: Record<string, StaticFile> = { '/hit.bin': { body: small, headers: CACHEABLE } }
  for (let i = 0; i < 10; i++) files[`/miss${i}.bin`] = { body: makeBody(64 * KiB, 10 + i), headers: CACHEABLE }
  const origin = await startOrigin(t, serveStatic(files))
  const proxy = await startProxy(t, { upstream: origin.url })
  assertBody(await get(proxy.url('/hit.bin')), small, 'warm-up')

  // Forty connections, each sending one header byte every 200 ms and never finishing its head.
  const pool = socketPool(t)
  const lorises = await Promise.all(Array.from({ length: 40 }, () => pool.open(proxy.port)))
  const head = Buffer.from(`GET /hit.bin HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nX-Padding: ${'p'.repeat(200)}`)
  let sent = 0
  let trickling = true
  const trickle = (async () => {
    for (let i = 0; i < 25 && trickling; i++) {
      for (const s of lorises) if (!s.destroyed) s.write(head.subarray(sent, sent + 1))
      sent++
      await sleep(200)
    }
  })()
  await sleep(400)

  // Meanwhile: misses all at once, then hits one after another for as long as the trickle goes
  // on (about three seconds), each within a generous bound.
  const misses = await within(
    Promise.all(Array.from({ length: 10 }, (_, i) => get(proxy.url(`/miss${i}.bin`)))),
    5000,
    'ten misses during the slow-loris',
  )
  const served: Fetched[] = []
  for (let i = 0; i < 400 && sent < 15; i++) {
    served.push(await within(get(proxy.url('/hit.bin')), 2000, `hit ${i} during the slow-loris`))
    await sleep(50)
  }
  const stillOpen = lorises.filter((s) => !s.destroyed).length
  trickling = false
  await trickle

  for (const [i, r] of served.entries()) {
    assertBody(r, small, `hit ${i}`)
    assert.match(cacheStatus(r), /^cachemir; hit/)
  }
  for (const [i, r] of misses.entries()) assertBody(r, (files[`/miss${i}.bin`] as StaticFile).body, `miss ${i}`)
  assert.ok(sent >= 15, `the slow-loris sent ${sent} bytes while the others were served`)
  assert.ok(served.length >= 5, `${served.length} hits served during the slow-loris`)
  assert.equal(stillOpen, lorises.length, 'the slow-loris connections were still open (so they really were in progress)')
  assert.equal(origin.count('/hit.bin'), 1, 'no slow-loris request was ever forwarded')
  for (const s of lorises) s.destroy()
  assertBody(await within(get(proxy.url('/hit.bin')), WAIT_MS, 'afterwards'), small, 'after the slow-loris left')
})

test('ten clients that open a 32 MiB hit and never read hold little memory and do not delay other clients', async (t) => {
  const size = 32 * MiB
  const big = makeBody(size, 2)
  const small = makeBody(2 * KiB, 3)
  const origin = await startOrigin(
    t,
    serveStatic({ '/big.bin': { body: big, headers: CACHEABLE }, '/small.bin': { body: small, headers: CACHEABLE } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url })

  // Store both, then read each once as a hit so lazily allocated pools are not counted as growth.
  assertBody(await get(proxy.url('/big.bin')), big, 'fill')
  assertBody(await get(proxy.url('/small.bin')), small, 'fill small')
  await until(() => proxy.mirror.fills.size === 0, 'the fills to commit', WAIT_MS)
  const warm = await get(proxy.url('/big.bin'))
  assertBody(warm, big, 'warm-up hit')
  assert.match(cacheStatus(warm), /^cachemir; hit/)
  collectGarbage()
  await sleep(50)
  collectGarbage()
  const baseline = process.memoryUsage().rss

  // Ten clients send their request and then never read: the mirror meets full socket buffers.
  const pool = socketPool(t)
  const stalled = await Promise.all(Array.from({ length: 10 }, () => pool.open(proxy.port)))
  for (const s of stalled) {
    s.write(`GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`)
    s.pause()
  }
  // Give the mirror time to push whatever it is going to push into the stalled connections.
  let peak = baseline
  for (let i = 0; i < 20; i++) {
    await sleep(100)
    collectGarbage()
    peak = Math.max(peak, process.memoryUsage().rss)
  }

  const hits: Fetched[] = []
  for (let i = 0; i < 5; i++) hits.push(await within(get(proxy.url('/small.bin')), 2000, `small hit ${i} while ten clients are stalled`))
  const whole = await within(get(proxy.url('/big.bin')), 15_000, 'a whole 32 MiB hit while ten clients are stalled')
  const stalledOpen = stalled.filter((s) => !s.destroyed).length

  for (const r of hits) {
    assertBody(r, small, 'small hit')
    assert.match(cacheStatus(r), /^cachemir; hit/)
  }
  assertBody(whole, big, 'big hit')
  assert.match(cacheStatus(whole), /^cachemir; hit/)
  assert.equal(stalledOpen, 10, 'the stalled clients were still connected')
  assert.equal(origin.count('/big.bin'), 1)
  const growth = peak - baseline
  t.diagnostic(`rss baseline ${(baseline / MiB).toFixed(1)} MiB, growth with ten stalled clients ${(growth / MiB).toFixed(1)} MiB`)
  // A mirror that buffered what the clients do not read would hold up to 10 × 32 MiB.
  assert.ok(growth < 100 * MiB, `rss grew by ${(growth / MiB).toFixed(1)} MiB with ten clients stalled on a 32 MiB hit`)

  // The stalled clients really were being answered: each has a 200 waiting in its socket.
  const heads = await within(
    Promise.all(
      stalled.map(
        (s) =>
          new Promise<string>((resolve) => {
            s.once('data', (c: Buffer) => resolve(c.subarray(0, 12).toString('latin1')))
            s.resume()
          }),
      ),
    ),
    WAIT_MS,
    'the first bytes waiting for each stalled client',
  )
  assert.deepEqual(
    heads,
    stalled.map(() => 'HTTP/1.1 200'),
  )
  for (const s of stalled) s.destroy()
  assertBody(await within(get(proxy.url('/small.bin')), WAIT_MS, 'after the stalled clients left'), small, 'afterwards')
})

test('clients vanishing in the middle of hits leave concurrent readers and the entry intact', async (t) => {
  // One body streamed from disk (larger than 8 MiB) and one held in memory.
  const onDisk = makeBody(12 * MiB, 4)
  const inMemory = makeBody(3 * MiB, 5)
  const origin = await startOrigin(
    t,
    serveStatic({ '/disk.bin': { body: onDisk, headers: CACHEABLE }, '/mem.bin': { body: inMemory, headers: CACHEABLE } }),
  )
  const proxy = await startProxy(t, { upstream: origin.url })
  assertBody(await get(proxy.url('/disk.bin')), onDisk, 'fill disk')
  assertBody(await get(proxy.url('/mem.bin')), inMemory, 'fill memory')
  await until(() => proxy.mirror.fills.size === 0, 'the fills to commit', WAIT_MS)

  const run = async (path: string, body: Buffer): Promise<void> => {
    // Twenty clients leave after various amounts; three read everything at the same time.
    const leavers = Array.from({ length: 20 }, async (_, i) => {
      const r = await getFirstBytes(proxy.url(path), 1 + Math.floor((i / 20) * (body.length - 1)))
      await r.abort()
      assert.equal(r.status, 200)
      assert.ok(r.first.equals(body.subarray(0, r.first.length)), `${path} leaver ${i} got the start of the body`)
    })
    const readers = Array.from({ length: 3 }, () => get(proxy.url(path)))
    await within(Promise.all(leavers), 30_000, `${path}: every leaver to read its share and leave`)
    for (const [i, r] of (await within(Promise.all(readers), 30_000, `${path}: full readers`)).entries()) {
      assertBody(r, body, `${path} full reader ${i}`)
      assert.match(cacheStatus(r), /^cachemir; hit/)
    }
  }
  await run('/disk.bin', onDisk)
  await run('/mem.bin', inMemory)

  const disk = await within(get(proxy.url('/disk.bin')), WAIT_MS, 'disk hit afterwards')
  const mem = await within(get(proxy.url('/mem.bin')), WAIT_MS, 'memory hit afterwards')
  assertBody(disk, onDisk, 'disk afterwards')
  assertBody(mem, inMemory, 'memory afterwards')
  assert.match(cacheStatus(disk), /^cachemir; hit/)
  assert.match(cacheStatus(mem), /^cachemir; hit/)
  assert.equal(origin.count('/disk.bin'), 1)
  assert.equal(origin.count('/mem.bin'), 1)
})

test('the client that started a fill and others vanishing mid-fill do not disturb a concurrent full reader, and the object is stored', async (t) => {
  const size = 8 * MiB
  const body = makeBody(size, 6)
  // About two seconds for the whole body, so everybody meets the fill in progress.
  const origin = await startOrigin(t, serveStatic({ '/fill.bin': { body, headers: CACHEABLE, send: { bytesPerSecond: 4 * MiB } } }))
  const proxy = await startProxy(t, { upstream: origin.url })

  const starter = await within(getFirstBytes(proxy.url('/fill.bin'), 1), WAIT_MS, 'the first client')
  const fullEarly = get(proxy.url('/fill.bin'))
  await starter.abort()
  const leavers = Array.from({ length: 10 }, async (_, i) => {
    await sleep(i * 100)
    const r = await getFirstBytes(proxy.url('/fill.bin'), (i + 1) * 256 * KiB)
    await r.abort()
    assert.equal(r.status, 200)
    assert.ok(r.first.equals(body.subarray(0, r.first.length)), `leaver ${i} got the start of the body`)
  })
  await sleep(500)
  const fullLate = get(proxy.url('/fill.bin'))
  await within(Promise.all(leavers), 30_000, 'every leaver to read its share and leave')
  const [early, late] = await within(Promise.all([fullEarly, fullLate]), 30_000, 'the full readers')

  assertBody(early, body, 'early full reader')
  assertBody(late, body, 'late full reader')
  assert.match(cacheStatus(early), /^cachemir; fwd=miss; stored; collapsed/)
  await until(() => proxy.mirror.fills.size === 0, 'the fill to commit', WAIT_MS)
  const hit = await within(get(proxy.url('/fill.bin')), WAIT_MS, 'a hit afterwards')
  assertBody(hit, body, 'hit')
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  assert.equal(origin.count('/fill.bin'), 1)
})

test('200 concurrent keep-alive clients requesting small cached objects all get the right bodies over one connection each', async (t) => {
  const objects = Array.from({ length: 50 }, (_, i) => ({ path: `/obj/${i}.bin`, body: makeBody(512 + i * 61, 100 + i) }))
  const files: Record<string, StaticFile> = {}
  for (const o of objects) files[o.path] = { body: o.body, headers: CACHEABLE }
  const origin = await startOrigin(t, serveStatic(files))
  const proxy = await startProxy(t, { upstream: origin.url })
  for (const o of objects) assertBody(await get(proxy.url(o.path)), o.body, `fill ${o.path}`)
  await until(() => proxy.mirror.fills.size === 0, 'the fills to commit', WAIT_MS)

  const clients = Array.from({ length: 200 }, () => new Client(proxy.url(''), { pipelining: 1, keepAliveTimeout: 30_000 }))
  t.after(() => Promise.all(clients.map((c) => c.destroy().catch(() => {}))))
  const connects = clients.map(() => 0)
  clients.forEach((c, i) => c.on('connect', () => (connects[i] = (connects[i] ?? 0) + 1)))
  const wrong: string[] = []
  const perClient = 10
  await within(
    Promise.all(
      clients.map(async (client, ci) => {
        for (let k = 0; k < perClient; k++) {
          const o = objects[(ci * 7 + k * 13) % objects.length] as { path: string; body: Buffer }
          const res = await client.request({ path: o.path, method: 'GET' })
          const got = Buffer.from(await res.body.arrayBuffer())
          const status = String(res.headers['cache-status'] ?? '')
          if (res.statusCode !== 200 || !got.equals(o.body) || !status.startsWith('cachemir; hit')) {
            wrong.push(`client ${ci} request ${k} ${o.path}: ${res.statusCode} ${status} ${got.length} bytes`)
          }
        }
      }),
    ),
    60_000,
    '2000 requests over 200 keep-alive connections',
  )
  await Promise.all(clients.map((c) => c.close()))

  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong answers`)
  const reconnected = connects.filter((n) => n !== 1).length
  assert.equal(reconnected, 0, `${reconnected} clients did not keep their one connection: ${connects.join(',')}`)
  for (const o of objects) assert.equal(origin.count(o.path), 1, o.path)
})
