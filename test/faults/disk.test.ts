// test/faults/disk.test.ts
// A disk that fills up under a fill, and stored bodies whose bytes rot while the length stays
// right. The client must always get either the right bytes or a response visibly cut short;
// never a complete response with the wrong bytes, and never a partial entry stored.
//
// Already covered elsewhere, not repeated here: a stored body that is cut short is refetched
// (test/cli/restart.test.ts, "a truncated stored body … is refetched, never served as a hit"),
// and an unwritable cache dir at start-up exits 2 (test/cli/cli.test.ts).

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { assertBody } from '../helpers/assert.js'
import { cacheStatus, get, getFirstBytes, slowGet } from '../helpers/client.js'
import { makeBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import { startProxy, type Proxy, type ProxyOptions } from '../helpers/proxy.js'
import { cacheFiles, flipMiddle, storedBodyFile, tempFilesIn } from '../helpers/cache-files.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { KiB, MiB } from '../helpers/sizes.js'
import { until, WAIT_MS, within } from '../helpers/wait.js'

const run = promisify(execFile)
const CACHEABLE = { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' }

/**
 * Mounts a tmpfs of `size` on a fresh directory; undefined (with the reason) when this machine
 * does not allow it. The mount is undone and the directory removed by t.after, after `before`.
 */
async function mountTmpfs(t: TestContext, size: string, before: () => Promise<void>): Promise<{ dir: string } | { reason: string }> {
  const parent = await mkdtemp(join(tmpdir(), 'cachemir-tmpfs-'))
  const dir = join(parent, 'cache')
  await mkdir(dir)
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir])
  } catch (err) {
    await rm(parent, { recursive: true, force: true })
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err && typeof err.stderr === 'string' ? err.stderr : undefined
    return { reason: (stderr ?? (err instanceof Error ? err.message : String(err))).trim() }
  }
  t.after(async () => {
    await before()
    let unmounted = false
    for (let i = 0; i < 20 && !unmounted; i++) {
      unmounted = await run('umount', [dir]).then(
        () => true,
        () => false,
      )
      if (!unmounted) await sleep(100)
    }
    if (!unmounted) await run('umount', ['-l', dir]).catch(() => {})
    await rm(parent, { recursive: true, force: true })
  })
  return { dir }
}

test('a disk that fills up mid-fill: the client still gets the whole body, nothing partial is stored, one warning, and serving goes on', async (t) => {
  const big = makeBody(4 * MiB, 1)
  const small = makeBody(10 * KiB, 2)
  const origin = await startOrigin(
    t,
    serveStatic({ '/big.bin': { body: big, headers: CACHEABLE }, '/small.bin': { body: small, headers: CACHEABLE } }),
  )
  let proxy: Proxy | undefined
  const mounted = await mountTmpfs(t, '1m', async () => {
    await proxy?.close()
  })
  if ('reason' in mounted) {
    console.log(`cannot mount tmpfs here: ${mounted.reason}`)
    t.skip(`cannot mount tmpfs here: ${mounted.reason}`)
    return
  }
  proxy = await startProxy(t, { upstream: origin.url, cacheDir: mounted.dir })
  const p = proxy

  const first = await within(get(p.url('/big.bin')), WAIT_MS * 2, 'the 4 MiB response on a 1 MiB disk')
  await until(() => p.mirror.fills.size === 0, 'the fill to finish', WAIT_MS)
  const warnings = p.logs.filter((l) => l.level === 40)
  const writeWarnings = warnings.filter((l) => /cache/i.test(l.msg) && /writ|disk|space/i.test(l.msg))
  const tempsAfterFirst = await tempFilesIn(mounted.dir)
  const second = await within(get(p.url('/big.bin')), WAIT_MS * 2, 'the 4 MiB object again')
  await until(() => p.mirror.fills.size === 0, 'the second fill to finish', WAIT_MS)
  const smallMiss = await within(get(p.url('/small.bin')), WAIT_MS, 'a small object that fits')
  await until(() => p.mirror.fills.size === 0, 'the small fill to commit', WAIT_MS)
  const smallHit = await within(get(p.url('/small.bin')), WAIT_MS, 'the small object again')

  assertBody(first, big, 'the client whose fill hit the full disk')
  assert.deepEqual(tempsAfterFirst, [], 'no partial body left behind')
  assert.equal(writeWarnings.length, 1, `one warning about the cache write; level-40 lines: ${JSON.stringify(warnings.map((l) => l.msg))}`)
  assertBody(second, big, 'the next request')
  assert.doesNotMatch(cacheStatus(second), /hit/, 'nothing partial was stored: the next request is not a hit')
  assert.equal(origin.count('/big.bin'), 2, 'the next request went to the origin again')
  assertBody(smallMiss, small, 'small miss')
  assertBody(smallHit, small, 'small hit')
  assert.match(cacheStatus(smallHit), /^cachemir; hit/, 'what fits is still stored')
  assert.equal(origin.count('/small.bin'), 1)
  assert.deepEqual(await tempFilesIn(mounted.dir), [])
})

