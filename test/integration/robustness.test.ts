// test/integration/robustness.test.ts
// Regressions from the second review, each as a user sees it: a pass-through whose upstream is
// unreachable gets a prompt 502 and leaves the cache alone; only a successful unsafe method
// purges; an immutable rule never pins a 503 or 404; a 304 never teaches the shared entry a
// Set-Cookie; clients that leave in the middle of a large fill leak nothing and the fill still
// lands; `no-cache` forbids serving stale when the origin is down; and a POST that invalidates
// a URL is undone neither by lookups that raced it nor by a fill that was under way.
//
// The upgrade-plus-reset crash needs a real process: see test/cli/robustness.test.ts.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, open, readdir, readlink, rm, writeFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { makeBody, sendBody, sha256, startOrigin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import type { Proxy } from '../helpers/proxy.js'
import { get, getFirstBytes } from '../helpers/client.js'
import { cacheStatus, type Fetched } from '../helpers/client.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { cacheFiles } from '../helpers/cache-files.js'
import { collectGarbage } from '../helpers/gc.js'
import { KiB, MiB } from '../helpers/sizes.js'
import { closedPort } from '../helpers/tcp.js'
import { gate, until, WAIT_MS, within } from '../helpers/wait.js'

function assertHit(r: Fetched, body: string | Buffer, what: string): void {
  assert.equal(r.status, 200, what)
  assert.match(cacheStatus(r), /^cachemir; hit/, what)
  assert.equal(r.body.toString('latin1'), Buffer.from(body).toString('latin1'), what)
}

/** Counts the origin's requests with this method and url. */
function countOf(requests: readonly { method: string; url: string }[], method: string, url: string): number {
  return requests.filter((r) => r.method === method && r.url === url).length
}

/** Files under dir that this process holds open (Linux /proc); undefined where /proc is not available. */
async function openFilesUnder(dir: string): Promise<string[] | undefined> {
  let fds: string[]
  try {
    fds = await readdir('/proc/self/fd')
  } catch {
    return undefined
  }
  const held: string[] = []
  for (const fd of fds) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '')
    if (target.startsWith(dir)) held.push(target)
  }
  return held
}

/**
 * A slow disk: every FileHandle read in this process first awaits `wait()`, until the test ends.
 * `waiting()` is how many reads are held right now.
 */
async function holdFileReads(t: TestContext, wait: () => Promise<void>): Promise<{ waiting(): number }> {
  const probe = await open(process.execPath, 'r')
  const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> }
  await probe.close()
  const read = proto.read
  let waiting = 0
  proto.read = async function (this: FileHandle, ...args: unknown[]): Promise<unknown> {
    waiting++
    try {
      await wait()
    } finally {
      waiting--
    }
    return read.apply(this, args)
  }
  t.after(() => {
    proto.read = read
  })
  return { waiting: () => waiting }
}

test('a POST whose upstream is unreachable gets a prompt 502 and leaves the cached GET alone', async (t) => {
  const origin = await startOrigin(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' })
    res.end(req.method === 'GET' ? 'cached body' : 'posted')
  })
  // Pass-through goes to the route's first upstream only; GET fills fall back to the second.
  const dead = `http://127.0.0.1:${await closedPort()}`
  const proxy = await startProxy(t, { upstream: [dead, origin.url] })

  const first = await get(proxy.url('/x'))
  assert.equal(first.status, 200)
  assert.equal(first.body.toString(), 'cached body')
  assertHit(await get(proxy.url('/x')), 'cached body', 'stored before the POST')
  assert.equal(origin.count('/x'), 1)

  const t0 = performance.now()
  const post = await get(proxy.url('/x'), { method: 'POST', body: 'hello', timeoutMs: 5000 })
  const elapsedMs = performance.now() - t0
  assert.equal(post.status, 502)
  assert.ok(elapsedMs < 2500, `502 after ${Math.round(elapsedMs)} ms`)
  assert.equal(post.complete, true)
  assert.match(post.headers['content-type'] ?? '', /^text\/plain/)
  assert.ok(post.body.length > 0 && post.body.length < 200, `short body, got ${post.body.length} bytes`)
  assert.match(post.body.toString(), /unreachable/)
  assert.match(cacheStatus(post), /fwd=method/)

  // A POST that never reached an upstream changed nothing there: the cached GET is still a hit.
  assertHit(await get(proxy.url('/x')), 'cached body', 'after the failed POST')
  assert.equal(origin.count('/x'), 1, 'neither the POST nor the GET reached the live origin')
})

