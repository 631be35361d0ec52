// test/integration/storage-bounds.test.ts
// The cache stays within its byte budgets: the disk tier evicts least recently used entries
// (files included), an object bigger than the whole disk budget is served but never stored, and
// a small memory tier keeps only what fits while hits are served from disk.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { makeBody, sendBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import type { StaticFile } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { get } from '../helpers/client.js'
import type { Fetched } from '../helpers/client.js'
import { cacheFiles } from '../helpers/cache-files.js'
import type { CacheFile } from '../helpers/cache-files.js'
import { KiB, MiB } from '../helpers/sizes.js'
import { until } from '../helpers/wait.js'

const CACHEABLE = { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=300' }

const bodyFiles = (files: CacheFile[]): CacheFile[] => files.filter((f) => f.name.endsWith('.body') && !f.name.startsWith('.tmp-'))
const tempFiles = (files: CacheFile[]): CacheFile[] => files.filter((f) => f.name.startsWith('.tmp-'))

function assertHit(r: Fetched, body: Buffer, what: string): void {
  assert.equal(r.status, 200, what)
  assert.equal(r.complete, true, what)
  assert.match(r.headers['cache-status'] ?? '', /^cachemir; hit/, `${what} is a hit`)
  assert.equal(sha256(r.body), sha256(body), what)
}

function assertMiss(r: Fetched, body: Buffer, what: string): void {
  assert.equal(r.status, 200, what)
  assert.equal(r.complete, true, what)
  assert.match(r.headers['cache-status'] ?? '', /^cachemir; fwd=miss/, `${what} is a miss`)
  assert.equal(sha256(r.body), sha256(body), what)
}

test('the disk tier stays within maxDisk by evicting the least recently used objects', async (t) => {
  const maxDisk = 1 * MiB
  const size = 200 * KiB
  const names = Array.from({ length: 10 }, (_, i) => `/obj${i}.bin`)
  const bodies = new Map(names.map((n, i) => [n, makeBody(size, 50 + i)]))
  const files: Record<string, StaticFile> = {}
  for (const [n, body] of bodies) files[n] = { body, headers: CACHEABLE }
  const origin = await startOrigin(t, serveStatic(files))
  const proxy = await startProxy(t, { upstream: origin.url, maxDisk: '1MiB' })
  const body = (n: string): Buffer => bodies.get(n) ?? Buffer.alloc(0)
  const [first, ...rest] = names as [string, ...string[]]

  // Fill all ten in order, using the first object again before each new one: it stays recent.
  for (const [i, n] of names.entries()) {
    assertMiss(await get(proxy.url(n)), body(n), `first request for ${n}`)
    // The client has its body before the entry is committed; the store's figures follow the commit.
    await until(() => proxy.mirror.fills.size === 0, `${n} to be committed`)
    if (i > 0) assertHit(await get(proxy.url(first)), body(first), `${first} used again after ${n}`)
    const stats = proxy.mirror.store.stats()
    assert.ok(stats.diskBytes <= maxDisk, `diskBytes ${stats.diskBytes} after ${n}`)
  }

  // At most five 200 KiB bodies fit in 1 MiB; the mirror also charges some metadata per entry
  // (4 KiB blocks today), but a sensible budget still keeps at least four.
  const stats = proxy.mirror.store.stats()
  const kept = stats.diskEntries
  assert.ok(kept * size <= maxDisk, `${kept} entries of ${size} bytes exceed the budget`)
  assert.ok(kept >= Math.floor(maxDisk / (size + 8 * KiB)), `only ${kept} entries kept in a budget for more`)
  assert.equal(stats.evictions, names.length - kept)
  // Evicted entries' files are removed (asynchronously): what is on disk matches the index.
  await until(async () => bodyFiles(await cacheFiles(proxy.cacheDir)).length === kept, `${kept} body files on disk`)
  const onDisk = await cacheFiles(proxy.cacheDir)
  assert.equal(onDisk.filter((f) => f.name.endsWith('.meta')).length, kept)
  assert.ok(bodyFiles(onDisk).every((f) => f.size === size))
  assert.ok(bodyFiles(onDisk).reduce((n, f) => n + f.size, 0) <= maxDisk)
  assert.deepEqual(tempFiles(onDisk), [])

  // Survivors: the always-used first object and the newest ones. Each is still a hit.
  const survivors = [first, ...rest.slice(-(kept - 1))]
  for (const n of survivors) {
    assertHit(await get(proxy.url(n)), body(n), `survivor ${n}`)
    assert.equal(origin.count(n), 1, `${n} fetched from the origin once`)
  }
  // The least recently used ones were evicted, although they were stored after the first object:
  // asking again goes to the origin.
  const evicted = rest.slice(0, rest.length - (kept - 1))
  assert.equal(evicted[0], '/obj1.bin')
  for (const n of evicted.slice(0, 2)) {
    assertMiss(await get(proxy.url(n)), body(n), `evicted ${n}`)
    assert.equal(origin.count(n), 2, `${n} fetched from the origin again`)
  }
  assert.ok(proxy.mirror.store.stats().diskBytes <= maxDisk)
})

test('an object larger than the disk budget is served intact but not stored', async (t) => {
  const body = makeBody(2 * MiB, 61)
  const origin = await startOrigin(t, serveStatic({ '/huge.bin': { body, headers: CACHEABLE } }))
  const proxy = await startProxy(t, { upstream: origin.url, maxDisk: '1MiB' })

  for (let i = 1; i <= 2; i++) {
    const r = await get(proxy.url('/huge.bin'))
    assert.equal(r.status, 200)
    assert.equal(r.complete, true)
    assert.equal(r.headers['content-length'], String(body.length))
    assert.equal(sha256(r.body), sha256(body))
    assert.match(r.headers['cache-status'] ?? '', /^cachemir; fwd=miss/)
    assert.doesNotMatch(r.headers['cache-status'] ?? '', /stored/)
    assert.equal(origin.count('/huge.bin'), i, 'every request goes to the origin')
  }
  await until(() => proxy.mirror.fills.size === 0, 'no fill running')
  const files = await cacheFiles(proxy.cacheDir)
  assert.deepEqual(bodyFiles(files), [])
  assert.deepEqual(tempFiles(files), [])
  assert.equal(proxy.mirror.store.stats().diskBytes, 0)
})

test('a chunked object that turns out larger than the disk budget is served intact but not stored', async (t) => {
  const body = makeBody(2 * MiB, 62)
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, body, { headers: CACHEABLE, contentLength: false }))
  const proxy = await startProxy(t, { upstream: origin.url, maxDisk: '1MiB' })

  for (let i = 1; i <= 2; i++) {
    const r = await get(proxy.url('/stream.bin'))
    assert.equal(r.status, 200)
    assert.equal(r.complete, true)
    assert.equal(sha256(r.body), sha256(body))
    assert.match(r.headers['cache-status'] ?? '', /^cachemir; fwd=miss/)
    assert.equal(origin.count('/stream.bin'), i, 'every request goes to the origin')
  }
  await until(() => proxy.mirror.fills.size === 0, 'no fill running')
  const files = await cacheFiles(proxy.cacheDir)
  assert.deepEqual(bodyFiles(files), [])
  assert.deepEqual(tempFiles(files), [])
  assert.equal(proxy.mirror.store.stats().diskBytes, 0)
})

