// test/cli/workers.test.ts
// `serve --workers N`: several processes share the port and the disk cache, and still make one
// upstream request per object; an invalidation in one worker reaches the others; a dead worker
// is replaced; SIGTERM stops the group cleanly.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { get, rawRequest } from '../helpers/client.js'
import { makeBody, serveStatic, sha256, startOrigin, type StaticFile } from '../helpers/origin.js'
import { runCli, startProxyProcess, type ProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { until } from '../helpers/wait.js'

const HOUR = { 'cache-control': 'max-age=3600' }

/** The pids that logged a request-completed line for `url` (which workers served it). */
function servingPids(proxy: ProxyProcess, url: string): Set<number> {
  const pids = new Set<number>()
  for (const line of proxy.output().split('\n')) {
    if (!line.includes('"request completed"') || !line.includes(`"url":"${url}"`)) continue
    pids.add((JSON.parse(line) as { pid: number }).pid)
  }
  return pids
}

/** The primary's private socket directory (from its start line) and the sockets in it. */
async function groupSockets(proxy: ProxyProcess): Promise<string[] | 'gone'> {
  const m = /"peerDir":"([^"]+)"/.exec(proxy.output())
  assert.ok(m !== null, 'the primary names its socket directory')
  return readdir(m[1] as string).catch(() => 'gone' as const)
}

test('two workers: 24 concurrent misses for one object make exactly one upstream request', async (t) => {
  const body = makeBody(3 * 1024 * 1024, 7)
  // Slow enough that every client arrives while the one fill runs.
  const files: Record<string, StaticFile> = { '/big.bin': { body, headers: HOUR, send: { bytesPerSecond: 6 * 1024 * 1024 } } }
  const origin = await startOrigin(t, serveStatic(files))
  const dir = await makeTempDir(t)
  const proxy = await startProxyProcess(t, ['--workers', '2', '--upstream', origin.url, '--cache-dir', dir])

  const results = await Promise.all(Array.from({ length: 24 }, () => get(proxy.url('/big.bin'))))
  for (const r of results) {
    assert.equal(r.status, 200)
    assert.equal(r.complete, true)
    assert.equal(sha256(r.body), sha256(body))
  }
  assert.equal(origin.count('/big.bin'), 1, 'one upstream request across both workers')
  // The test only proves cross-worker coalescing if both workers had clients.
  await until(() => servingPids(proxy, '/big.bin').size >= 2, 'request lines from both workers')
  // Hits afterwards, from whichever worker: still one upstream request.
  const again = await Promise.all(Array.from({ length: 8 }, () => get(proxy.url('/big.bin'))))
  for (const r of again) {
    assert.equal(sha256(r.body), sha256(body))
    assert.match(r.headers['cache-status'] ?? '', /hit/)
  }
  assert.equal(origin.count('/big.bin'), 1)
  assert.equal(await proxy.kill('SIGTERM'), 0)
})

test('two workers: a DELETE through one worker invalidates the URL in both', async (t) => {
  const files: Record<string, StaticFile> = { '/doc': { body: 'version 1', headers: HOUR } }
  const origin = await startOrigin(t, async (req, res) => {
    if (req.method === 'DELETE') {
      files['/doc'] = { body: 'version 2', headers: HOUR }
      res.writeHead(204)
      res.end()
      return
    }
    await serveStatic(files)(req, res)
  })
  const dir = await makeTempDir(t)
  const proxy = await startProxyProcess(t, ['--workers', '2', '--upstream', origin.url, '--cache-dir', dir])

  // Cached, and in both workers' memory tiers (connections alternate between the workers).
  for (let i = 0; i < 6; i++) assert.equal((await get(proxy.url('/doc'))).body.toString(), 'version 1')
  assert.equal(origin.count('/doc'), 1)
  assert.equal((await get(proxy.url('/doc'), { method: 'DELETE' })).status, 204)
  const after = await Promise.all(Array.from({ length: 8 }, () => get(proxy.url('/doc'))))
  assert.deepEqual(
    after.map((r) => r.body.toString()),
    Array(8).fill('version 2'),
  )
  assert.equal(origin.requests.filter((r) => r.method === 'GET' && r.url === '/doc').length, 2, 'one refill after the DELETE')
  assert.equal(await proxy.kill('SIGTERM'), 0)
})

