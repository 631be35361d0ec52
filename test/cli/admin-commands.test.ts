// test/cli/admin-commands.test.ts
// The operator's commands from the real binary: `stats` and `purge` against a running mirror,
// `ls` and `verify` on its cache directory; verify names and removes damaged bodies, and after a
// restart those are fetched again intact while the intact ones are still hits.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { truncate } from 'node:fs/promises'
import { cacheFiles, flipMiddle } from '../helpers/cache-files.js'
import { cacheStatus, get } from '../helpers/client.js'
import { makeBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import { runCli, startProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { until } from '../helpers/wait.js'

const CACHEABLE = { 'cache-control': 'max-age=600' }
const FILES = { '/a.bin': makeBody(40_000, 1), '/b.bin': makeBody(50_000, 2), '/c.bin': makeBody(60_000, 3) }

function staticFiles(): Parameters<typeof serveStatic>[0] {
  return Object.fromEntries(Object.entries(FILES).map(([path, body]) => [path, { body, headers: CACHEABLE }]))
}

test('stats and purge reach the running mirror; ls lists the cache directory', async (t) => {
  const origin = await startOrigin(t, serveStatic(staticFiles()))
  const cacheDir = await makeTempDir(t, 'cachemir-cmd-cache-')
  const mirror = await startProxyProcess(t, ['--upstream', `${origin.url}/`, '--cache-dir', cacheDir])
  const server = ['--server', mirror.url('')]
  for (const path of Object.keys(FILES)) await get(mirror.url(path))
  await until(async () => (await cacheFiles(cacheDir)).filter((f) => f.name.endsWith('.body')).length === 3, 'three bodies on disk')
  await get(mirror.url('/a.bin'))

  const stats = await runCli(['stats', ...server])
  assert.equal(stats.code, 0, stats.stderr)
  assert.match(stats.stdout, /^cachemir_requests_total route=\/ cache_status=miss: 3$/m)
  assert.match(stats.stdout, /^cachemir_requests_total route=\/ cache_status=hit: 1$/m)

  const ls = await runCli(['ls', '--cache-dir', cacheDir])
  assert.equal(ls.code, 0, ls.stderr)
  assert.deepEqual(
    ls.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/).pop()),
    ['/a.bin', '/b.bin', '/c.bin'],
  )
  const json = await runCli(['ls', '--cache-dir', cacheDir, '--json', '--prefix', '/b'])
  assert.deepEqual(
    json.stdout
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { url: string; bytes: number }).bytes),
    [50_000],
  )

  const purged = await runCli(['purge', ...server, '/a.bin'])
  assert.equal(purged.code, 0, purged.stderr)
  assert.equal(purged.stdout.trim(), 'removed 1')
  assert.match(cacheStatus(await get(mirror.url('/a.bin'))), /fwd=miss/)
  assert.match(cacheStatus(await get(mirror.url('/b.bin'))), /^cachemir; hit/)
  assert.equal(origin.count('/a.bin'), 2)

  const usage = await runCli(['purge', ...server])
  assert.equal(usage.code, 2)
  assert.equal(usage.stderr.trim().split('\n').length, 1)
  await mirror.kill('SIGTERM')
  const gone = await runCli(['stats', ...server])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /^cachemir: cannot reach the mirror at .*ECONNREFUSED\n$/)
})

test('verify names and removes bodies damaged on disk (exit 1); after a restart they are fetched again, the intact ones still hit', async (t) => {
  const origin = await startOrigin(t, serveStatic(staticFiles()))
  const cacheDir = await makeTempDir(t, 'cachemir-cmd-cache-')
  const args = ['--upstream', `${origin.url}/`, '--cache-dir', cacheDir]
  const first = await startProxyProcess(t, args)
  for (const path of Object.keys(FILES)) await get(first.url(path))
  await until(async () => (await cacheFiles(cacheDir)).filter((f) => f.name.endsWith('.body')).length === 3, 'three bodies on disk')
  await first.kill('SIGTERM')

  const bodies = (await cacheFiles(cacheDir)).filter((f) => f.name.endsWith('.body')).sort((x, y) => x.size - y.size)
  await flipMiddle((bodies[0] as { path: string }).path, 100) // /a.bin: same length, other bytes
  await truncate((bodies[1] as { path: string }).path, 1000) // /b.bin: cut short

  const clean = await runCli(['verify', '--cache-dir', cacheDir])
  assert.equal(clean.code, 1, clean.stderr)
  assert.match(clean.stdout, /^damaged: \/a\.bin \(sha256 mismatch\); removed$/m)
  assert.match(clean.stdout, /^damaged: \/b\.bin \(.*length.*\); removed$/m)
  assert.match(clean.stdout, /^checked 3, damaged 2$/m)
  const again = await runCli(['verify', '--cache-dir', cacheDir])
  assert.equal(again.code, 0)
  assert.match(again.stdout, /^checked 1, damaged 0$/m)

  const second = await startProxyProcess(t, args)
  for (const [path, body] of Object.entries(FILES)) {
    const r = await get(second.url(path))
    assert.equal(sha256(r.body), sha256(body), path)
    assert.match(cacheStatus(r), path === '/c.bin' ? /^cachemir; hit/ : /fwd=miss/, path)
  }
  assert.deepEqual(
    Object.keys(FILES).map((p) => origin.count(p)),
    [2, 2, 1],
  )
})