test('a small memory tier stays within maxMemory while hits are served from disk', async (t) => {
  const maxMemory = 64 * KiB
  // Small objects have their bodies kept in memory (up to maxMemory/16); larger ones only their metadata.
  const objects = [
    ...Array.from({ length: 30 }, (_, i) => ({ path: `/small${i}.txt`, body: makeBody(3 * KiB, 70 + i) })),
    ...Array.from({ length: 8 }, (_, i) => ({ path: `/large${i}.bin`, body: makeBody(48 * KiB + i, 100 + i) })),
  ]
  const files: Record<string, StaticFile> = {}
  for (const o of objects) files[o.path] = { body: o.body, headers: CACHEABLE }
  const origin = await startOrigin(t, serveStatic(files))
  const proxy = await startProxy(t, { upstream: origin.url, maxMemory: '64KiB' })

  for (const o of objects) {
    assertMiss(await get(proxy.url(o.path)), o.body, `first request for ${o.path}`)
    await until(() => proxy.mirror.fills.size === 0, `${o.path} to be committed`)
    assert.ok(proxy.mirror.store.stats().memoryBytes <= maxMemory, `memoryBytes after ${o.path}`)
  }
  // Everything is on disk, but not everything fits in memory.
  const filled = proxy.mirror.store.stats()
  assert.equal(filled.diskEntries, objects.length)
  assert.ok(filled.memoryEntries < objects.length, `memory holds ${filled.memoryEntries} of ${objects.length} entries`)

  for (let round = 0; round < 2; round++) {
    for (const o of objects) {
      assertHit(await get(proxy.url(o.path)), o.body, `${o.path}, round ${round}`)
      const stats = proxy.mirror.store.stats()
      assert.ok(stats.memoryBytes <= maxMemory, `memoryBytes ${stats.memoryBytes} after hit on ${o.path}`)
    }
  }
  for (const o of objects) assert.equal(origin.count(o.path), 1, `${o.path} fetched from the origin once`)
})
