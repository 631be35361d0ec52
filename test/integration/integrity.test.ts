// test/integration/integrity.test.ts
// Trusted copies: npm tarballs, apt pool and by-hash files and PyPI distribution files are checked
// against the digests their ecosystem publishes in the metadata the mirror has cached. A tampered
// file (same length, bytes flipped) is never stored and never reaches a client complete: those
// following the fill are cut short, one warn line names the file and both digests, the health
// counter records it, the upstream stays in rotation, and the next request fetches again. A
// correct file passes and is stored; without cached metadata nothing is checked.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'
import { variantKey } from '../../src/proxy/cache-key.js'
import { cacheStatus, get, getFirstBytes, type Fetched } from '../helpers/client.js'
import { tempFilesIn } from '../helpers/cache-files.js'
import { makeBody, sendBody, startOrigin, type Origin } from '../helpers/origin.js'
import { getHealth, startConfiguredProxy, type Proxy } from '../helpers/proxy.js'
import { KiB, MiB } from '../helpers/sizes.js'
import { gate, until, waitForFills, type Gate } from '../helpers/wait.js'

const MISMATCH = 'integrity check failed: not stored'
const WARN = 40
const IMMUTABLE = { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=31536000' }

interface Health {
  integrity: { passed: number; failed: number; unchecked: number }
  routes: { prefix: string; upstreams: { url: string; state: 'up' | 'down'; failures: number }[] }[]
}

function digest(algorithm: 'sha512' | 'sha256' | 'sha1', body: Buffer): Buffer {
  return createHash(algorithm).update(body).digest()
}

/** The same length with 16 bytes in the middle inverted. */
function tamper(body: Buffer): Buffer {
  const out = Buffer.from(body)
  const at = Math.floor(out.length / 2) - 8
  for (let i = at; i < at + 16; i++) out[i] = (out[i] as number) ^ 0xff
  return out
}

/** What the origin serves for one file: its current bytes, and optionally a gate its second half waits for. */
interface Served {
  body: Buffer
  /** Set: the first half is sent, then the rest once the gate opens (clients follow the fill meanwhile). */
  halfway?: Gate | undefined
  /** Chunked instead of Content-Length. */
  chunked?: boolean
}

/** Sends `served`, with its first half held at a gate when it has one. */
async function sendServed(
  req: IncomingMessage,
  res: ServerResponse,
  served: Served,
  headers: OutgoingHttpHeaders = IMMUTABLE,
): Promise<void> {
  if (served.halfway === undefined) return sendBody(req, res, served.body, { headers, contentLength: served.chunked !== true })
  const half = Math.floor(served.body.length / 2)
  res.writeHead(200, served.chunked === true ? headers : { ...headers, 'content-length': served.body.length })
  res.write(served.body.subarray(0, half))
  await served.halfway.promise
  res.end(served.body.subarray(half))
}

/**
 * A GET of a file whose whole body is held back for its check: the connection may close before
 * even the headers went out (they leave with the first body bytes), which is a refusal too.
 */
async function getHeldBack(url: string): Promise<Fetched> {
  try {
    return await get(url)
  } catch (err) {
    assert.match(String(err), /other side closed|socket/i)
    return { status: 0, headers: {}, rawHeaders: [], body: Buffer.alloc(0), complete: false }
  }
}

/** One GET that follows the fill: resolves once `n` bytes arrived, then lets the origin finish and reads the rest. */
async function getWhileFilling(proxy: Proxy, path: string, served: Served, n = 64 * KiB): Promise<Fetched> {
  const first = await getFirstBytes(proxy.url(path), n)
  assert.ok(first.first.length >= n && first.first.length < served.body.length, `following the fill: ${first.first.length} bytes so far`)
  served.halfway?.open()
  return first.rest()
}

/** The one mismatch: the client did not get a complete body, nothing was stored, one warn line, the counter, the upstream still up. */
async function assertRefused(
  proxy: Proxy,
  r: Fetched,
  sent: Buffer,
  key: string,
  check: { algorithm: 'sha512' | 'sha256' | 'sha1'; expected: Buffer },
): Promise<void> {
  if (r.status === 200 || r.status === 0) {
    assert.equal(r.complete, false, 'the tampered body must not end cleanly')
    assert.ok(r.body.length < sent.length, `got ${r.body.length} of ${sent.length} bytes`)
    assert.deepEqual(r.body, sent.subarray(0, r.body.length), 'what arrived is the start of what the upstream sent')
  } else assert.equal(r.status, 502)
  await waitForFills(proxy)
  assert.equal(await proxy.mirror.store.lookup(key), undefined, 'not stored')
  assert.deepEqual(await tempFilesIn(proxy.cacheDir), [], 'no temp file left')
  const warned = proxy.logs.filter((l) => l.msg === MISMATCH)
  assert.equal(warned.length, 1, 'one warn line')
  const line = warned[0] as Record<string, unknown>
  assert.equal(line.level, WARN)
  assert.equal(line.key, key)
  assert.equal(line.algorithm, check.algorithm)
  assert.equal(line.expected, check.expected.toString('hex'))
  assert.equal(line.actual, digest(check.algorithm, sent).toString('hex'))
  assert.equal(proxy.logs.filter((l) => l.msg === 'upstream body failed; nothing stored').length, 0, 'not reported as an upstream failure')
  const health = await getHealth<Health>(proxy)
  assert.equal(health.integrity.failed, 1)
  for (const route of health.routes) for (const u of route.upstreams) assert.equal(u.state, 'up', `${u.url} stays in rotation`)
}

/** A complete body, equal to `body`. */
function assertWhole(r: Fetched, body: Buffer, what: string): void {
  assert.equal(r.status, 200, what)
  assert.equal(r.complete, true, `${what}: complete`)
  assert.ok(r.body.equals(body), `${what}: the right bytes`)
}

/** The correct file is fetched again, stored and served complete; the next request is a hit. */
async function assertStoredAfterwards(proxy: Proxy, origin: Origin, path: string, originPath: string, body: Buffer): Promise<void> {
  const before = origin.count(originPath)
  assertWhole(await get(proxy.url(path)), body, 'the correct file')
  assert.equal(origin.count(originPath), before + 1, 'fetched again')
  await waitForFills(proxy)
  const hit = await get(proxy.url(path))
  assertWhole(hit, body, 'the stored file')
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  assert.equal(origin.count(originPath), before + 1, 'a hit')
  assert.equal((await getHealth<Health>(proxy)).integrity.passed, 1)
}

// ---------------------------------------------------------------------------------------------
// npm

interface NpmVersion {
  readonly version: string
  readonly tarball: Buffer
  /** Publish only `shasum` (sha1), as very old packages do. */
  readonly shasumOnly?: boolean
}

/**
 * A package document listing `versions` among `padding` decoys (each with its own digests), so the
 * one searched for sits in the middle of a large document and neighbours' digests are near it.
 */
function npmDocument(base: string, name: string, versions: readonly NpmVersion[], padding = 200): Buffer {
  const all: Record<string, unknown> = {}
  const decoy = (i: number): unknown => ({
    name,
    version: `0.0.${i}`,
    description: 'a decoy version '.repeat(20),
    dist: {
      integrity: `sha512-${digest('sha512', Buffer.from(`decoy ${i}`)).toString('base64')}`,
      shasum: digest('sha1', Buffer.from(`decoy ${i}`)).toString('hex'),
      tarball: `${base}${name}/-/${name}-0.0.${i}.tgz`,
    },
  })
  for (let i = 0; i < padding / 2; i++) all[`0.0.${i}`] = decoy(i)
  for (const v of versions) {
    const dist: Record<string, unknown> = { shasum: digest('sha1', v.tarball).toString('hex') }
    dist.tarball = `${base}${name}/-/${name}-${v.version}.tgz`
    // After the tarball URL, with a nested object, as registries write it.
    if (v.shasumOnly !== true) dist.integrity = `sha512-${digest('sha512', v.tarball).toString('base64')}`
    dist.signatures = [{ keyid: 'SHA256:placeholder', sig: 'MEUCIQ' }]
    all[v.version] = { name, version: v.version, dist }
  }
  for (let i = padding / 2; i < padding; i++) all[`0.0.${i}`] = decoy(i)
  return Buffer.from(
    JSON.stringify({ name, 'dist-tags': { latest: versions[0]?.version }, versions: all, readme: 'read me '.repeat(5000) }),
  )
}

interface Setup {
  origin: Origin
  proxy: Proxy
  /** What the origin serves for the tarball. */
  served: Served
}

/** An npm route in front of an origin serving `pkg` (document and one tarball). */
async function startNpm(
  t: TestContext,
  good: Buffer,
  opts: { shasumOnly?: boolean; gzipDocument?: boolean; maxMemory?: string; maxDisk?: string; padding?: number } = {},
): Promise<Setup> {
  const served: Served = { body: good }
  let document: Buffer | undefined
  const origin = await startOrigin(t, (req, res) => {
    if (req.url === '/npm/pkg') {
      const headers = { 'content-type': 'application/json', 'cache-control': 'max-age=300' }
      if (opts.gzipDocument === true && /gzip/.test(String(req.headers['accept-encoding'] ?? ''))) {
        return sendBody(req, res, gzipSync(document as Buffer), {
          headers: { ...headers, 'content-encoding': 'gzip', vary: 'Accept-Encoding' },
        })
      }
      return sendBody(req, res, document as Buffer, { headers })
    }
    if (req.url === '/npm/pkg/-/pkg-1.0.0.tgz') return sendServed(req, res, served)
    return sendBody(req, res, Buffer.from('not here\n'), { status: 404 })
  })
  document = npmDocument(
    `${origin.url}/npm/`,
    'pkg',
    [{ version: '1.0.0', tarball: good, shasumOnly: opts.shasumOnly === true }],
    opts.padding,
  )
  const settings = { routes: [{ prefix: '/npm/', upstreams: [`${origin.url}/npm/`], profile: 'npm' }] }
  const proxy = await startConfiguredProxy(t, settings, {
    ...(opts.maxMemory === undefined ? {} : { maxMemory: opts.maxMemory }),
    ...(opts.maxDisk === undefined ? {} : { maxDisk: opts.maxDisk }),
  })
  return { origin, proxy, served }
}

/** Fetches and caches the package document through the mirror. */
async function cacheNpmDocument(proxy: Proxy, headers: Record<string, string> = {}): Promise<void> {
  const doc = await get(proxy.url('/npm/pkg'), { headers })
  assert.equal(doc.status, 200)
  assert.equal(doc.complete, true)
  await waitForFills(proxy)
}

const TARBALL = '/npm/pkg/-/pkg-1.0.0.tgz'

test('npm: a tampered 2 MiB tarball is cut short for the client following it, not stored, logged and counted; the correct one is then stored', async (t) => {
  const good = makeBody(2 * MiB, 11)
  const { origin, proxy, served } = await startNpm(t, good)
  await cacheNpmDocument(proxy)

  const bad = tamper(good)
  served.body = bad
  served.halfway = gate(t)
  const r = await getWhileFilling(proxy, TARBALL, served)
  await assertRefused(proxy, r, bad, TARBALL, { algorithm: 'sha512', expected: digest('sha512', good) })
  assert.equal(origin.count(TARBALL), 1)

  served.body = good
  served.halfway = undefined
  await assertStoredAfterwards(proxy, origin, TARBALL, TARBALL, good)
})

test('npm: a small tarball checked against dist.shasum (sha1) is never sent, even in part, when tampered', async (t) => {
  const good = makeBody(3 * KiB, 12)
  const { origin, proxy, served } = await startNpm(t, good, { shasumOnly: true })
  await cacheNpmDocument(proxy)

  const bad = tamper(good)
  served.body = bad
  const r = await getHeldBack(proxy.url(TARBALL))
  assert.equal(r.body.length, 0, 'one chunk: all of it was held back')
  await assertRefused(proxy, r, bad, TARBALL, { algorithm: 'sha1', expected: digest('sha1', good) })

  served.body = good
  await assertStoredAfterwards(proxy, origin, TARBALL, TARBALL, good)
})

test('npm: a correct tarball passes and is stored; the document was read from disk, and from its gzip-coded variant', async (t) => {
  const good = makeBody(300 * KiB, 13)
  // A 1 MiB memory tier keeps bodies up to 64 KiB: the document (about 200 KiB gzip-coded, with
  // 2,000 versions' digests) is read from its file, in chunks.
  const { origin, proxy } = await startNpm(t, good, { gzipDocument: true, maxMemory: '1MiB', padding: 2000 })
  // Stored as a variant (Vary: Accept-Encoding) the tarball's request does not select.
  await cacheNpmDocument(proxy, { 'accept-encoding': 'gzip' })
  const full = '/npm/pkg\u0000npm-full'
  const { generation } = await proxy.mirror.store.varyFor(full)
  const stored = await proxy.mirror.store.lookup(variantKey(full, generation, { 'accept-encoding': 'gzip' }))
  assert.equal(stored?.meta.headers.includes('gzip'), true, 'the gzip-coded variant is stored')
  assert.equal(stored?.body, undefined, 'its body is on disk only')
  assertWhole(await get(proxy.url(TARBALL)), good, 'first')
  await waitForFills(proxy)
  assertWhole(await get(proxy.url(TARBALL)), good, 'second')
  assert.equal(origin.count(TARBALL), 1, 'stored')
  const health = await getHealth<Health>(proxy)
  assert.deepEqual(health.integrity, { passed: 1, failed: 0, unchecked: 0 })
})

test('npm: without a cached package document the tarball is not checked and is stored as before', async (t) => {
  const good = makeBody(100 * KiB, 14)
  const { origin, proxy, served } = await startNpm(t, good)
  // Nobody asked for the document: even a tampered tarball cannot be told from a good one.
  served.body = tamper(good)
  assertWhole(await get(proxy.url(TARBALL)), served.body, 'first')
  await waitForFills(proxy)
  assertWhole(await get(proxy.url(TARBALL)), served.body, 'second')
  assert.equal(origin.count(TARBALL), 1)
  assert.deepEqual((await getHealth<Health>(proxy)).integrity, { passed: 0, failed: 0, unchecked: 1 })
  assert.equal(proxy.logs.filter((l) => l.msg === MISMATCH).length, 0)
})

test('npm: a chunked tampered tarball never gets its last chunk', async (t) => {
  const good = makeBody(1 * MiB, 15)
  const { proxy, served } = await startNpm(t, good)
  await cacheNpmDocument(proxy)
  const bad = tamper(good)
  served.body = bad
  served.chunked = true
  served.halfway = gate(t)
  const r = await getWhileFilling(proxy, TARBALL, served)
  assert.equal(r.headers['transfer-encoding'], 'chunked')
  await assertRefused(proxy, r, bad, TARBALL, { algorithm: 'sha512', expected: digest('sha512', good) })
})

test('npm: a range request joining a checked fill waits for the check: a 502 on a mismatch, never the bytes it asked for', async (t) => {
  const good = makeBody(1 * MiB, 17)
  const { origin, proxy, served } = await startNpm(t, good)
  await cacheNpmDocument(proxy)
  const bad = tamper(good)
  served.body = bad
  served.halfway = gate(t)
  const first = await getFirstBytes(proxy.url(TARBALL), 64 * KiB)
  // The fill already has bytes 0-99 (and knows the length), yet they are not served before the check.
  const ranged = get(proxy.url(TARBALL), { headers: { range: 'bytes=0-99' } })
  await until(() => proxy.mirror.fills.counters.joined === 1, 'the range request to join the fill')
  served.halfway.open()
  await assertRefused(proxy, await first.rest(), bad, TARBALL, { algorithm: 'sha512', expected: digest('sha512', good) })
  const range = await ranged
  assert.equal(range.status, 502, `the range: ${range.status} ${range.body.toString()}`)
  assert.match(range.body.toString(), /integrity check failed/)
  assert.equal(origin.count(TARBALL), 1, 'the range client was not served from a fetch of its own')

  // The correct file: the range is answered from the stored entry once it is checked.
  served.body = good
  served.halfway = gate(t)
  const again = await getFirstBytes(proxy.url(TARBALL), 64 * KiB)
  const part = get(proxy.url(TARBALL), { headers: { range: 'bytes=0-99' } })
  await until(() => proxy.mirror.fills.counters.joined === 2, 'the second range request to join the fill')
  served.halfway.open()
  assertWhole(await again.rest(), good, 'the follower')
  const partial = await part
  assert.equal(partial.status, 206)
  assert.ok(partial.body.equals(good.subarray(0, 100)))
})

test('npm: a chunked tarball that outgrows the disk budget is relayed, and still checked before its last bytes', async (t) => {
  const good = makeBody(2 * MiB, 16)
  const { origin, proxy, served } = await startNpm(t, good, { maxDisk: '1MiB' })
  await cacheNpmDocument(proxy)
  const bad = tamper(good)
  served.body = bad
  served.chunked = true
  served.halfway = gate(t)
  const r = await getWhileFilling(proxy, TARBALL, served)
  await assertRefused(proxy, r, bad, TARBALL, { algorithm: 'sha512', expected: digest('sha512', good) })

  // The correct file: every byte relayed from memory, in order, complete; too large to store.
  served.body = good
  served.halfway = gate(t)
  assertWhole(await getWhileFilling(proxy, TARBALL, served), good, 'relayed')
  assert.ok(
    proxy.logs.some((l) => l.msg === 'cache write stopped; passing the response through uncached'),
    'relayed',
  )
  assert.equal((await getHealth<Health>(proxy)).integrity.passed, 1)
  assert.equal(origin.count(TARBALL), 2)
})

// ---------------------------------------------------------------------------------------------
// apt

const POOL_FILE = 'pool/main/h/hello/hello_1.0-1_amd64.deb'
const PACKAGES_GZ = '/debian/dists/stable/main/binary-amd64/Packages.gz'
const PACKAGES_XZ = '/debian/dists/stable/main/binary-amd64/Packages.xz'

/** A Packages index: `target` among many other stanzas, each with its own SHA256. */
function packagesIndex(targetSha256: Buffer, poolFile = POOL_FILE): Buffer {
  const stanza = (name: string, filename: string, sha256: string): string =>
    `Package: ${name}\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: Someone <someone@example.org>\nFilename: ${filename}\n` +
    `Size: 1000\nMD5sum: ${'0'.repeat(32)}\nSHA256: ${sha256}\nDescription: a package\n ${'with a long description '.repeat(10)}\n\n`
  let text = ''
  for (let i = 0; i < 1500; i++)
    text += stanza(`pkg${i}`, `pool/main/p/pkg${i}/pkg${i}_1.0-1_amd64.deb`, digest('sha256', Buffer.from(`${i}`)).toString('hex'))
  text += stanza('hello', poolFile, targetSha256.toString('hex'))
  for (let i = 1500; i < 3000; i++)
    text += stanza(`pkg${i}`, `pool/main/p/pkg${i}/pkg${i}_1.0-1_amd64.deb`, digest('sha256', Buffer.from(`${i}`)).toString('hex'))
  return Buffer.from(text)
}

async function startApt(t: TestContext, good: Buffer, byHash?: Served, poolFile = POOL_FILE): Promise<Setup> {
  const served: Served = { body: good }
  const text = packagesIndex(digest('sha256', good), poolFile)
  const index = gzipSync(text)
  const xz = execFileSync('xz', ['-c'], { input: text })
  const origin = await startOrigin(t, (req, res) => {
    if (req.url === PACKAGES_GZ) return sendBody(req, res, index, { headers: { 'content-type': 'application/gzip', etag: '"i1"' } })
    if (req.url === PACKAGES_XZ) return sendBody(req, res, xz, { headers: { 'content-type': 'application/x-xz' } })
    if (req.url === `/debian/${POOL_FILE}` || req.url === `/debian/${encodeURI(poolFile).replace(/\+/g, '%2b')}`)
      return sendServed(req, res, served)
    if (byHash !== undefined && /\/by-hash\/SHA256\//.test(req.url ?? '')) return sendServed(req, res, byHash)
    return sendBody(req, res, Buffer.from('not here\n'), { status: 404 })
  })
  const settings = { routes: [{ prefix: '/debian/', upstreams: [`${origin.url}/debian/`], profile: 'debian' }] }
  return { origin, proxy: await startConfiguredProxy(t, settings), served }
}

test('apt: a tampered 2 MiB pool package is refused against the SHA256 of the cached Packages.gz; the correct one is then stored', async (t) => {
  const good = makeBody(2 * MiB, 21)
  const { origin, proxy, served } = await startApt(t, good)
  const index = await get(proxy.url(PACKAGES_GZ))
  assert.equal(index.status, 200)
  await waitForFills(proxy)

  const bad = tamper(good)
  served.body = bad
  served.halfway = gate(t)
  const r = await getWhileFilling(proxy, `/debian/${POOL_FILE}`, served)
  await assertRefused(proxy, r, bad, `/debian/${POOL_FILE}`, { algorithm: 'sha256', expected: digest('sha256', good) })

  served.body = good
  served.halfway = undefined
  await assertStoredAfterwards(proxy, origin, `/debian/${POOL_FILE}`, `/debian/${POOL_FILE}`, good)
})

test('apt: a tampered pool package is refused against the SHA256 of a cached Packages.xz (what apt fetches), unpacked by the system xz; its name percent-encoded as apt asks for it', async (t) => {
  const good = makeBody(256 * KiB, 25)
  const plus = 'pool/main/h/hello/hello_1.0+dfsg-1_amd64.deb'
  const asked = `/debian/pool/main/h/hello/hello_1.0%2bdfsg-1_amd64.deb`
  const { origin, proxy, served } = await startApt(t, good, undefined, plus)
  assert.equal((await get(proxy.url(PACKAGES_XZ))).status, 200)
  await waitForFills(proxy)

  const bad = tamper(good)
  served.body = bad
  const r = await getHeldBack(proxy.url(asked))
  await assertRefused(proxy, r, bad, asked, { algorithm: 'sha256', expected: digest('sha256', good) })
  served.body = good
  await assertStoredAfterwards(proxy, origin, asked, asked, good)
})

test('apt: a by-hash file must hash to the digest its path names', async (t) => {
  const good = makeBody(40 * KiB, 22)
  const byHash: Served = { body: tamper(good) }
  const { origin, proxy } = await startApt(t, makeBody(KiB, 23), byHash)
  const path = `/debian/dists/stable/main/binary-amd64/by-hash/SHA256/${digest('sha256', good).toString('hex')}`
  const r = await getHeldBack(proxy.url(path))
  await assertRefused(proxy, r, byHash.body, path, { algorithm: 'sha256', expected: digest('sha256', good) })
  byHash.body = good
  await assertStoredAfterwards(proxy, origin, path, path, good)
})

test('apt: a pool package with no cached index is not checked and is stored as before', async (t) => {
  const good = makeBody(64 * KiB, 24)
  const { origin, proxy } = await startApt(t, good)
  assertWhole(await get(proxy.url(`/debian/${POOL_FILE}`)), good, 'first')
  await waitForFills(proxy)
  assertWhole(await get(proxy.url(`/debian/${POOL_FILE}`)), good, 'second')
  assert.equal(origin.count(`/debian/${POOL_FILE}`), 1)
  assert.deepEqual((await getHealth<Health>(proxy)).integrity, { passed: 0, failed: 0, unchecked: 1 })
})

// ---------------------------------------------------------------------------------------------
// PyPI

const WHEEL = 'foo_bar-1.0-py3-none-any.whl'
const WHEEL_PATH = `/files/packages/ab/cd/${WHEEL}`

/** An index route (/pypi/: project pages) and a files route (/files/), both with the pypi profile. */
async function startPypi(t: TestContext, good: Buffer): Promise<Setup> {
  const served: Served = { body: good }
  const sha = digest('sha256', good).toString('hex')
  let base = ''
  const origin = await startOrigin(t, (req, res) => {
    const page = { 'cache-control': 'max-age=60' }
    if (req.url === '/pypi/simple/foo-bar/') {
      if (/vnd\.pypi\.simple\.v1\+json/.test(String(req.headers.accept ?? ''))) {
        const files = [
          { filename: 'foo_bar-0.9.tar.gz', url: `${base}/files/packages/00/11/foo_bar-0.9.tar.gz`, hashes: { sha256: 'a'.repeat(64) } },
          { hashes: { sha256: sha }, filename: WHEEL, url: `${base}${WHEEL_PATH}`, 'requires-python': '>=3.8' },
        ]
        return sendBody(req, res, Buffer.from(JSON.stringify({ meta: { 'api-version': '1.0' }, name: 'foo-bar', files })), {
          headers: { ...page, 'content-type': 'application/vnd.pypi.simple.v1+json' },
        })
      }
      const html =
        `<!DOCTYPE html><html><body><h1>Links for foo-bar</h1>\n` +
        `<a href="${base}/files/packages/00/11/foo_bar-0.9.tar.gz#sha256=${'a'.repeat(64)}">foo_bar-0.9.tar.gz</a><br/>\n` +
        `<a href="${base}${WHEEL_PATH}#sha256=${sha}" data-requires-python="&gt;=3.8">${WHEEL}</a><br/>\n</body></html>\n`
      return sendBody(req, res, Buffer.from(html), { headers: { ...page, 'content-type': 'text/html' } })
    }
    if (req.url === WHEEL_PATH) return sendServed(req, res, served)
    return sendBody(req, res, Buffer.from('not here\n'), { status: 404 })
  })
  base = origin.url
  const settings = {
    routes: [
      { prefix: '/pypi/', upstreams: [`${origin.url}/pypi/`], profile: 'pypi' },
      { prefix: '/files/', upstreams: [`${origin.url}/files/`], profile: 'pypi' },
    ],
  }
  return { origin, proxy: await startConfiguredProxy(t, settings), served }
}

test('pypi: a tampered 2 MiB wheel is refused against the #sha256= of the cached simple page; the correct one is then stored', async (t) => {
  const good = makeBody(2 * MiB, 31)
  const { origin, proxy, served } = await startPypi(t, good)
  assert.equal((await get(proxy.url('/pypi/simple/foo-bar/'))).status, 200)
  await waitForFills(proxy)

  const bad = tamper(good)
  served.body = bad
  served.halfway = gate(t)
  const r = await getWhileFilling(proxy, WHEEL_PATH, served)
  await assertRefused(proxy, r, bad, WHEEL_PATH, { algorithm: 'sha256', expected: digest('sha256', good) })

  served.body = good
  served.halfway = undefined
  await assertStoredAfterwards(proxy, origin, WHEEL_PATH, WHEEL_PATH, good)
})

test('pypi: a small wheel is checked against hashes.sha256 of the cached PEP 691 JSON page', async (t) => {
  const good = makeBody(5 * KiB, 32)
  const { origin, proxy, served } = await startPypi(t, good)
  const page = await get(proxy.url('/pypi/simple/foo-bar/'), { headers: { accept: 'application/vnd.pypi.simple.v1+json' } })
  assert.equal(page.status, 200)
  await waitForFills(proxy)

  const bad = tamper(good)
  served.body = bad
  await assertRefused(proxy, await getHeldBack(proxy.url(WHEEL_PATH)), bad, WHEEL_PATH, {
    algorithm: 'sha256',
    expected: digest('sha256', good),
  })
  served.body = good
  await assertStoredAfterwards(proxy, origin, WHEEL_PATH, WHEEL_PATH, good)
})

test('pypi: a correct wheel passes and is stored', async (t) => {
  const good = makeBody(200 * KiB, 33)
  const { origin, proxy } = await startPypi(t, good)
  assert.equal((await get(proxy.url('/pypi/simple/foo-bar/'))).status, 200)
  await waitForFills(proxy)
  assertWhole(await get(proxy.url(WHEEL_PATH)), good, 'first')
  await waitForFills(proxy)
  assertWhole(await get(proxy.url(WHEEL_PATH)), good, 'second')
  assert.equal(origin.count(WHEEL_PATH), 1)
  assert.deepEqual((await getHealth<Health>(proxy)).integrity, { passed: 1, failed: 0, unchecked: 0 })
})
