// test/cli/admin-commands.test.ts
// The operator's commands from the real binary: `stats` and `purge` against a running mirror,
// `ls` and `verify` on its cache directory; verify names and removes damaged bodies, and after a
// restart those are fetched again intact while the intact ones are still hits.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cacheFiles, flipMiddle } from '../helpers/cache-files.js'
import { cacheStatus, get } from '../helpers/client.js'
import { makeBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import { CLI, runCli, startProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { until } from '../helpers/wait.js'

const CACHEABLE = { 'cache-control': 'max-age=600' }
const FILES = { '/a.bin': makeBody(40_000, 1), '/b.bin': makeBody(50_000, 2), '/c.bin': makeBody(60_000, 3) }

/** Waits until `n` stored bodies are in the cache directory (fills commit after the response). */
async function bodiesOnDisk(cacheDir: string, n: number): Promise<void> {
  await until(async () => (await cacheFiles(cacheDir)).filter((f) => f.name.endsWith('.body')).length === n, `${n} bodies on disk`)
}

function staticFiles(): Parameters<typeof serveStatic>[0] {
  return Object.fromEntries(Object.entries(FILES).map(([path, body]) => [path, { body, headers: CACHEABLE }]))
}

test('stats and purge reach the running mirror; ls lists the cache directory', async (t) => {
  const origin = await startOrigin(t, serveStatic(staticFiles()))
  const cacheDir = await makeTempDir(t, 'cachemir-cmd-cache-')
  const mirror = await startProxyProcess(t, ['--upstream', `${origin.url}/`, '--cache-dir', cacheDir])
  const server = ['--server', mirror.url('')]
  for (const path of Object.keys(FILES)) await get(mirror.url(path))
  await bodiesOnDisk(cacheDir, 3)
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
  await bodiesOnDisk(cacheDir, 3)
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

/** `cachemir warm ARGS` with `input` on stdin. */
async function warmWithStdin(args: string[], input: string): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, [CLI, 'warm', ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { PATH: process.env.PATH ?? '' },
  })
  let stdout = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stdin.end(input)
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [code] = (await once(child, 'exit')) as [number | null]
  clearTimeout(timer)
  return { code, stdout }
}

test('warm from arguments, a file, stdin and a package-lock.json: the paths are then hits, with no further origin request', async (t) => {
  const files = Object.fromEntries(
    ['/w1', '/w2', '/w3', '/w4', '/pkg/-/pkg-1.0.0.tgz'].map((p) => [p, { body: makeBody(10_000, p.length), headers: CACHEABLE }]),
  )
  const origin = await startOrigin(t, serveStatic(files))
  const dir = await makeTempDir(t, 'cachemir-warm-')
  const mirror = await startProxyProcess(t, ['--upstream', `${origin.url}/`, '--cache-dir', join(dir, 'cache')])
  const server = ['--server', mirror.url('')]

  const list = join(dir, 'list.txt')
  await writeFile(list, '# warm these\n/w2\n\n/w3\n')
  const lock = join(dir, 'package-lock.json')
  await writeFile(
    lock,
    JSON.stringify({ lockfileVersion: 3, packages: { '': {}, 'node_modules/pkg': { resolved: `${origin.url}/pkg/-/pkg-1.0.0.tgz` } } }),
  )

  const fromArgs = await runCli(['warm', ...server, '/w1', '--from', list])
  assert.equal(fromArgs.code, 0, fromArgs.stdout + fromArgs.stderr)
  assert.match(fromArgs.stdout, /^warmed 3, failed 0, 30000 bytes$/m)
  const fromStdin = await warmWithStdin([...server, '--from', '-'], '/w4\n')
  assert.equal(fromStdin.code, 0, fromStdin.stdout)
  assert.match(fromStdin.stdout, /^warmed 1, failed 0/m)
  // The lockfile's URL lies under the --upstream route's upstream: mapped onto the mirror.
  const fromLock = await runCli(['warm', ...server, '--from', lock, '--upstream', `${origin.url}/`])
  assert.equal(fromLock.code, 0, fromLock.stderr)
  assert.match(fromLock.stdout, /^warmed 1, failed 0/m)

  for (const path of Object.keys(files)) assert.match(cacheStatus(await get(mirror.url(path))), /^cachemir; hit/, path)
  assert.deepEqual(
    Object.keys(files).map((p) => origin.count(p)),
    [1, 1, 1, 1, 1],
  )

  const partly = await runCli(['warm', ...server, '/w1', '/missing', 'ftp://elsewhere/x'])
  assert.equal(partly.code, 1)
  assert.match(partly.stdout, /^failed: \/missing \(HTTP 404\)$/m)
  assert.match(partly.stdout, /^failed: ftp:\/\/elsewhere\/x \(neither a path/m)
  assert.match(partly.stdout, /^warmed 1, failed 2/m)
})

test('sync revalidates every entry: unchanged (304), updated (new bytes served), gone (404: removed), counted', async (t) => {
  const versions = new Map([
    ['/s1', 'one v1'],
    ['/s2', 'two v1'],
    ['/s3', 'three v1'],
    ['/s4', 'four, no validators'],
  ])
  const origin = await startOrigin(t, (req, res) => {
    const body = versions.get(req.url ?? '')
    if (body === undefined) return void res.writeHead(404, { 'content-length': '0' }).end()
    const etag = `"${sha256(body).slice(0, 8)}"`
    const validators = req.url === '/s4' ? {} : { etag }
    if (req.url !== '/s4' && req.headers['if-none-match'] === etag)
      return void res.writeHead(304, { etag, 'cache-control': 'max-age=600' }).end()
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': Buffer.byteLength(body), ...validators }).end(body)
  })
  const cacheDir = await makeTempDir(t, 'cachemir-sync-')
  const mirror = await startProxyProcess(t, ['--upstream', `${origin.url}/`, '--cache-dir', cacheDir])
  for (const path of versions.keys()) await get(mirror.url(path))
  await bodiesOnDisk(cacheDir, 4)

  versions.set('/s2', 'two v2')
  versions.delete('/s3')
  const sync = await runCli(['sync', '--server', mirror.url('')])
  assert.equal(sync.code, 0, sync.stderr)
  assert.equal(sync.stdout.trim(), 'unchanged 2, updated 1, gone 1, failed 0, skipped 0')

  const two = await get(mirror.url('/s2'))
  assert.equal(two.body.toString(), 'two v2')
  assert.match(cacheStatus(two), /^cachemir; hit/)
  assert.match(cacheStatus(await get(mirror.url('/s1'))), /^cachemir; hit/)
  const three = await get(mirror.url('/s3'))
  assert.equal(three.status, 404)
  assert.doesNotMatch(cacheStatus(three), /hit/)
})

test('--sync-every 1s: a changed object is fetched again in the background, with no client request, and served new as a hit', async (t) => {
  let version = 'v1'
  const origin = await startOrigin(t, (req, res) => {
    const body = `${req.url ?? ''} ${version}`
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': Buffer.byteLength(body), etag: `"${version}"` }).end(body)
  })
  const cacheDir = await makeTempDir(t, 'cachemir-sync-every-')
  const mirror = await startProxyProcess(t, ['--upstream', `${origin.url}/`, '--cache-dir', cacheDir, '--sync-every', '1s'])
  assert.equal((await get(mirror.url('/obj'))).body.toString(), '/obj v1')
  version = 'v2'
  // No client asks: the mirror's own sync reaches the origin again (a conditional request, 200 with v2).
  await until(
    () => origin.requests.some((r) => r.url === '/obj' && r.headers['if-none-match'] === '"v1"'),
    'a background revalidation',
    15_000,
  )
  await until(async () => (await get(mirror.url('/obj'))).body.toString() === '/obj v2', 'the new version served', 15_000)
  const after = await get(mirror.url('/obj'))
  assert.equal(after.body.toString(), '/obj v2')
  assert.match(cacheStatus(after), /^cachemir; hit/)
})

test("purge --offline removes entries from a stopped server's cache directory; after a restart they are misses, the rest hits", async (t) => {
  const origin = await startOrigin(t, serveStatic(staticFiles()))
  const cacheDir = await makeTempDir(t, 'cachemir-offline-purge-')
  const args = ['--upstream', `${origin.url}/`, '--cache-dir', cacheDir]
  const first = await startProxyProcess(t, args)
  for (const path of Object.keys(FILES)) await get(first.url(path))
  await bodiesOnDisk(cacheDir, 3)
  await first.kill('SIGTERM')

  const one = await runCli(['purge', '--offline', '--cache-dir', cacheDir, '/a.bin'])
  assert.equal(one.code, 0, one.stderr)
  assert.equal(one.stdout.trim(), 'removed 1')
  const prefix = await runCli(['purge', '--offline', '--cache-dir', cacheDir, '--prefix', '/b'])
  assert.equal(prefix.stdout.trim(), 'removed 1')

  const second = await startProxyProcess(t, args)
  assert.match(cacheStatus(await get(second.url('/a.bin'))), /fwd=miss/)
  assert.match(cacheStatus(await get(second.url('/b.bin'))), /fwd=miss/)
  assert.match(cacheStatus(await get(second.url('/c.bin'))), /^cachemir; hit/)
})
