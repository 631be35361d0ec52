import assert from 'node:assert/strict'
import { stat, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { test } from 'node:test'
import { get, getFirstBytes, rawRequest, slowGet } from '../helpers/client.js'
import { isNotModified, makeBody, sendBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import type { StaticFile } from '../helpers/origin.js'
import { makeTempDir } from '../helpers/temp-dir.js'

test('startOrigin and get round-trip a body and count the requests', async (t) => {
  const origin = await startOrigin(t, (req, res) => {
    res.setHeader('x-path', req.url ?? '')
    res.setHeader('set-cookie', ['a=1', 'b=2'])
    res.end(`hello ${req.url}`)
  })

  const first = await get(`${origin.url}/a`)
  await get(`${origin.url}/b?x=1`, { headers: { 'x-test': 'yes' } })
  await get(`${origin.url}/a`)

  assert.equal(first.status, 200)
  assert.equal(first.body.toString(), 'hello /a')
  assert.equal(first.complete, true)
  assert.equal(first.headers['x-path'], '/a')
  assert.equal(first.headers['set-cookie'], 'a=1, b=2')
  assert.deepEqual(first.rawHeaders.filter((_, i) => i % 2 === 0 && first.rawHeaders[i] === 'set-cookie').length, 2)
  assert.equal(origin.count(), 3)
  assert.equal(origin.count('/a'), 2)
  assert.equal(origin.count('/b?x=1'), 1)
  assert.equal(origin.requests[1]?.headers['x-test'], 'yes')
  origin.reset()
  assert.equal(origin.count(), 0)
})

test('a throwing handler becomes a 500 and close() is idempotent', async (t) => {
  const origin = await startOrigin(t, () => {
    throw new Error('boom')
  })
  const res = await get(`${origin.url}/x`)
  assert.equal(res.status, 500)
  assert.equal(origin.count('/x'), 1)
  await origin.close()
  await origin.close()
  await assert.rejects(get(`${origin.url}/x`))
})

test('makeBody is deterministic and fast for 64 MiB', () => {
  const startedAt = performance.now()
  const big = makeBody(64 * 1024 * 1024)
  assert.equal(big.length, 64 * 1024 * 1024)
  assert.ok(performance.now() - startedAt < 2000)
  assert.equal(sha256(makeBody(1000, 7)), sha256(makeBody(1000, 7)))
  assert.notEqual(sha256(makeBody(1000, 7)), sha256(makeBody(1000, 8)))
  assert.equal(makeBody(1001).length, 1001)
})

test('abortAfterBytes cuts the body short and the client reports complete=false', async (t) => {
  const body = makeBody(1024 * 1024)
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, body, { abortAfterBytes: 100_000 }))

  const res = await get(`${origin.url}/big`)

  assert.equal(res.status, 200)
  assert.equal(res.headers['content-length'], String(body.length))
  assert.equal(res.complete, false)
  assert.ok(res.error instanceof Error)
  assert.equal(res.body.length, 100_000)
  assert.ok(res.body.equals(body.subarray(0, 100_000)))
})

test('contentLength=false sends a chunked body', async (t) => {
  const body = makeBody(300_000, 3)
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, body, { contentLength: false }))
  const res = await get(origin.url + '/')
  assert.equal(res.headers['transfer-encoding'], 'chunked')
  assert.equal(res.headers['content-length'], undefined)
  assert.equal(sha256(res.body), sha256(body))
})

test('HEAD gets the full Content-Length and no body', async (t) => {
  const body = makeBody(5000)
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, body))
  const res = await get(origin.url + '/', { method: 'HEAD' })
  assert.equal(res.status, 200)
  assert.equal(res.headers['content-length'], '5000')
  assert.equal(res.body.length, 0)
  assert.equal(res.complete, true)
})

test('bytesPerSecond throttles a 200 KiB body at 400 KiB/s to about half a second', async (t) => {
  const body = makeBody(200 * 1024)
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, body, { bytesPerSecond: 400 * 1024 }))

  const startedAt = performance.now()
  const res = await get(`${origin.url}/slow`)
  const elapsedMs = performance.now() - startedAt

  assert.equal(res.complete, true)
  assert.equal(sha256(res.body), sha256(body))
  assert.ok(elapsedMs >= 400, `took ${elapsedMs} ms`)
  assert.ok(elapsedMs < 2000, `took ${elapsedMs} ms`)
})

test('isNotModified compares ETags weakly and falls back to If-Modified-Since', () => {
  const req = (headers: Record<string, string>): Pick<IncomingMessage, 'headers'> => ({ headers })
  const etag = '"v1"'
  const lastModified = 'Tue, 01 Jul 2025 10:00:00 GMT'

  assert.equal(isNotModified(req({ 'if-none-match': '"v1"' }), { etag }), true)
  assert.equal(isNotModified(req({ 'if-none-match': 'W/"v1"' }), { etag }), true)
  assert.equal(isNotModified(req({ 'if-none-match': '"v1"' }), { etag: 'W/"v1"' }), true)
  assert.equal(isNotModified(req({ 'if-none-match': '"a,b", "v0" ,"v1"' }), { etag }), true)
  assert.equal(isNotModified(req({ 'if-none-match': '"a,b", "v0"' }), { etag }), false)
  assert.equal(isNotModified(req({ 'if-none-match': '*' }), { etag }), true)
  assert.equal(isNotModified(req({ 'if-none-match': '"v1"' }), {}), false)
  // If-None-Match present: If-Modified-Since is ignored.
  assert.equal(isNotModified(req({ 'if-none-match': '"v0"', 'if-modified-since': lastModified }), { etag, lastModified }), false)

  assert.equal(isNotModified(req({ 'if-modified-since': lastModified }), { lastModified }), true)
  assert.equal(isNotModified(req({ 'if-modified-since': 'Tue, 01 Jul 2025 11:00:00 GMT' }), { lastModified }), true)
  assert.equal(isNotModified(req({ 'if-modified-since': 'Tue, 01 Jul 2025 09:59:59 GMT' }), { lastModified }), false)
  assert.equal(isNotModified(req({ 'if-modified-since': 'not a date' }), { lastModified }), false)
  assert.equal(isNotModified(req({}), { etag, lastModified }), false)
})

