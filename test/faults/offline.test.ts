// test/faults/offline.test.ts
// Offline mode (`--offline`, `CACHEMIR_OFFLINE`): a mirror cut off from its upstreams serves
// what its cache holds (fresh as hits, stale marked detail=offline unless the response forbade
// serving it stale), answers 504 for anything else and 503 for other methods, and never contacts
// an upstream. The cache is filled by a normal mirror first, then reopened offline.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { assertBody } from '../helpers/assert.js'
import { cacheStatus, get, type Fetched } from '../helpers/client.js'
import { makeBody, serveStatic, startOrigin, type Origin, type StaticFile } from '../helpers/origin.js'
import { startProxy, startProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { KiB } from '../helpers/sizes.js'
import { WAIT_MS, within } from '../helpers/wait.js'

/** A short plain-text answer that says the mirror is offline. */
function assertOfflineError(r: Fetched, status: number, what: string): void {
  assert.equal(r.status, status, `${what}: status (${r.body.toString()})`)
  assert.equal(r.complete, true, `${what}: complete`)
  assert.match(r.headers['content-type'] ?? '', /^text\/plain/, `${what}: content-type`)
  assert.ok(r.body.length > 0 && r.body.length < 512, `${what}: short body, got ${r.body.length} bytes`)
  assert.match(r.body.toString(), /offline/i, `${what}: the body says offline`)
  assert.doesNotMatch(cacheStatus(r), /hit|stored/, `${what}: cache-status`)
}

/** Fills a fresh cache dir through a normal mirror, checks every file was stored, and stops that mirror. */
async function fillCache(t: TestContext, origin: Origin, paths: readonly string[]): Promise<string> {
  const cacheDir = await makeTempDir(t, 'cachemir-offline-')
  const online = await startProxy(t, { upstream: origin.url, cacheDir })
  for (const path of paths) {
    const r = await within(get(online.url(path)), WAIT_MS, `filling ${path}`)
    assert.equal(r.status, 200, path)
    assert.equal(cacheStatus(r), 'cachemir; fwd=miss; stored', path)
  }
  await online.close()
  return cacheDir
}

test('offline: fresh entries are hits, stale ones are served with detail=offline, forbidden-stale and missing ones get 504, other methods 503, and the upstream is never contacted', async (t) => {
  const files: Record<string, StaticFile> = {
    '/fresh.bin': { body: makeBody(64 * KiB, 1), headers: { 'cache-control': 'max-age=3600' } },
    '/stale.bin': { body: makeBody(64 * KiB, 2), headers: { 'cache-control': 'max-age=1' } },
    '/must-revalidate.bin': { body: makeBody(4 * KiB, 3), headers: { 'cache-control': 'max-age=1, must-revalidate' } },
    '/proxy-revalidate.bin': { body: makeBody(4 * KiB, 4), headers: { 'cache-control': 'max-age=1, proxy-revalidate' } },
    '/s-maxage.bin': { body: makeBody(4 * KiB, 5), headers: { 'cache-control': 's-maxage=1' } },
    '/no-cache.bin': { body: makeBody(4 * KiB, 6), headers: { 'cache-control': 'no-cache' }, etag: '"v1"' },
  }
  const origin = await startOrigin(t, serveStatic(files))
  const cacheDir = await fillCache(t, origin, Object.keys(files))
  origin.reset()

  let clock = Date.now()
  const proxy = await startProxy(t, { upstream: origin.url, cacheDir, offline: true, now: () => clock })

  // Fresh: a plain hit.
  const fresh = await get(proxy.url('/fresh.bin'))
  assertBody(fresh, files['/fresh.bin']?.body as Buffer, 'fresh')
  assert.match(cacheStatus(fresh), /^cachemir; hit; ttl=\d+$/)

  clock += 10_000
  // Stale, nothing forbids serving it: served, and marked as an offline answer.
  const stale = await get(proxy.url('/stale.bin'))
  assertBody(stale, files['/stale.bin']?.body as Buffer, 'stale')
  assert.match(cacheStatus(stale), /^cachemir; hit; ttl=-\d+; detail=offline$/)
  assert.ok(Number(stale.headers['age']) >= 10, `Age: ${stale.headers['age']}`)
  const staleHead = await get(proxy.url('/stale.bin'), { method: 'HEAD' })
  assert.equal(staleHead.status, 200)
  assert.equal(staleHead.body.length, 0)
  assert.match(cacheStatus(staleHead), /detail=offline$/)
  assert.match(cacheStatus(await get(proxy.url('/fresh.bin'))), /^cachemir; hit; ttl=\d+$/, 'fresh after the clock moved')

  // Responses that forbid serving them stale (or unvalidated) are not served.
  for (const path of ['/must-revalidate.bin', '/proxy-revalidate.bin', '/s-maxage.bin', '/no-cache.bin']) {
    const r = await get(proxy.url(path))
    assertOfflineError(r, 504, path)
    assert.equal(cacheStatus(r), 'cachemir; fwd=miss; detail=offline', path)
  }

  // Never cached: 504; other methods: 503.
  const missing = await get(proxy.url('/never.bin'))
  assertOfflineError(missing, 504, 'never cached')
  assert.equal(cacheStatus(missing), 'cachemir; fwd=miss; detail=offline')
  assertOfflineError(await get(proxy.url('/fresh.bin'), { method: 'POST', body: 'x' }), 503, 'POST')
  assertOfflineError(await get(proxy.url('/fresh.bin'), { method: 'DELETE' }), 503, 'DELETE')

  // The POST/DELETE invalidated nothing: the entry is still served.
  assertBody(await get(proxy.url('/fresh.bin')), files['/fresh.bin']?.body as Buffer, 'fresh after POST')

  const health = await get(proxy.url('/_cachemir/health'))
  assert.equal((JSON.parse(health.body.toString()) as { offline: boolean }).offline, true)
  assert.equal(origin.count(), 0, `the upstream was never contacted: ${JSON.stringify(origin.requests.map((r) => `${r.method} ${r.url}`))}`)
})

test('CACHEMIR_OFFLINE=1 alone puts the real binary offline: health says so, cached objects are hits, a miss gets 504, the upstream is never contacted', async (t) => {
  const body = makeBody(32 * KiB, 7)
  const origin = await startOrigin(t, serveStatic({ '/cached.bin': { body, headers: { 'cache-control': 'max-age=3600' } } }))
  const cacheDir = await fillCache(t, origin, ['/cached.bin'])
  origin.reset()

  const proxy = await startProxyProcess(t, ['--upstream', origin.url, '--cache-dir', cacheDir], { CACHEMIR_OFFLINE: '1' })
  const health = await get(proxy.url('/_cachemir/health'))
  assert.equal(health.status, 200)
  assert.equal((JSON.parse(health.body.toString()) as { offline: boolean }).offline, true, health.body.toString())

  const hit = await within(get(proxy.url('/cached.bin')), WAIT_MS, 'the cached object')
  assertBody(hit, body, 'cached object')
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  const miss = await within(get(proxy.url('/never.bin')), WAIT_MS, 'a miss')
  assertOfflineError(miss, 504, 'miss')
  assert.equal(origin.count(), 0, 'the upstream was never contacted')

  assert.equal(await within(proxy.kill('SIGTERM'), WAIT_MS, 'exit after SIGTERM'), 0, proxy.output().slice(-2000))
})
