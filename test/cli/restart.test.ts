// test/cli/restart.test.ts
// The disk cache across processes: a clean restart reuses entries, a kill -9 mid-fill leaves
// nothing that is served as a hit, a damaged body is refetched, and a large cache does not
// hold up start-up.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { stat, truncate } from 'node:fs/promises'
import { get, getFirstBytes } from '../helpers/client.js'
import type { FirstBytes } from '../helpers/client.js'
import { makeBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import type { StaticFile } from '../helpers/origin.js'
import { getHealth, startProxyProcess } from '../helpers/proxy.js'
import type { ProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { cacheFiles, tempFilesIn } from '../helpers/cache-files.js'
import type { CacheFile } from '../helpers/cache-files.js'
import { MiB } from '../helpers/sizes.js'

const FRESH_FOR_AN_HOUR = { 'cache-control': 'max-age=3600' }

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Polls check every 50 ms until it returns a value other than undefined; fails after timeoutMs. */
async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

interface Health {
  store: { diskEntries: number; indexComplete: boolean; memoryBytes: number }
}

/** Waits for the start-up scan to finish, as reported by /_cachemir/health. */
async function indexReady(proxy: ProxyProcess): Promise<Health> {
  return waitUntil('store.indexComplete', async () => {
    const h = await getHealth<Health>(proxy)
    return h.store.indexComplete ? h : undefined
  })
}

/** Waits until the store reports `n` entries on disk (a fill commits just after its response ends). */
async function diskEntries(proxy: ProxyProcess, n: number): Promise<Health> {
  return waitUntil(`store.diskEntries === ${n}`, async () => {
    const h = await getHealth<Health>(proxy)
    return h.store.diskEntries === n ? h : undefined
  })
}

async function stop(proxy: ProxyProcess): Promise<void> {
  const code = await proxy.kill('SIGTERM')
  assert.equal(code, 0, `clean exit after SIGTERM:\n${proxy.output()}`)
}

const REUSE_CASES: readonly { name: string; size: number; args: string[] }[] = [
  { name: 'a small object', size: 10_000, args: [] },
  // A 16 MiB memory budget keeps bodies over 1 MiB out of memory: this one streams from disk.
  { name: 'a 5 MiB object (disk tier)', size: 5 * MiB, args: ['--max-memory', '16MiB'] },
]

for (const { name, size, args } of REUSE_CASES) {
  test(`after a clean restart, ${name} stored by the first process is a hit in the second`, async (t) => {
    const body = makeBody(size, 21)
    const origin = await startOrigin(t, serveStatic({ '/obj.bin': { body, headers: FRESH_FOR_AN_HOUR } }))
    const cacheDir = await makeTempDir(t, 'cachemir-restart-')
    const proxyArgs = ['--upstream', origin.url, '--cache-dir', cacheDir, ...args]

    const a = await startProxyProcess(t, proxyArgs)
    const first = await get(a.url('/obj.bin'))
    await diskEntries(a, 1)
    await stop(a)
    const b = await startProxyProcess(t, proxyArgs)
    const second = await get(b.url('/obj.bin'))

    assert.equal(first.status, 200)
    assert.equal(sha256(first.body), sha256(body))
    assert.equal(second.status, 200)
    assert.equal(second.complete, true)
    assert.match(second.headers['cache-status'] ?? '', /^cachemir; hit/)
    assert.equal(sha256(second.body), sha256(body))
    assert.equal(origin.count('/obj.bin'), 1)
  })
}

test('SIGTERM right after responses were delivered keeps every entry they stored', async (t) => {
  const count = 200
  const paths = Array.from({ length: count }, (_, i) => `/just-served/${i}.bin`)
  const bodies = new Map(paths.map((path, i) => [path, makeBody(16 * 1024, 100 + i)]))
  // The origin sends half of each body, then finishes all of them together once every request
  // has arrived, so all the fills end (and commit) at the same moment.
  let arrived = 0
  let release: () => void = () => {}
  const together = new Promise<void>((resolve) => (release = resolve))
  const safety = setTimeout(release, 20_000)
  t.after(() => {
    clearTimeout(safety)
    release()
  })
  const origin = await startOrigin(t, async (req, res) => {
    const body = bodies.get(req.url ?? '')
    if (body === undefined) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { ...FRESH_FOR_AN_HOUR, 'content-length': body.length })
    res.write(body.subarray(0, body.length / 2))
    if (++arrived === count) release()
    await together
    res.end(body.subarray(body.length / 2))
  })
  const cacheDir = await makeTempDir(t, 'cachemir-restart-')
  const proxyArgs = ['--upstream', origin.url, '--cache-dir', cacheDir]

  const a = await startProxyProcess(t, proxyArgs)
  const served = await Promise.all(paths.map((path) => get(a.url(path))))
  // No wait: a clean stop must finish writing what the responses said was stored.
  await stop(a)
  const onDisk = await cacheFiles(cacheDir)
  const b = await startProxyProcess(t, proxyArgs)
  const again = await Promise.all(paths.map((path) => get(b.url(path))))

  const lost: string[] = []
  paths.forEach((path, i) => {
    const body = bodies.get(path) as Buffer
    assert.equal(sha256(served[i]?.body ?? ''), sha256(body), path)
    assert.match(served[i]?.headers['cache-status'] ?? '', /; stored/, `${path} was stored by the first process`)
    assert.equal(sha256(again[i]?.body ?? ''), sha256(body), path)
    if (!/^cachemir; hit/.test(again[i]?.headers['cache-status'] ?? '')) lost.push(path)
  })
  const metas = onDisk.filter((f) => f.name.endsWith('.meta') && !f.name.startsWith('.tmp-')).length
  const temps = onDisk.filter((f) => f.name.startsWith('.tmp-')).length
  assert.deepEqual(
    lost,
    [],
    `${lost.length} of ${count} entries announced as stored were lost by the clean stop (${metas} .meta and ${temps} .tmp- files left on disk)`,
  )
  for (const path of paths) assert.equal(origin.count(path), 1, path)
})

test('after kill -9 mid-fill, the restarted mirror serves complete bodies fresh from the origin and removes the temp files', async (t) => {
  const size = 8 * MiB
  const paths = ['/big-1.bin', '/big-2.bin', '/big-3.bin']
  const bodies = new Map(paths.map((path, i) => [path, makeBody(size, 31 + i)]))
  // Throttled so that each fill takes about 8 s: the kill lands in the middle of all three.
  const files: Record<string, StaticFile> = {}
  for (const [path, body] of bodies) files[path] = { body, headers: FRESH_FOR_AN_HOUR, send: { bytesPerSecond: MiB } }
  const origin = await startOrigin(t, serveStatic(files))
  const cacheDir = await makeTempDir(t, 'cachemir-restart-')
  const proxyArgs = ['--upstream', origin.url, '--cache-dir', cacheDir]

  const a = await startProxyProcess(t, proxyArgs)
  const clients: FirstBytes[] = []
  t.after(async () => {
    for (const client of clients) await client.abort()
  })
  // Two clients per object, all at once.
  const started = await Promise.all([...paths, ...paths].map((path) => getFirstBytes(a.url(path), 64 * 1024)))
  clients.push(...started)
  for (const client of started) assert.equal(client.status, 200)
  const leftovers = await tempFilesIn(cacheDir)
  const killedBy = await a.kill('SIGKILL')
  const cutShort = await Promise.all(started.map((client) => client.rest()))

  assert.equal(killedBy, 'SIGKILL')
  // The kill happened mid-fill: there are partial bodies on disk.
  assert.ok(leftovers.length > 0, 'temp files exist while the fills are running')
  for (const file of leftovers) assert.ok(await exists(file.path), `${file.name} survives the kill`)
  for (const res of cutShort) assert.equal(res.complete, false, 'a client of the killed process sees its response cut short')
  const before = new Map(paths.map((path) => [path, origin.count(path)]))

  // The restarted process gets the objects at full speed.
  for (const path of paths) delete (files[path] as StaticFile).send
  const b = await startProxyProcess(t, proxyArgs)
  const refetched = await Promise.all(paths.map((path) => get(b.url(path))))
  const again = await Promise.all(paths.map((path) => get(b.url(path))))

  paths.forEach((path, i) => {
    const res = refetched[i]
    const body = bodies.get(path)
    assert.ok(res !== undefined && body !== undefined)
    assert.equal(res.status, 200, path)
    assert.equal(res.complete, true, `${path} complete: ${String(res.error)}`)
    assert.equal(res.body.length, body.length, path)
    assert.equal(sha256(res.body), sha256(body), path)
    assert.doesNotMatch(res.headers['cache-status'] ?? '', /hit/, `${path} is not a hit after the kill`)
    assert.equal(origin.count(path), (before.get(path) ?? NaN) + 1, `${path} fetched from the origin again`)
    // And the refetched copy is stored properly this time.
    const hit = again[i]
    assert.ok(hit !== undefined)
    assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/, path)
    assert.equal(sha256(hit.body), sha256(body), path)
  })

  await indexReady(b)
  for (const file of leftovers) assert.equal(await exists(file.path), false, `${file.name} removed by the start-up scan`)
  // The restarted process's own temp files are renamed once their fills commit.
  await waitUntil('no temp files', async () => ((await tempFilesIn(cacheDir)).length === 0 ? true : undefined))
})

