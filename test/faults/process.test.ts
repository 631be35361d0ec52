// test/faults/process.test.ts
// The real binary as a child process, stopped the hard way and the polite way while many
// responses are in flight: kill -9 in the middle of twenty fills, and SIGTERM in the middle of
// several slow responses of different kinds.
//
// Already covered elsewhere, not repeated here (test/cli/restart.test.ts): kill -9 during three
// fills of one size, a truncated stored body, SIGTERM right after responses were delivered;
// (test/cli/cli.test.ts) SIGTERM during one in-flight response.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { cacheStatus, get, getFirstBytes, type Fetched, type FirstBytes } from '../helpers/client.js'
import { makeBody, serveStatic, sha256, startOrigin, type StaticFile } from '../helpers/origin.js'
import { getHealth, startProxyProcess, type ProxyProcess } from '../helpers/proxy.js'
import { cacheFiles, tempFilesIn } from '../helpers/cache-files.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { LONG_WAIT_MS, until, within } from '../helpers/wait.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { KiB, MiB } from '../helpers/sizes.js'

const FRESH_FOR_AN_HOUR = { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' }

interface Health {
  store: { diskEntries: number; indexComplete: boolean }
  fills: { active: number }
}

/** Polls /_cachemir/health until `cond` holds; returns that health. */
async function healthWhen(proxy: ProxyProcess, what: string, cond: (h: Health) => boolean): Promise<Health> {
  let last: Health | undefined
  await until(
    async () => {
      last = await getHealth<Health>(proxy)
      return cond(last)
    },
    what,
    LONG_WAIT_MS,
  )
  return last as Health
}

/** Stored entries on disk: `.meta` files that are not temp files. */
async function metaFiles(dir: string): Promise<number> {
  return (await cacheFiles(dir)).filter((f) => f.name.endsWith('.meta') && !f.name.startsWith('.tmp-')).length
}

test('kill -9 during twenty concurrent fills: after a restart every object is whole, nothing partial is served, and the index matches the disk', async (t) => {
  const size = 2 * MiB
  const paths = Array.from({ length: 20 }, (_, i) => `/obj/${i}.bin`)
  const bodies = new Map(paths.map((path, i) => [path, makeBody(size, 500 + i)]))
  // Object i takes 0.25 s + i × 0.2 s: the first few are complete and stored when the kill comes
  // 1.5 s in, the rest are caught mid-fill.
  const files: Record<string, StaticFile> = {}
  paths.forEach((path, i) => {
    files[path] = {
      body: bodies.get(path) as Buffer,
      headers: FRESH_FOR_AN_HOUR,
      send: { bytesPerSecond: Math.floor(size / (0.25 + i * 0.2)) },
    }
  })
  const origin = await startOrigin(t, serveStatic(files))
  const cacheDir = await makeTempDir(t, 'cachemir-kill-')
  const args = ['--upstream', origin.url, '--cache-dir', cacheDir]

  const a = await startProxyProcess(t, args)
  const clients: FirstBytes[] = []
  t.after(async () => {
    for (const c of clients) await c.abort()
  })
  // Forty clients, two per object, all at once.
  const opened = await within(
    Promise.all([...paths, ...paths].map((path) => getFirstBytes(a.url(path), 1))),
    LONG_WAIT_MS,
    'forty clients to get their first bytes',
  )
  clients.push(...opened)
  await sleep(1500)
  const leftovers = await tempFilesIn(cacheDir)
  assert.equal(await a.kill('SIGKILL'), 'SIGKILL')
  const firstRound = await Promise.all(opened.map((c) => c.rest()))

  // What the killed process's clients saw: whole and right, or visibly cut short.
  const wrong: string[] = []
  let complete = 0
  firstRound.forEach((r, i) => {
    const path = [...paths, ...paths][i] as string
    assert.equal(r.status, 200, path)
    if (!r.complete) return
    complete++
    if (sha256(r.body) !== sha256(bodies.get(path) as Buffer))
      wrong.push(`${path}: complete with ${r.body.length} bytes and the wrong digest`)
  })
  assert.deepEqual(wrong, [], 'no client of the killed process got a complete but wrong body')
  assert.ok(
    complete > 0 && complete < firstRound.length,
    `the kill landed mid-way: ${complete} of ${firstRound.length} responses had completed`,
  )
  assert.ok(leftovers.length > 0, 'partial bodies were on disk at the kill')

  // The restarted process serves at full speed.
  for (const path of paths) delete (files[path] as StaticFile).send
  const before = new Map(paths.map((path) => [path, origin.count(path)]))
  const b = await startProxyProcess(t, args)
  const ready = await healthWhen(b, 'the start-up scan to finish', (h) => h.store.indexComplete)
  const tempsWhenReady = await tempFilesIn(cacheDir)
  const metasWhenReady = await metaFiles(cacheDir)

  assert.deepEqual(
    tempsWhenReady.map((f) => f.name),
    [],
    'no temp files once the index is complete',
  )
  assert.equal(ready.store.diskEntries, metasWhenReady, 'diskEntries equals the .meta files on disk')
  assert.ok(metasWhenReady > 0 && metasWhenReady < paths.length, `some objects were stored before the kill, some not: ${metasWhenReady}`)

  const again = await within(
    Promise.all([...paths, ...paths].map((path) => get(b.url(path)))),
    LONG_WAIT_MS * 2,
    'every object from the restarted process',
  )
  const bad: string[] = []
  again.forEach((r, i) => {
    const path = [...paths, ...paths][i] as string
    const body = bodies.get(path) as Buffer
    if (r.status !== 200 || !r.complete || r.body.length !== body.length || sha256(r.body) !== sha256(body)) {
      bad.push(`${path}: ${r.status} complete=${String(r.complete)} ${r.body.length} bytes ${cacheStatus(r)}`)
    }
  })
  assert.deepEqual(bad, [], 'every object is whole and right after the restart')
  for (const path of paths) {
    const fetched = origin.count(path) - (before.get(path) ?? 0)
    assert.ok(fetched <= 1, `${path} fetched ${fetched} times by the restarted process`)
  }
  const hits = again.filter((r) => /^cachemir; hit/.test(cacheStatus(r))).length
  assert.ok(hits >= metasWhenReady, `${hits} hits for ${metasWhenReady} stored objects`)

  // Once the refetches are committed, everything is stored exactly once and the index agrees.
  const settled = await healthWhen(b, 'all twenty entries on disk', (h) => h.fills.active === 0 && h.store.diskEntries === paths.length)
  assert.equal(await metaFiles(cacheDir), paths.length)
  assert.equal(settled.store.diskEntries, paths.length)
  assert.deepEqual(
    (await tempFilesIn(cacheDir)).map((f) => f.name),
    [],
  )
  const hitsNow = await Promise.all(paths.map((path) => get(b.url(path))))
  hitsNow.forEach((r, i) => {
    const path = paths[i] as string
    assert.match(cacheStatus(r), /^cachemir; hit/, path)
    assert.equal(sha256(r.body), sha256(bodies.get(path) as Buffer), path)
  })
})

interface SlowReader {
  /** Resolves when the response headers arrived. */
  readonly started: Promise<void>
  readonly done: Promise<Fetched>
}

/** GET over node:http, reading at about bytesPerSecond (pausing between chunks). `done` never rejects. */
function slowReader(url: string, bytesPerSecond: number): SlowReader {
  let started!: () => void
  let failed!: (err: Error) => void
  const startedP = new Promise<void>((resolve, reject) => {
    started = resolve
    failed = reject
  })
  const done = new Promise<Fetched>((resolve) => {
    const req = httpRequest(url, { agent: false })
    req.once('error', (err) => {
      failed(err)
      resolve({ status: 0, headers: {}, rawHeaders: [], body: Buffer.alloc(0), complete: false, error: err })
    })
    req.once('response', (res) => {
      started()
      const chunks: Buffer[] = []
      let received = 0
      const t0 = Date.now()
      let timer: NodeJS.Timeout | undefined
      const finish = (complete: boolean): void => {
        if (timer !== undefined) clearTimeout(timer)
        req.destroy()
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers as Record<string, string>,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks),
          complete,
        })
      }
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        received += chunk.length
        const waitMs = t0 + (received / bytesPerSecond) * 1000 - Date.now()
        if (waitMs > 0) {
          res.pause()
          timer = setTimeout(() => res.resume(), waitMs)
        }
      })
      res.once('end', () => finish(res.complete))
      res.once('error', () => finish(false))
      res.once('close', () => finish(res.complete))
    })
    req.end()
  })
  startedP.catch(() => {})
  return { started: startedP, done }
}