test('a POST answered 500, or abandoned by its client before the 500, keeps the cached GET; a POST answered 200 purges it', async (t) => {
  let postStatus = 500
  let version = 1
  let held: Promise<void> | undefined
  let postsAnswered = 0
  const origin = await startOrigin(t, async (req, res) => {
    if (req.method === 'POST') {
      for await (const _ of req) void _
      if (held !== undefined) await held
      if (postStatus < 400) version++
      res.once('close', () => postsAnswered++)
      res.writeHead(postStatus, { 'content-type': 'text/plain' })
      res.end(postStatus < 400 ? 'updated' : 'failed')
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' })
    res.end(`version ${version}`)
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  assert.equal((await get(proxy.url('/x'))).body.toString(), 'version 1')
  assertHit(await get(proxy.url('/x')), 'version 1', 'stored')

  const failed = await get(proxy.url('/x'), { method: 'POST', body: 'change' })
  assert.equal(failed.status, 500)
  assert.equal(failed.body.toString(), 'failed')
  await sleep(50) // an invalidation, were there one, runs just after the response
  assertHit(await get(proxy.url('/x')), 'version 1', 'after a POST answered 500')
  assert.equal(countOf(origin.requests, 'GET', '/x'), 1)

  // The client gives up before the origin answers; the origin then says 500.
  const release = gate(t)
  held = release.promise
  await assert.rejects(get(proxy.url('/x'), { method: 'POST', body: 'change', timeoutMs: 300 }))
  assert.equal(countOf(origin.requests, 'POST', '/x'), 2)
  release.open()
  await until(() => postsAnswered === 2, 'the origin to answer the abandoned POST')
  held = undefined
  await sleep(100)
  assertHit(await get(proxy.url('/x')), 'version 1', 'after an abandoned POST answered 500')
  assert.equal(countOf(origin.requests, 'GET', '/x'), 1)

  postStatus = 200
  const ok = await get(proxy.url('/x'), { method: 'POST', body: 'change' })
  assert.equal(ok.status, 200)
  assert.equal(ok.body.toString(), 'updated')
  await until(() => proxy.mirror.store.stats().diskEntries === 0, 'the POST to purge /x')
  const after = await get(proxy.url('/x'))
  assert.equal(after.status, 200)
  assert.equal(after.body.toString(), 'version 2')
  assert.doesNotMatch(cacheStatus(after), /hit/)
  assert.equal(countOf(origin.requests, 'GET', '/x'), 2)
  assert.equal(countOf(origin.requests, 'POST', '/x'), 3)
})

for (const firstStatus of [503, 404]) {
  test(`an immutable rule does not pin a ${firstStatus}: the next request goes to the origin and stores the 200`, async (t) => {
    let failing = true
    const pkg = makeBody(64 * KiB, firstStatus)
    const origin = await startOrigin(t, async (req, res) => {
      if (failing) {
        await sendBody(req, res, Buffer.from(firstStatus === 503 ? 'maintenance' : 'not synced yet'), {
          status: firstStatus,
          headers: { 'content-type': 'text/plain' },
        })
        return
      }
      await sendBody(req, res, pkg, { headers: { 'content-type': 'application/vnd.debian.binary-package' } })
    })
    const dir = await makeTempDir(t, 'cachemir-robust-config-')
    const configFile = join(dir, 'cachemir.json')
    const config = { routes: [{ prefix: '/debian/', upstreams: [`${origin.url}/`], rules: [{ match: '\\.deb$', cache: 'immutable' }] }] }
    await writeFile(configFile, JSON.stringify(config))
    const proxy = await startProxy(t, { config: configFile })
    const path = '/debian/pool/main/a.deb'

    const first = await get(proxy.url(path))
    assert.equal(first.status, firstStatus)
    assert.doesNotMatch(cacheStatus(first), /stored/)
    assert.doesNotMatch(cacheStatus(first), /hit/)
    assert.equal(origin.count('/pool/main/a.deb'), 1)
    await until(() => proxy.mirror.fills.size === 0, 'the first fill to finish')

    failing = false
    const second = await get(proxy.url(path))
    assert.equal(second.status, 200, `the ${firstStatus} must not be served from cache`)
    assert.equal(sha256(second.body), sha256(pkg))
    assert.doesNotMatch(cacheStatus(second), /hit/)
    assert.equal(origin.count('/pool/main/a.deb'), 2)

    const third = await get(proxy.url(path))
    assertHit(third, pkg, 'the 200 is stored and served from cache')
    assert.equal(origin.count('/pool/main/a.deb'), 2)
  })
}

test('a Set-Cookie on a 304 revalidation is never served to other clients from the shared entry', async (t) => {
  let n = 0
  const origin = await startOrigin(t, (req, res) => {
    n++
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60', 'set-cookie': `session=secret-${n}; HttpOnly` })
      res.end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', etag: '"v1"', 'cache-control': 'max-age=0' })
    res.end('page')
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const first = await get(proxy.url('/p'))
  assert.equal(first.status, 200)
  assert.equal(first.headers['set-cookie'], undefined)
  await sleep(20)

  const revalidated = await get(proxy.url('/p'))
  assert.equal(revalidated.status, 200)
  assert.equal(revalidated.body.toString(), 'page')
  assert.match(cacheStatus(revalidated), /fwd-status=304/)
  assert.equal(origin.count('/p'), 2)
  assert.equal(origin.requests[1]?.headers['if-none-match'], '"v1"')

  // The 304 made the entry fresh for 60 s: later clients are hits, and never see the cookie.
  for (const i of [1, 2, 3]) {
    const later = await get(proxy.url('/p'))
    assertHit(later, 'page', `later client ${i}`)
    assert.equal(later.headers['set-cookie'], undefined, `later client ${i} got a Set-Cookie`)
    assert.ok(!later.rawHeaders.some((h) => /secret/.test(h)), `later client ${i}: ${later.rawHeaders.join(' | ')}`)
  }
  assert.equal(origin.count('/p'), 2)
})

test('clients leaving at random points of a large fill leak nothing: the fill is stored and the mirror closes', async (t) => {
  const size = 16 * MiB
  const body = makeBody(size, 6)
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, body, {
      headers: { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=600' },
      bytesPerSecond: 8 * MiB,
    }),
  )
  const proxy = await startProxy(t, { upstream: origin.url, maxDisk: '1GiB' })
  // A slow disk: every FileHandle read waits a little, so clients that catch up from the temp
  // file often leave while the mirror awaits a read for them.
  await holdFileReads(t, () => sleep(5))
  // A handler left waiting forever holds the fill's file; once it is garbage, Node closes the
  // descriptor itself and warns. Neither may happen.
  const gcWarnings: string[] = []
  const onWarning = (w: Error): void => {
    if (/garbage collection/i.test(w.message)) gcWarnings.push(w.message)
  }
  process.on('warning', onWarning)
  t.after(() => {
    process.off('warning', onWarning)
  })

  // Deterministic "random" join times and leaving points, so a failure can be replayed.
  let x = 0x2545f491
  const next = (): number => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
  const clients = Array.from({ length: 30 }, () => ({
    joinMs: Math.floor(next() * 1600),
    leaveAt: 1 + Math.floor(next() * (size - 2 * MiB)),
  }))

  // The first client starts the fill; the others join it late and catch up from the temp file.
  const starter = getFirstBytes(proxy.url('/big.bin'), 1)
  const started = await within(starter, WAIT_MS, 'the first client')
  const results = await within(
    Promise.all(
      clients.map(async ({ joinMs, leaveAt }, i) => {
        await sleep(joinMs)
        const r = await getFirstBytes(proxy.url('/big.bin'), leaveAt)
        await r.abort()
        assert.equal(r.status, 200, `client ${i}`)
        assert.ok(r.first.length >= leaveAt, `client ${i} got ${r.first.length} of the ${leaveAt} bytes it waited for`)
        assert.ok(r.first.equals(body.subarray(0, r.first.length)), `client ${i} got the start of the body`)
        return r.first.length
      }),
    ),
    WAIT_MS * 3,
    'every client to read its share and leave',
  )
  assert.equal(results.length, clients.length)
  await started.abort()

  // Everyone left, yet the fill runs to the end and is stored.
  await until(() => proxy.mirror.fills.size === 0, 'the fill to finish', WAIT_MS * 2)
  const hit = await within(get(proxy.url('/big.bin')), WAIT_MS, 'a hit after the fill')
  assert.equal(hit.status, 200)
  assert.equal(hit.complete, true)
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  assert.equal(sha256(hit.body), sha256(body))
  assert.equal(origin.count('/big.bin'), 1)

  // No handler is left waiting with a file open.
  if ((await openFilesUnder(proxy.cacheDir)) !== undefined) {
    await until(async () => ((await openFilesUnder(proxy.cacheDir)) ?? []).length === 0, 'no open files under the cache dir', 5000).catch(
      () => {},
    )
    assert.deepEqual(await openFilesUnder(proxy.cacheDir), [], 'files under the cache dir still open')
  }
  assert.deepEqual(
    (await cacheFiles(proxy.cacheDir)).filter((f) => f.name.startsWith('.tmp-')).map((f) => f.name),
    [],
    'no temp files left',
  )
  await within(proxy.close(), 5000, 'the mirror to close')
  collectGarbage()
  await sleep(50)
  collectGarbage()
  await sleep(50)
  assert.deepEqual(gcWarnings, [], 'file handles were left to the garbage collector by handlers that never finished')
})

test('a stored response with no-cache is not served stale when the origin is down: 502', async (t) => {
  const origin = await startOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-cache, max-age=60', etag: '"a"' })
    res.end('must-validate content')
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const first = await get(proxy.url('/nc'))
  assert.equal(first.status, 200)
  assert.equal(first.body.toString(), 'must-validate content')
  await until(() => proxy.mirror.store.stats().diskEntries === 1, 'the response to be stored')
  assert.equal(origin.count('/nc'), 1)

  await origin.close()
  const down = await within(get(proxy.url('/nc')), WAIT_MS, 'an answer with the origin down')
  assert.equal(down.status, 502)
  assert.notEqual(down.body.toString(), 'must-validate content')
  // fwd=stale (the stored copy needed validation) is right; serving it (hit, stale-if-error) is not.
  assert.doesNotMatch(cacheStatus(down), /hit|stale-if-error/)
  assert.equal(down.headers['etag'], undefined)
})

test('lookups that were reading the disk when a POST purged the URL do not bring the pre-POST body back', async (t) => {
  let version = 1
  const releasePost = gate(t)
  const origin = await startOrigin(t, async (req, res) => {
    if (req.method === 'POST') {
      for await (const _ of req) void _
      await releasePost.promise
      version++
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('updated')
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', etag: `"v${version}"` })
    res.end(`version ${version}`)
  })
  // The entry is stored by one mirror and served by a second on the same cache dir, so it is
  // on disk only and each lookup reads it from disk, as after a restart or a memory eviction.
  const cacheDir = await mkdtemp(join(tmpdir(), 'cachemir-robust-race-'))
  const proxies: Proxy[] = []
  t.after(async () => {
    for (const p of proxies) await p.close()
    await rm(cacheDir, { recursive: true, force: true, maxRetries: 5 })
  })
  const writer = await startProxy(t, { upstream: origin.url, cacheDir })
  proxies.push(writer)
  assert.equal((await get(writer.url('/x'))).body.toString(), 'version 1')
  await until(() => writer.mirror.store.stats().diskEntries === 1, 'the first mirror to store /x')
  await writer.close()
  const proxy = await startProxy(t, { upstream: origin.url, cacheDir })
  proxies.push(proxy)
  await proxy.mirror.scanned

  // A slow disk: file reads wait until the test lets them go.
  const releaseReads = gate(t)
  const reads = await holdFileReads(t, () => releaseReads.promise)

  // The POST is held at the origin while several GETs read the old entry from disk.
  const post = get(proxy.url('/x'), { method: 'POST', body: 'new version' })
  await until(() => countOf(origin.requests, 'POST', '/x') === 1, 'the POST to reach the origin')
  const racing = Array.from({ length: 5 }, () => get(proxy.url('/x')))
  await until(() => reads.waiting() === racing.length, 'every GET to be reading the stored body')

  // The POST completes and purges /x while those reads are still pending.
  releasePost.open()
  const posted = await within(post, WAIT_MS, 'the POST response')
  assert.equal(posted.status, 200)
  assert.equal(posted.body.toString(), 'updated')
  await until(() => proxy.mirror.store.stats().diskEntries === 0, 'the POST to purge /x')

  // Now the reads finish. Those GETs started before the POST, so the old body is fair for them…
  releaseReads.open()
  for (const r of await within(Promise.all(racing), WAIT_MS, 'the racing GETs')) {
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'version 1')
  }
  assert.equal(countOf(origin.requests, 'GET', '/x'), 1)

  // …but they must not have put it back: the next GET gets the new body from the origin.
  const next = await get(proxy.url('/x'))
  assert.equal(next.status, 200)
  assert.equal(next.body.toString(), 'version 2', `a GET after the POST got ${JSON.stringify(next.body.toString())} (${cacheStatus(next)})`)
  assert.doesNotMatch(cacheStatus(next), /hit/)
  assert.equal(countOf(origin.requests, 'GET', '/x'), 2)
  assertHit(await get(proxy.url('/x')), 'version 2', 'the new body is stored')
  assert.equal(countOf(origin.requests, 'POST', '/x'), 1)
})

// Found while writing these tests: the purge found nothing while the fill was still under way,
// and the fill then committed the pre-POST body.
test('a fill that was under way when a POST invalidated its URL does not store the pre-POST body', async (t) => {
  let version = 1
  const releaseBody = gate(t)
  const origin = await startOrigin(t, async (req, res) => {
    if (req.method === 'POST') {
      for await (const _ of req) void _
      version++
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('updated')
      return
    }
    const body = Buffer.from(`version ${version} `.padEnd(64 * KiB, '.'))
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'content-length': body.length })
    if (version > 1) return void res.end(body)
    // The pre-POST response is still arriving when the POST goes through.
    res.write(body.subarray(0, 1024))
    await releaseBody.promise
    res.end(body.subarray(1024))
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const early = get(proxy.url('/y'))
  await until(() => proxy.mirror.fills.size === 1 && countOf(origin.requests, 'GET', '/y') === 1, 'the first GET to start its fill')

  const posted = await get(proxy.url('/y'), { method: 'POST', body: 'new version' })
  assert.equal(posted.status, 200)
  releaseBody.open()
  const first = await within(early, WAIT_MS, 'the GET that started before the POST')
  assert.equal(first.status, 200)
  assert.match(first.body.toString(), /^version 1 /, 'it got the response the origin was sending')
  await until(() => proxy.mirror.fills.size === 0, 'that fill to finish')

  // The POST completed before that fill did: its pre-POST body must not now be served as a hit.
  const next = await get(proxy.url('/y'))
  assert.equal(next.status, 200)
  assert.match(
    next.body.toString(),
    /^version 2 /,
    `a GET after the POST got ${JSON.stringify(next.body.subarray(0, 12).toString())} (${cacheStatus(next)})`,
  )
  assert.equal(countOf(origin.requests, 'GET', '/y'), 2)
})
