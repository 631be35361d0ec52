// test/integration/admin-api.test.ts
// The admin API under /_cachemir/: Prometheus metrics and JSON stats that count exactly the
// traffic sent, readiness, and purge (paths, prefix, all) behind the admin token or, without
// one, for loopback clients only.

import { test } from 'node:test'
import type { IncomingMessage } from 'node:http'
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { checkAccess } from '../../src/admin/access.js'
import { cacheStatus, get } from '../helpers/client.js'
import { sendBody, startOrigin, type Origin } from '../helpers/origin.js'
import { startProxy, type Proxy } from '../helpers/proxy.js'
import { waitForFills } from '../helpers/wait.js'

const TOKEN = 'a-test-admin-token-0123456789'

async function startCacheable(t: Parameters<typeof startOrigin>[0]): Promise<Origin> {
  return startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(`body of ${req.url ?? ''}`), { headers: { 'cache-control': 'max-age=600' } }),
  )
}

/** `name{labels} value` lines of a Prometheus text exposition, by `name{labels}`. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line)
    assert.ok(m !== null, `a sample line: ${line}`)
    samples.set(m[1] as string, Number(m[2]))
  }
  return samples
}

async function purge(proxy: Proxy, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const r = await get(proxy.url('/_cachemir/purge'), {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  })
  return { status: r.status, text: r.body.toString() }
}

test('metrics count exactly the requests sent: 5 hits and 3 misses, by route and outcome; stats says the same as JSON', async (t) => {
  const origin = await startCacheable(t)
  const proxy = await startProxy(t, { upstream: origin.url })
  for (const path of ['/a', '/b', '/c']) assert.equal((await get(proxy.url(path))).status, 200)
  await waitForFills(proxy)
  for (const path of ['/a', '/a', '/b', '/c', '/c']) assert.match(cacheStatus(await get(proxy.url(path))), /^cachemir; hit/)
  await get(proxy.url('/_cachemir/health'))

  const res = await get(proxy.url('/_cachemir/metrics'))
  assert.equal(res.status, 200)
  assert.match(res.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/)
  const m = parseExposition(res.body.toString())
  assert.equal(m.get('cachemir_requests_total{route="/",cache_status="hit"}'), 5)
  assert.equal(m.get('cachemir_requests_total{route="/",cache_status="miss"}'), 3)
  assert.equal([...m.keys()].filter((k) => k.startsWith('cachemir_requests_total')).length, 2, 'admin requests are not counted')
  assert.ok((m.get('cachemir_served_bytes_total{source="cache"}') ?? 0) > 5 * 'body of /a'.length)
  assert.ok((m.get('cachemir_served_bytes_total{source="upstream"}') ?? 0) > 3 * 'body of /a'.length)
  assert.equal(m.get('cachemir_cache_entries{tier="disk"}'), 3)
  assert.ok((m.get('cachemir_cache_bytes{tier="disk"}') ?? 0) > 0)
  assert.equal(m.get('cachemir_fills_in_flight'), 0)
  assert.equal(m.get('cachemir_coalesced_requests_total'), 0)
  assert.equal(m.get('cachemir_upstream_errors_total'), 0)
  assert.equal(m.get(`cachemir_upstream_request_duration_seconds_count{upstream="${origin.url}"}`), 3)
  assert.equal(origin.count(), 3)

  const stats = JSON.parse((await get(proxy.url('/_cachemir/stats'))).body.toString()) as Record<
    string,
    { labels: Record<string, string>; value: number }[]
  >
  const hits = stats['cachemir_requests_total']?.find((v) => v.labels['cache_status'] === 'hit')
  assert.equal(hits?.value, 5)
})

test('ready answers 200 once the index is loaded and the cache directory writable, 503 when it is gone', async (t) => {
  const origin = await startCacheable(t)
  const proxy = await startProxy(t, { upstream: origin.url })
  await proxy.mirror.scanned
  const ready = await get(proxy.url('/_cachemir/ready'))
  assert.equal(ready.status, 200)
  assert.deepEqual(JSON.parse(ready.body.toString()), { ready: true, indexLoaded: true, cacheDirWritable: true })
  await rm(proxy.cacheDir, { recursive: true, force: true })
  const gone = await get(proxy.url('/_cachemir/ready'))
  assert.equal(gone.status, 503)
  assert.equal((JSON.parse(gone.body.toString()) as { cacheDirWritable: boolean }).cacheDirWritable, false)
})

test('purge by paths, by prefix and all: answers how many were removed, and the next request is a miss', async (t) => {
  const origin = await startCacheable(t)
  const proxy = await startProxy(t, { upstream: origin.url })
  for (const path of ['/p/a', '/p/b', '/q/c', '/q/d']) await get(proxy.url(path))
  await waitForFills(proxy)

  assert.deepEqual(await purge(proxy, { paths: ['/p/a'] }), { status: 200, text: '{"removed":1}' })
  assert.match(cacheStatus(await get(proxy.url('/p/a'))), /fwd=miss/)
  assert.match(cacheStatus(await get(proxy.url('/p/b'))), /^cachemir; hit/)
  await waitForFills(proxy)

  assert.deepEqual(await purge(proxy, { prefix: '/p/' }), { status: 200, text: '{"removed":2}' })
  assert.match(cacheStatus(await get(proxy.url('/p/b'))), /fwd=miss/)
  assert.match(cacheStatus(await get(proxy.url('/q/c'))), /^cachemir; hit/)
  await waitForFills(proxy)

  assert.deepEqual(await purge(proxy, { all: true }), { status: 200, text: '{"removed":3}' }, '/p/b (fetched again), /q/c and /q/d')
  assert.match(cacheStatus(await get(proxy.url('/q/d'))), /fwd=miss/)
  assert.equal(origin.count('/q/d'), 2)
})

test('a purge request that is not one gets 400, another method 405, and nothing is removed', async (t) => {
  const origin = await startCacheable(t)
  const proxy = await startProxy(t, { upstream: origin.url })
  await get(proxy.url('/x'))
  await waitForFills(proxy)
  for (const body of [
    {},
    { paths: [] },
    { prefix: 'no-slash' },
    { all: false },
    { paths: ['/x'], all: true },
    { paths: ['/a/%2e%2e/b'] },
  ]) {
    assert.equal((await purge(proxy, body)).status, 400, JSON.stringify(body))
  }
  const bad = await get(proxy.url('/_cachemir/purge'), { method: 'POST', body: '{not json' })
  assert.equal(bad.status, 400)
  const wrongMethod = await get(proxy.url('/_cachemir/purge'))
  assert.equal(wrongMethod.status, 405)
  assert.equal(wrongMethod.headers['allow'], 'POST')
  assert.match(cacheStatus(await get(proxy.url('/x'))), /^cachemir; hit/)
})

test('with an admin token, purge needs it: none gets 401, a wrong one 403, and neither removes anything', async (t) => {
  const origin = await startCacheable(t)
  const proxy = await startProxy(t, { upstream: origin.url, adminToken: TOKEN })
  await get(proxy.url('/x'))
  await waitForFills(proxy)

  const none = await get(proxy.url('/_cachemir/purge'), { method: 'POST', body: '{"all":true}' })
  assert.equal(none.status, 401)
  assert.equal(none.headers['www-authenticate'], 'Bearer')
  assert.equal((await purge(proxy, { all: true }, { authorization: `Bearer ${TOKEN}x` })).status, 403)
  assert.match(cacheStatus(await get(proxy.url('/x'))), /^cachemir; hit/)
  assert.deepEqual(await purge(proxy, { all: true }, { authorization: `Bearer ${TOKEN}` }), { status: 200, text: '{"removed":1}' })
  assert.equal(
    proxy.logs.some((l) => JSON.stringify(l).includes(TOKEN)),
    false,
    'the token never appears in a log line',
  )
})

test('without a token only loopback clients may change state', () => {
  const req = (remoteAddress: string, authorization?: string): IncomingMessage =>
    ({ socket: { remoteAddress }, headers: authorization === undefined ? {} : { authorization } }) as unknown as IncomingMessage
  assert.equal(checkAccess(req('127.0.0.1'), undefined), 'allowed')
  assert.equal(checkAccess(req('::1'), undefined), 'allowed')
  assert.equal(checkAccess(req('::ffff:127.0.0.1'), undefined), 'allowed')
  assert.equal(checkAccess(req('10.1.2.3'), undefined), 'forbidden')
  assert.equal(checkAccess(req('10.1.2.3', `Bearer ${TOKEN}`), TOKEN), 'allowed')
  assert.equal(checkAccess(req('127.0.0.1'), TOKEN), 'unauthenticated')
  assert.equal(checkAccess(req('127.0.0.1', 'Bearer nope'), TOKEN), 'forbidden')
})