const CORRUPT_CASES: readonly { name: string; size: number; args: string[] }[] = [
  { name: 'a small body (read into memory)', size: 64 * 1024, args: [] },
  { name: 'a 5 MiB body (streamed from disk)', size: 5 * MiB, args: ['--max-memory', '16MiB'] },
]

for (const { name, size, args } of CORRUPT_CASES) {
  for (const truncateTo of [0.5, 0]) {
    test(`a truncated stored body (${name}, cut to ${truncateTo * 100}%) is refetched, never served as a hit`, async (t) => {
      const body = makeBody(size, 41)
      const origin = await startOrigin(t, serveStatic({ '/obj.bin': { body, headers: FRESH_FOR_AN_HOUR } }))
      const cacheDir = await makeTempDir(t, 'cachemir-restart-')
      const proxyArgs = ['--upstream', origin.url, '--cache-dir', cacheDir, ...args]

      const a = await startProxyProcess(t, proxyArgs)
      const stored = await get(a.url('/obj.bin'))
      await diskEntries(a, 1)
      await stop(a)
      const bodyFiles = (await cacheFiles(cacheDir)).filter((f) => f.name.endsWith('.body') && !f.name.startsWith('.tmp-'))
      assert.equal(bodyFiles.length, 1, `one stored body: ${bodyFiles.map((f) => f.name).join(', ')}`)
      await truncate((bodyFiles[0] as CacheFile).path, Math.floor(size * truncateTo))
      const b = await startProxyProcess(t, proxyArgs)
      const refetched = await get(b.url('/obj.bin'))
      const afterwards = await get(b.url('/obj.bin'))

      assert.equal(sha256(stored.body), sha256(body))
      assert.equal(refetched.status, 200)
      assert.equal(refetched.complete, true, String(refetched.error))
      assert.equal(sha256(refetched.body), sha256(body))
      assert.doesNotMatch(refetched.headers['cache-status'] ?? '', /hit/)
      assert.equal(origin.count('/obj.bin'), 2)
      assert.equal(afterwards.status, 200)
      assert.match(afterwards.headers['cache-status'] ?? '', /^cachemir; hit/)
      assert.equal(sha256(afterwards.body), sha256(body))
      assert.equal(origin.count('/obj.bin'), 2)
    })
  }
}