test('SIGTERM with fills, pass-throughs and a slow hit in flight: every client gets its whole body, the fills are kept, and the exit code is 0', async (t) => {
  const slowSize = 1536 * KiB
  const fillPaths = ['/fill/a.bin', '/fill/b.bin', '/fill/c.bin', '/fill/d.bin']
  const passPaths = ['/pass/a.bin', '/pass/b.bin']
  const bodies = new Map<string, Buffer>()
  const files: Record<string, StaticFile> = {}
  // About 1.5 s per body from the origin.
  ;[...fillPaths, ...passPaths].forEach((path, i) => {
    const body = makeBody(slowSize, 700 + i)
    bodies.set(path, body)
    const cc = path.startsWith('/pass/') ? { 'cache-control': 'no-store' } : FRESH_FOR_AN_HOUR
    files[path] = { body, headers: cc, send: { bytesPerSecond: MiB } }
  })
  const stored = makeBody(slowSize, 799)
  bodies.set('/stored.bin', stored)
  files['/stored.bin'] = { body: stored, headers: FRESH_FOR_AN_HOUR }
  const origin = await startOrigin(t, serveStatic(files))
  const cacheDir = await makeTempDir(t, 'cachemir-term-')
  const args = ['--upstream', origin.url, '--cache-dir', cacheDir]

  const a = await startProxyProcess(t, args)
  assert.equal(sha256((await get(a.url('/stored.bin'))).body), sha256(stored))
  await healthWhen(a, 'the stored object on disk', (h) => h.store.diskEntries === 1 && h.fills.active === 0)

  const clients: FirstBytes[] = []
  t.after(async () => {
    for (const c of clients) await c.abort()
  })
  // Two clients on each fill, one on each pass-through, and a client reading a hit slowly.
  const inFlightPaths = [...fillPaths, ...fillPaths, ...passPaths]
  clients.push(
    ...(await within(
      Promise.all(inFlightPaths.map((path) => getFirstBytes(a.url(path), 1))),
      LONG_WAIT_MS,
      'first bytes of every in-flight response',
    )),
  )
  const slowHit = slowReader(a.url('/stored.bin'), MiB)
  await within(slowHit.started, LONG_WAIT_MS, 'the slow hit to start')

  const exited = a.kill('SIGTERM')
  const results = await within(Promise.all(clients.map((c) => c.rest())), LONG_WAIT_MS * 2, 'the in-flight responses')
  const slowResult = await within(slowHit.done, LONG_WAIT_MS * 2, 'the slow hit')
  const code = await within(exited, LONG_WAIT_MS, 'exit after SIGTERM')

  const broken: string[] = []
  results.forEach((r, i) => {
    const path = inFlightPaths[i] as string
    const body = bodies.get(path) as Buffer
    if (r.status !== 200 || !r.complete || sha256(r.body) !== sha256(body))
      broken.push(`${path}: ${r.status} complete=${String(r.complete)} ${r.body.length} bytes (${String(r.error)})`)
  })
  if (!slowResult.complete || sha256(slowResult.body) !== sha256(stored))
    broken.push(`slow hit: complete=${String(slowResult.complete)} ${slowResult.body.length} bytes`)
  assert.deepEqual(broken, [], 'every in-flight client got its whole body')
  assert.equal(code, 0, a.output().slice(-2000))
  for (const path of fillPaths) assert.match(cacheStatus(results[fillPaths.indexOf(path)] as Fetched), /stored/, path)
  for (const path of [...fillPaths, ...passPaths]) assert.equal(origin.count(path), 1, path)

  // The fills that told their clients "stored" were stored before the exit.
  const b = await startProxyProcess(t, args)
  const after = await Promise.all(fillPaths.map((path) => get(b.url(path))))
  after.forEach((r, i) => {
    const path = fillPaths[i] as string
    assert.match(cacheStatus(r), /^cachemir; hit/, `${path} after the restart`)
    assert.equal(sha256(r.body), sha256(bodies.get(path) as Buffer), path)
  })
  for (const path of fillPaths) assert.equal(origin.count(path), 1, path)
})