test('two workers: GETs that carry a body never disturb the requests handed between workers', async (t) => {
  // Any path: 200 with the path as the body.
  const origin = await startOrigin(t, (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' })
    res.end(req.url)
  })
  const dir = await makeTempDir(t)
  const proxy = await startProxyProcess(t, ['--workers', '2', '--upstream', origin.url, '--cache-dir', dir])

  // GETs with a 40-byte body: about half of them reach the worker that does not own the URL.
  const odd = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      rawRequest(proxy.port, `GET /odd${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nConnection: close\r\n\r\n${'b'.repeat(40)}`),
    ),
  )
  for (const answer of odd) assert.match(answer, /^HTTP\/1\.1 200 /)
  // Then ordinary misses from other clients, many handed over on the connections between workers.
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => get(proxy.url(`/plain${i}`))))
  assert.deepEqual(
    results.map((r) => `${r.status} ${r.body.toString()}`),
    Array.from({ length: 40 }, (_, i) => `200 /plain${i}`),
  )
  assert.equal(await proxy.kill('SIGTERM'), 0)
})

test('a killed worker is replaced and the group keeps serving; SIGTERM leaves no sockets', async (t) => {
  const files: Record<string, StaticFile> = {}
  for (let i = 0; i < 8; i++) files[`/f${i}`] = { body: makeBody(20_000, i), headers: HOUR }
  const origin = await startOrigin(t, serveStatic(files))
  const dir = await makeTempDir(t)
  const proxy = await startProxyProcess(t, ['--workers', '2', '--upstream', origin.url, '--cache-dir', dir])
  const primary = proxy.child.pid as number
  assert.deepEqual(await groupSockets(proxy), ['0.sock', '1.sock'], 'one peer socket per worker')

  const health = JSON.parse((await get(proxy.url('/_cachemir/health'))).body.toString()) as {
    pid: number
    worker: { index: number; count: number }
  }
  assert.equal(health.worker.count, 2)
  assert.notEqual(health.pid, primary)
  process.kill(health.pid, 'SIGKILL')
  await until(() => proxy.output().includes('worker died; starting a new one'), 'the primary to notice')
  await until(
    () =>
      proxy
        .output()
        .split('\n')
        .filter((l) => l.includes('"worker listening"')).length >= 3,
    'a new worker',
  )

  for (const [path, file] of Object.entries(files)) {
    const r = await get(proxy.url(path))
    assert.equal(r.status, 200)
    assert.equal(sha256(r.body), sha256(file.body as Buffer))
  }
  assert.equal(await proxy.kill('SIGTERM'), 0)
  assert.equal(await groupSockets(proxy), 'gone', 'the socket directory is removed')
})

test('--workers must be 1-64 or auto: a bad value is one line and exit 2', async () => {
  for (const bad of ['0', '65', 'two', '1.5']) {
    const { code, stderr } = await runCli(['serve', '--upstream', 'http://127.0.0.1:9/', '--workers', bad, '--listen', '127.0.0.1:0'])
    assert.equal(code, 2, bad)
    assert.match(stderr.trim(), /^cachemir: --workers: expected a number of workers from 1 to 64 or "auto", got "/, bad)
    assert.equal(stderr.trim().split('\n').length, 1)
  }
  const env = await runCli(['serve', '--upstream', 'http://127.0.0.1:9/', '--listen', '127.0.0.1:0'], { CACHEMIR_WORKERS: 'many' })
  assert.equal(env.code, 2)
  assert.match(env.stderr, /CACHEMIR_WORKERS: expected a number of workers/)
})