test('a disk that fills up under a fill followed by several clients, one of them slow, one arriving afterwards: each gets the whole body', async (t) => {
  const size = 4 * MiB
  const big = makeBody(size, 4)
  // About two seconds from the origin, so clients meet the fill before and after the disk is full.
  const origin = await startOrigin(t, serveStatic({ '/big.bin': { body: big, headers: CACHEABLE, send: { bytesPerSecond: 2 * MiB } } }))
  let proxy: Proxy | undefined
  const mounted = await mountTmpfs(t, '1m', async () => {
    await proxy?.close()
  })
  if ('reason' in mounted) {
    console.log(`cannot mount tmpfs here: ${mounted.reason}`)
    t.skip(`cannot mount tmpfs here: ${mounted.reason}`)
    return
  }
  proxy = await startProxy(t, { upstream: origin.url, cacheDir: mounted.dir })
  const p = proxy

  const starter = await within(getFirstBytes(p.url('/big.bin'), 1), WAIT_MS, 'the first client')
  const early = get(p.url('/big.bin'))
  const slow = slowGet(p.url('/big.bin'), 1 * MiB)
  // The temp file cannot grow past 1 MiB: by the time 1.5 MiB have reached a client, the disk is full.
  const midway = await within(getFirstBytes(p.url('/big.bin'), 1536 * KiB), WAIT_MS, 'a client past the point where the disk filled')
  const late = get(p.url('/big.bin'))
  const results = await within(Promise.all([starter.rest(), early, slow, midway.rest(), late]), WAIT_MS * 3, 'every client to finish')
  await until(() => p.mirror.fills.size === 0, 'the fills to finish', WAIT_MS)

  for (const [i, r] of results.entries()) assertBody(r, big, `client ${i}`)
  assert.deepEqual(await tempFilesIn(mounted.dir), [], 'no partial body left behind')
  assert.deepEqual(
    (await cacheFiles(mounted.dir)).filter((f) => f.name.endsWith('.meta') || f.name.endsWith('.body')).map((f) => f.name),
    [],
    'nothing stored',
  )
  assert.ok(origin.count('/big.bin') <= 3, `${origin.count('/big.bin')} origin requests for five clients`)
  const after = await within(get(p.url('/big.bin')), WAIT_MS * 2, 'a request afterwards')
  assertBody(after, big, 'afterwards')
  assert.doesNotMatch(cacheStatus(after), /hit/)
})

interface CorruptCase {
  readonly name: string
  readonly size: number
  readonly options: ProxyOptions
}

const CORRUPT: readonly CorruptCase[] = [
  // maxMemory 1 MiB keeps bodies over 64 KiB out of memory: streamed from the disk file.
  { name: 'a 2 MiB body streamed from disk', size: 2 * MiB, options: { maxMemory: '1MiB' } },
  // Read whole into the memory tier on first lookup.
  { name: 'a 10 KiB body read into memory', size: 10 * KiB, options: {} },
]

for (const c of CORRUPT) {
  test(`corrupted bytes of the same length in ${c.name} are never served as a complete response; the object is refetched`, async (t) => {
    const body = makeBody(c.size, 3)
    const origin = await startOrigin(t, serveStatic({ '/obj.bin': { body, headers: CACHEABLE } }))
    const cacheDir = await makeTempDir(t, 'cachemir-corrupt-')
    const options: ProxyOptions = { ...c.options, upstream: origin.url, cacheDir }

    const a = await startProxy(t, options)
    assertBody(await get(a.url('/obj.bin')), body, 'first fill')
    await until(() => a.mirror.fills.size === 0 && a.mirror.store.stats().diskEntries === 1, 'the entry to reach the disk', WAIT_MS)
    await a.close()
    await flipMiddle(await storedBodyFile(cacheDir), Math.min(4 * KiB, c.size / 4))

    const b = await startProxy(t, options)
    const next = await within(get(b.url('/obj.bin')), WAIT_MS, 'the request after the corruption')
    const after = await within(get(b.url('/obj.bin')), WAIT_MS, 'the request after that')
    await until(() => b.mirror.fills.size === 0, 'fills to finish', WAIT_MS)
    const last = await within(get(b.url('/obj.bin')), WAIT_MS, 'a third request')

    assert.equal(next.status, 200)
    t.diagnostic(next.complete ? `refetched (${cacheStatus(next)})` : `cut short after ${next.body.length} of ${body.length} bytes`)
    if (next.complete) {
      // A complete response must be the right one: refetched, not the damaged copy.
      assert.equal(sha256(next.body), sha256(body), `a complete response carried the corrupted bytes (cache-status: ${cacheStatus(next)})`)
      assert.doesNotMatch(cacheStatus(next), /hit/)
    } else {
      assert.ok(next.body.length < body.length, 'a response cut short ends before the announced length')
      if (c.size <= 64 * KiB) assert.fail('a memory-sized body can be checked before sending: it must be refetched, not cut short')
    }
    assertBody(after, body, 'the request after that')
    assert.equal(origin.count('/obj.bin'), 2, 'fetched once more from the origin')
    assertBody(last, body, 'third request')
    assert.match(cacheStatus(last), /^cachemir; hit/, 'the refetched copy is stored')
    assert.equal(origin.count('/obj.bin'), 2)
  })
}