test('serveStatic serves 200, 304 on a matching If-None-Match, 404, and sees later changes', async (t) => {
  const files: Record<string, StaticFile> = {
    '/a': { body: 'alpha', etag: '"a1"', headers: { 'cache-control': 'max-age=60' } },
  }
  const origin = await startOrigin(t, serveStatic(files))

  const ok = await get(`${origin.url}/a`)
  const notModified = await get(`${origin.url}/a`, { headers: { 'if-none-match': '"a1"' } })
  const missing = await get(`${origin.url}/nope`)
  files['/a'] = { body: 'alpha-2', etag: '"a2"' }
  const changed = await get(`${origin.url}/a`, { headers: { 'if-none-match': '"a1"' } })

  assert.equal(ok.status, 200)
  assert.equal(ok.body.toString(), 'alpha')
  assert.equal(ok.headers['etag'], '"a1"')
  assert.equal(ok.headers['cache-control'], 'max-age=60')
  assert.equal(notModified.status, 304)
  assert.equal(notModified.body.length, 0)
  assert.equal(notModified.headers['etag'], '"a1"')
  assert.equal(notModified.headers['cache-control'], 'max-age=60')
  assert.equal(missing.status, 404)
  assert.equal(changed.status, 200)
  assert.equal(changed.body.toString(), 'alpha-2')
  assert.equal(origin.count('/a'), 3)
})

test('getFirstBytes resolves before a throttled body has finished', async (t) => {
  const body = makeBody(256 * 1024)
  let finishedAt = 0
  const origin = await startOrigin(t, async (req, res) => {
    await sendBody(req, res, body, { bytesPerSecond: 256 * 1024 })
    finishedAt = performance.now()
  })

  const startedAt = performance.now()
  const started = await getFirstBytes(`${origin.url}/stream`, 1024)

  assert.equal(started.status, 200)
  assert.ok(started.first.length >= 1024)
  assert.ok(started.msToFirstByte < 500, `first byte after ${started.msToFirstByte} ms`)
  assert.equal(finishedAt, 0)
  const whole = await started.rest()
  const totalMs = performance.now() - startedAt
  assert.ok(totalMs >= 900, `whole body after ${totalMs} ms`)
  assert.equal(whole.complete, true)
  assert.equal(sha256(whole.body), sha256(body))
})

test('getFirstBytes abort() drops the connection and the origin sees it close', async (t) => {
  const body = makeBody(4 * 1024 * 1024)
  let closedAt = 0
  const origin = await startOrigin(t, async (req, res) => {
    res.once('close', () => {
      closedAt = performance.now()
    })
    await sendBody(req, res, body, { bytesPerSecond: 1024 * 1024 })
  })
  const started = await getFirstBytes(`${origin.url}/big`, 10)
  await started.abort()
  const whole = await started.rest()
  await new Promise((resolve) => setTimeout(resolve, 100))

  assert.equal(whole.complete, false)
  assert.ok(closedAt > 0)
})

test('stallAfterBytes stops writing and the client times out with complete=false', async (t) => {
  const body = makeBody(100_000)
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, body, { stallAfterBytes: 1000 }))
  const res = await get(`${origin.url}/stall`, { timeoutMs: 300 })
  assert.equal(res.complete, false)
  assert.equal(res.body.length, 1000)
})

test('slowGet reads at roughly the given rate', async (t) => {
  const body = makeBody(100 * 1024)
  const origin = await startOrigin(t, (req, res) => sendBody(req, res, body))
  const startedAt = performance.now()
  const res = await slowGet(`${origin.url}/x`, 200 * 1024)
  const elapsedMs = performance.now() - startedAt
  assert.equal(res.complete, true)
  assert.equal(sha256(res.body), sha256(body))
  assert.ok(elapsedMs >= 450, `took ${elapsedMs} ms`)
})

test('rawRequest returns the raw response bytes', async (t) => {
  const origin = await startOrigin(t, (_req, res) => {
    res.end('ok')
  })
  const text = await rawRequest(origin.port, 'GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  assert.match(text, /\r\n\r\nok$/)
  const bad = await rawRequest(origin.port, 'NONSENSE\r\n\r\n')
  assert.match(bad, /^HTTP\/1\.1 400 /)
  assert.equal(origin.count('/raw'), 1)
})

test('makeTempDir gives each test a directory that is removed afterwards', async (t) => {
  let dir = ''
  await t.test('inner', async (t2) => {
    dir = await makeTempDir(t2)
    await writeFile(join(dir, 'f'), 'x')
    assert.ok((await stat(dir)).isDirectory())
  })
  await assert.rejects(stat(dir), { code: 'ENOENT' })
})