test('a restart over a cache of many entries answers at once and indexes every entry', async (t) => {
  const entries = 3000
  const bodyOf = (path: string): string => `body of ${path}\n`
  const origin = await startOrigin(t, (req, res) => {
    const body = bodyOf(req.url ?? '')
    res.writeHead(200, { 'cache-control': 'max-age=3600', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  const cacheDir = await makeTempDir(t, 'cachemir-restart-')
  const proxyArgs = ['--upstream', origin.url, '--cache-dir', cacheDir]

  const a = await startProxyProcess(t, proxyArgs)
  const paths = Array.from({ length: entries }, (_, i) => `/pkg/${i}.txt`)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const path = paths[next++] as string
      const res = await get(a.url(path))
      assert.equal(res.status, 200, path)
      assert.equal(res.body.toString(), bodyOf(path))
    }
  }
  await Promise.all(Array.from({ length: 32 }, worker))
  // Every entry reaches the disk (each commit finishes just after its response).
  await diskEntries(a, entries)
  await stop(a)
  const b = await startProxyProcess(t, proxyArgs)
  const known = paths[1234] as string
  const hit = await get(b.url(known))
  const ready = await indexReady(b)

  assert.equal(origin.count(), entries)
  assert.equal(hit.status, 200)
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(hit.body.toString(), bodyOf(known))
  assert.equal(ready.store.diskEntries, entries)
  assert.equal(origin.count(), entries)
})
