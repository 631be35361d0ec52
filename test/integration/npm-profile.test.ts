// test/integration/npm-profile.test.ts
// The npm profile against a local registry (test/helpers/npm-registry.ts), as a client sees it:
// package documents rewritten so tarball URLs point at the mirror (the Host the client used, or
// --public-url), full and abbreviated documents kept apart, scoped names in both spellings,
// tarballs immutable, search and the like passed through, the derived ETag answered with 304,
// gzip documents coded again for gzip clients, and a 20 MB document rewritten whole.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { gunzipSync } from 'node:zlib'
import { cacheStatus, get, rawRequest, type Fetched } from '../helpers/client.js'
import { fakeClock } from '../helpers/clock.js'
import { startEchoOrigin } from '../helpers/origin.js'
import {
  ABBREVIATED,
  NPM_INSTALL_ACCEPT,
  packageOf,
  startNpmRegistry,
  type NpmRegistry,
  type PackageSpec,
  type RegistryOptions,
} from '../helpers/npm-registry.js'
import { startConfiguredProxy, startProxy, type Proxy, type ProxyOptions } from '../helpers/proxy.js'

const PACKAGES: readonly PackageSpec[] = [
  packageOf('leaf-pkg', '1.0.0'),
  { name: 'multi-pkg', versions: [{ version: '1.0.0' }, { version: '1.1.0', dependencies: { 'leaf-pkg': '^1.0.0' } }] },
  packageOf('@scope/app-lib', '2.1.0', { 'leaf-pkg': '^1.0.0' }),
]

interface VersionEntry {
  version: string
  dist: { tarball: string; integrity: string; shasum: string }
}
interface PackageDocument {
  name: string
  versions: Record<string, VersionEntry>
  readme?: string
  time?: Record<string, string>
  modified?: string
  homepage?: string
}

async function startRegistryAndMirror(
  t: TestContext,
  registryOptions: RegistryOptions = {},
  proxyOptions: ProxyOptions = {},
  packages: readonly PackageSpec[] = PACKAGES,
): Promise<{ registry: NpmRegistry; proxy: Proxy }> {
  const registry = await startNpmRegistry(t, packages, registryOptions)
  const proxy = await startProxy(t, { upstream: `${registry.url}/`, profile: 'npm', ...proxyOptions })
  return { registry, proxy }
}

function documentOf(r: Fetched): PackageDocument {
  assert.equal(r.status, 200, r.body.toString().slice(0, 200))
  const text = r.headers['content-encoding'] === 'gzip' ? gunzipSync(r.body).toString() : r.body.toString()
  return JSON.parse(text) as PackageDocument
}

/** Every version's tarball URL is `base` + the registry's path for it, and nothing names the registry. */
function assertTarballsAt(doc: PackageDocument, registry: NpmRegistry, base: string): void {
  const entries = Object.values(doc.versions)
  assert.ok(entries.length > 0, 'the document has versions')
  for (const entry of entries) {
    const tarball = registry.tarballs.get(`${doc.name}@${entry.version}`)
    assert.ok(tarball !== undefined, `${doc.name}@${entry.version} is a tarball of the registry`)
    assert.equal(entry.dist.tarball, base + tarball.path)
    assert.equal(entry.dist.integrity, tarball.integrity)
  }
  assert.ok(!JSON.stringify(doc).includes(registry.url), 'no URL on the registry is left')
}

/** The ETag the mirror derives from the upstream's for a document served with this base. */
function derivedEtag(upstreamEtag: string, base: string, identity = false): string {
  const tag = `urls-v1.${createHash('sha256').update(base).digest('hex').slice(0, 8)}${identity ? '.identity' : ''}`
  return `${upstreamEtag.slice(0, -1)}+${tag}"`
}

function upstreamEtag(registry: NpmRegistry, name: string): string {
  return `"${createHash('sha1').update(registry.fullDocument(name)).digest('hex').slice(0, 16)}"`
}

test('a package document points its tarball URLs at the mirror, with its rewritten length and a derived ETag', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t)
  const base = proxy.url('')

  const first = await get(proxy.url('/multi-pkg'))
  const doc = documentOf(first)
  assertTarballsAt(doc, registry, base)
  assert.equal(doc.homepage, `${base}/-/web/detail/multi-pkg`, 'every upstream URL is rewritten, not only tarballs')
  // A small document is rewritten whole once stored: the response says its length.
  assert.equal(first.headers['content-length'], String(first.body.length))
  assert.equal(first.headers['etag'], derivedEtag(upstreamEtag(registry, 'multi-pkg'), base))
  assert.match(cacheStatus(first), /fwd=miss; stored/)

  // The cache keeps the upstream's bytes: a hit is rewritten the same way.
  const second = await get(proxy.url('/multi-pkg'))
  assert.match(cacheStatus(second), /^cachemir; hit/)
  assert.deepEqual(documentOf(second), doc)
  assert.equal(registry.count('/multi-pkg'), 1)

  // The rewritten URL serves the registry's tarball, which matches the document's integrity.
  const tarballUrl = doc.versions['1.1.0']?.dist.tarball ?? ''
  const tarball = await get(tarballUrl)
  assert.equal(tarball.status, 200)
  assert.equal(`sha512-${createHash('sha512').update(tarball.body).digest('base64')}`, doc.versions['1.1.0']?.dist.integrity)
})

test('each client gets the Host it used in the tarball URLs, never an earlier client’s', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t)

  const first = await get(proxy.url('/leaf-pkg'))
  assertTarballsAt(documentOf(first), registry, proxy.url(''))
  const other = await get(proxy.url('/leaf-pkg'), { headers: { host: 'npm.mirror.test:4873' } })
  assertTarballsAt(documentOf(other), registry, 'http://npm.mirror.test:4873')
  assert.match(cacheStatus(other), /^cachemir; hit/)
  const again = await get(proxy.url('/leaf-pkg'))
  assertTarballsAt(documentOf(again), registry, proxy.url(''))
  assert.equal(registry.count('/leaf-pkg'), 1)

  // The bodies differ, so do the validators: one Host's ETag never gets a 304 under another.
  assert.notEqual(first.headers['etag'], other.headers['etag'])
  const crossed = await get(proxy.url('/leaf-pkg'), {
    headers: { host: 'npm.mirror.test:4873', 'if-none-match': first.headers['etag'] ?? '' },
  })
  assert.equal(crossed.status, 200)
  assertTarballsAt(documentOf(crossed), registry, 'http://npm.mirror.test:4873')
})

test('with --public-url the tarball URLs use it, whatever Host the client sent', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t, {}, { publicUrl: 'https://npm.mirror.example.org/registry/' })

  const plain = await get(proxy.url('/multi-pkg'))
  assertTarballsAt(documentOf(plain), registry, 'https://npm.mirror.example.org/registry')
  const other = await get(proxy.url('/multi-pkg'), { headers: { host: 'elsewhere.test' } })
  assertTarballsAt(documentOf(other), registry, 'https://npm.mirror.example.org/registry')
})

test('a config-file route with "profile": "npm" rewrites to its own prefix and leaves other routes alone', async (t) => {
  const registry = await startNpmRegistry(t, PACKAGES)
  const files = await startEchoOrigin(t, 'files')
  const proxy = await startConfiguredProxy(t, {
    routes: [
      { prefix: '/npm/', upstreams: [`${registry.url}/`], profile: 'npm' },
      { prefix: '/files/', upstreams: [`${files.url}/`] },
    ],
  })

  const doc = documentOf(await get(proxy.url('/npm/@scope%2fapp-lib')))
  assertTarballsAt(doc, registry, proxy.url('/npm'))
  const tarball = await get(doc.versions['2.1.0']?.dist.tarball ?? '')
  assert.equal(tarball.status, 200)
  assert.deepEqual(tarball.body, registry.tarballs.get('@scope/app-lib@2.1.0')?.bytes)
  assert.deepEqual(
    registry.requests.map((r) => r.url),
    ['/@scope%2fapp-lib', '/@scope/app-lib/-/app-lib-2.1.0.tgz'],
  )
  // A route without the profile has no rewrite (and no encoded '/' allowance).
  const echoed = await get(proxy.url('/files/leaf-pkg'))
  assert.equal(echoed.body.toString(), 'files /leaf-pkg')
  assert.notEqual(echoed.headers['content-length'], undefined)
  const refused = await rawRequest(proxy.port, `GET /files/@scope%2fapp-lib HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  assert.match(refused, /^HTTP\/1\.1 400 /)
})

test('full and abbreviated documents are cached apart, even from an upstream that declares no Vary', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t, { validators: 'none' })

  const abbreviated = await get(proxy.url('/multi-pkg'), { headers: { accept: NPM_INSTALL_ACCEPT } })
  const full = await get(proxy.url('/multi-pkg'), { headers: { accept: 'application/json' } })
  const bare = await get(proxy.url('/multi-pkg'))
  assert.equal(registry.count('/multi-pkg'), 2, 'one upstream request for each form')
  assert.ok((registry.requests[0]?.headers.accept ?? '').includes(ABBREVIATED), 'the abbreviated fill asked for the abbreviated form')
  assert.equal(registry.requests[1]?.headers.accept, 'application/json')

  for (const [what, r, isAbbreviated] of [
    ['abbreviated', abbreviated, true],
    ['full', full, false],
    ['no Accept', bare, false],
  ] as const) {
    const doc = documentOf(r)
    assert.equal(r.headers['content-type'], isAbbreviated ? ABBREVIATED : 'application/json', what)
    // The mirror negotiated by Accept, so it says so, for the caches downstream (npm's own among them).
    assert.equal(r.headers['vary'], 'Accept', what)
    assert.equal(doc.readme !== undefined, !isAbbreviated, `${what}: readme only in the full document`)
    assert.equal(doc.modified !== undefined, isAbbreviated, `${what}: modified only in the abbreviated document`)
    assertTarballsAt(doc, registry, proxy.url(''))
  }
  assert.match(cacheStatus(bare), /^cachemir; hit/)

  // Later requests are hits, each of its own form.
  const again = await get(proxy.url('/multi-pkg'), { headers: { accept: NPM_INSTALL_ACCEPT } })
  assert.match(cacheStatus(again), /^cachemir; hit/)
  assert.equal(documentOf(again).modified, '2024-06-01T00:00:00.000Z')
  assert.equal(registry.count('/multi-pkg'), 2)
})

test('an upstream that declares Vary: Accept keeps its Vary as it was, and its forms apart too', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t, { vary: 'Accept-Encoding, Accept' })

  for (let i = 0; i < 2; i++) {
    const abbreviated = await get(proxy.url('/leaf-pkg'), { headers: { accept: NPM_INSTALL_ACCEPT, 'accept-encoding': 'gzip' } })
    const full = await get(proxy.url('/leaf-pkg'), { headers: { accept: 'application/json', 'accept-encoding': 'gzip' } })
    assert.equal(abbreviated.headers['vary'], 'Accept-Encoding, Accept')
    assert.equal(full.headers['vary'], 'Accept-Encoding, Accept')
    assert.equal(documentOf(abbreviated).modified, '2024-06-01T00:00:00.000Z')
    assert.equal(documentOf(full).readme, '# leaf-pkg\n')
  }
  assert.equal(registry.count('/leaf-pkg'), 2)
})

test('a scoped package answers under @scope%2fname (either case) and @scope/name; other encoded separators stay refused', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t)

  for (const path of ['/@scope%2fapp-lib', '/@scope%2Fapp-lib', '/@scope/app-lib']) {
    const doc = documentOf(await get(proxy.url(path)))
    assert.equal(doc.name, '@scope/app-lib', path)
    assertTarballsAt(doc, registry, proxy.url(''))
    assert.equal(doc.versions['2.1.0']?.dist.tarball, proxy.url('/@scope/app-lib/-/app-lib-2.1.0.tgz'))
  }
  // The target reaches the upstream as the client spelled it.
  assert.deepEqual(
    registry.requests.map((r) => r.url),
    ['/@scope%2fapp-lib', '/@scope%2Fapp-lib', '/@scope/app-lib'],
  )
  for (const target of [
    '/@scope%2f..',
    '/@scope%2f..%2fleaf-pkg',
    '/@scope%2fapp-lib%2fx',
    '/@%2e%2e%2fleaf-pkg',
    '/leaf-pkg%2f-',
    '/@scope%2f%2e%2e',
  ]) {
    const raw = await rawRequest(proxy.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nConnection: close\r\n\r\n`)
    assert.match(raw, /^HTTP\/1\.1 400 /, target)
  }
  assert.equal(registry.count(), 3, 'no refused target reached the registry')
})

test('a tarball is immutable: the second fetch is a hit, a year later too, even without validators or Cache-Control', async (t) => {
  const clock = fakeClock()
  const { registry, proxy } = await startRegistryAndMirror(t, { validators: 'none' }, { now: clock.now })
  const tarball = registry.tarballs.get('leaf-pkg@1.0.0')
  assert.ok(tarball !== undefined)

  const first = await get(proxy.url(tarball.path))
  assert.match(cacheStatus(first), /fwd=miss; stored/)
  clock.set(400 * 24 * 3600_000)
  const second = await get(proxy.url(tarball.path), { headers: { 'accept-encoding': 'gzip' } })
  assert.match(cacheStatus(second), /^cachemir; hit/)
  for (const r of [first, second]) {
    assert.deepEqual(r.body, tarball.bytes)
    assert.equal(r.headers['content-length'], String(tarball.bytes.length), 'tarballs are not transformed')
    assert.equal(r.headers['vary'], undefined)
    assert.equal(r.headers['content-encoding'], undefined)
  }
  assert.equal(registry.count(tarball.path), 1)
})

test('a document is fresh for 5 minutes, then revalidated with the upstream’s own validator', async (t) => {
  const clock = fakeClock()
  const { registry, proxy } = await startRegistryAndMirror(t, { validators: 'etag' }, { now: clock.now })
  const base = proxy.url('')

  await get(proxy.url('/leaf-pkg'))
  clock.set(4 * 60_000)
  assert.match(cacheStatus(await get(proxy.url('/leaf-pkg'))), /^cachemir; hit/)
  assert.equal(registry.count('/leaf-pkg'), 1)

  clock.set(6 * 60_000)
  const revalidated = await get(proxy.url('/leaf-pkg'))
  assert.match(cacheStatus(revalidated), /fwd=stale; fwd-status=304/)
  assertTarballsAt(documentOf(revalidated), registry, base)
  assert.equal(registry.count('/leaf-pkg'), 2)
  assert.equal(registry.requests.at(-1)?.headers['if-none-match'], upstreamEtag(registry, 'leaf-pkg'), 'the upstream sees its own ETag')
})

test('without validators or Cache-Control a document is still fresh for 5 minutes, then fetched again', async (t) => {
  const clock = fakeClock()
  const { registry, proxy } = await startRegistryAndMirror(t, { validators: 'none' }, { now: clock.now })

  await get(proxy.url('/leaf-pkg'))
  clock.set(4 * 60_000)
  assert.match(cacheStatus(await get(proxy.url('/leaf-pkg'))), /^cachemir; hit/)
  assert.equal(registry.count('/leaf-pkg'), 1)
  clock.set(6 * 60_000)
  const refetched = await get(proxy.url('/leaf-pkg'))
  assert.match(cacheStatus(refetched), /fwd=stale; fwd-status=200; stored/)
  assertTarballsAt(documentOf(refetched), registry, proxy.url(''))
  assert.equal(registry.count('/leaf-pkg'), 2)
})

test('with the registry down, a stale document is still served, rewritten', async (t) => {
  const clock = fakeClock()
  const { registry, proxy } = await startRegistryAndMirror(t, { validators: 'none' }, { now: clock.now })

  await get(proxy.url('/@scope%2fapp-lib'), { headers: { accept: NPM_INSTALL_ACCEPT, 'accept-encoding': 'gzip' } })
  await registry.close()
  clock.set(60 * 60_000)
  const stale = await get(proxy.url('/@scope%2fapp-lib'), { headers: { accept: NPM_INSTALL_ACCEPT, 'accept-encoding': 'gzip' } })
  assert.match(cacheStatus(stale), /fwd=stale; detail=stale-if-error/)
  assertTarballsAt(documentOf(stale), registry, proxy.url(''))
})

test('search and other registry endpoints pass through uncached, whatever their Cache-Control says', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t)

  for (const path of ['/-/v1/search?text=leaf', '/-/whoami']) {
    const first = await get(proxy.url(path))
    const second = await get(proxy.url(path))
    assert.equal(registry.count(path), 2, path)
    for (const r of [first, second]) assert.match(cacheStatus(r), /fwd=bypass/, path)
  }
  const search = JSON.parse((await get(proxy.url('/-/v1/search?text=leaf'))).body.toString()) as {
    objects: { package: { name: string } }[]
  }
  assert.deepEqual(
    search.objects.map((o) => o.package.name),
    ['leaf-pkg'],
  )
})

test('a single version’s document and a request with credentials are rewritten too, and not cached', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t)

  for (const path of ['/multi-pkg/1.1.0', '/multi-pkg/latest', '/@scope%2fapp-lib/2.1.0', '/@scope/app-lib/latest']) {
    const r = await get(proxy.url(path))
    assert.equal(r.status, 200, path)
    const entry = JSON.parse(r.body.toString()) as VersionEntry & { name: string }
    assert.equal(entry.dist.tarball, proxy.url(registry.tarballs.get(`${entry.name}@${entry.version}`)?.path ?? '?'), path)
    assert.match(cacheStatus(r), /fwd=bypass/, path)
  }
  // npm sends its token on every request to a registry that needs one: the response is its own.
  for (let i = 0; i < 2; i++) {
    const withToken = await get(proxy.url('/leaf-pkg'), { headers: { authorization: 'Bearer npm-token' } })
    assertTarballsAt(documentOf(withToken), registry, proxy.url(''))
    assert.match(cacheStatus(withToken), /fwd=bypass/)
  }
  assert.equal(registry.count('/leaf-pkg'), 2)
})

test('a client revalidating a stale document with the derived ETag gets 304 after the upstream’s 304', async (t) => {
  const clock = fakeClock()
  const { registry, proxy } = await startRegistryAndMirror(t, {}, { now: clock.now })

  const first = await get(proxy.url('/leaf-pkg'), { headers: { 'accept-encoding': 'gzip' } })
  clock.set(10 * 60_000)
  const again = await get(proxy.url('/leaf-pkg'), { headers: { 'accept-encoding': 'gzip', 'if-none-match': first.headers['etag'] ?? '' } })
  assert.equal(again.status, 304)
  assert.match(cacheStatus(again), /fwd=stale; fwd-status=304/)
  assert.equal(again.headers['etag'], first.headers['etag'])
  assert.equal(registry.count('/leaf-pkg'), 2)
  assert.equal(registry.requests[1]?.headers['if-none-match'], upstreamEtag(registry, 'leaf-pkg'))
})

test('If-None-Match with the derived ETag gets 304; with the upstream’s ETag the rewritten document', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t)

  const first = await get(proxy.url('/@scope%2fapp-lib'), { headers: { accept: NPM_INSTALL_ACCEPT } })
  const etag = first.headers['etag'] ?? ''
  assert.match(etag, /\+urls-v1\.[0-9a-f]{8}"$/)
  const notModified = await get(proxy.url('/@scope%2fapp-lib'), { headers: { accept: NPM_INSTALL_ACCEPT, 'if-none-match': etag } })
  assert.equal(notModified.status, 304)
  assert.equal(notModified.body.length, 0)
  assert.equal(notModified.headers['etag'], etag)

  const raw = `"${etag.slice(1).split('+')[0] ?? ''}"`
  const withRaw = await get(proxy.url('/@scope%2fapp-lib'), { headers: { accept: NPM_INSTALL_ACCEPT, 'if-none-match': raw } })
  assert.equal(withRaw.status, 200)
  assertTarballsAt(documentOf(withRaw), registry, proxy.url(''))
  assert.equal(registry.count('/@scope%2fapp-lib'), 1)
})

test('a gzip document is gzip to a gzip client and decoded for one without, both rewritten', async (t) => {
  const { registry, proxy } = await startRegistryAndMirror(t, { gzip: true })
  const base = proxy.url('')

  const gz = await get(proxy.url('/multi-pkg'), { headers: { 'accept-encoding': 'gzip, deflate' } })
  assert.equal(gz.headers['content-encoding'], 'gzip')
  assert.equal(gz.headers['vary'], 'Accept-Encoding, Accept')
  assert.equal(gz.headers['etag'], derivedEtag(upstreamEtag(registry, 'multi-pkg'), base))
  assertTarballsAt(JSON.parse(gunzipSync(gz.body).toString()) as PackageDocument, registry, base)
  assert.equal(registry.requests[0]?.headers['accept-encoding'], 'gzip, deflate')

  // The upstream sent gzip without Vary: the stored gzip body is decoded for this client.
  const plain = await get(proxy.url('/multi-pkg'), { headers: { 'accept-encoding': 'identity' } })
  assert.equal(plain.headers['content-encoding'], undefined)
  assert.equal(plain.headers['etag'], derivedEtag(upstreamEtag(registry, 'multi-pkg'), base, true))
  assertTarballsAt(JSON.parse(plain.body.toString()) as PackageDocument, registry, base)
  assert.equal(registry.count('/multi-pkg'), 1)
})

test('URLs cut across the upstream’s chunks are rewritten', async (t) => {
  // 7 bytes about every 2 ms: the mirror reads the document in pieces that cut every URL.
  const { registry, proxy } = await startRegistryAndMirror(t, { send: { chunkBytes: 7, bytesPerSecond: 3500 }, gzip: false })
  const doc = documentOf(await get(proxy.url('/leaf-pkg')))
  assertTarballsAt(doc, registry, proxy.url(''))
  assert.deepEqual(JSON.parse(registry.fullDocument('leaf-pkg').toString().replaceAll(registry.url, proxy.url(''))), doc)
})

test('a 20 MB document with thousands of versions is rewritten whole, gzip and identity', async (t) => {
  const versions = Array.from({ length: 2000 }, (_, i) => ({ version: `1.0.${i}`, readmeBytes: 10_000 }))
  const big: PackageSpec = { name: 'big-pkg', versions }
  const { registry, proxy } = await startRegistryAndMirror(t, { gzip: true }, {}, [big])
  const size = registry.fullDocument('big-pkg').length
  assert.ok(size > 20_000_000, `the document is ${size} bytes`)
  const base = proxy.url('')

  // Filling: gzip from the upstream, decoded, rewritten and coded again.
  const gz = await get(proxy.url('/big-pkg'), { headers: { 'accept-encoding': 'gzip' } })
  assert.equal(gz.headers['content-encoding'], 'gzip')
  const fromFill = documentOf(gz)
  // From disk (too large for the memory tier), sent decoded.
  const plain = await get(proxy.url('/big-pkg'))
  assert.match(cacheStatus(plain), /^cachemir; hit/)
  const fromDisk = documentOf(plain)
  for (const doc of [fromFill, fromDisk]) {
    assert.equal(Object.keys(doc.versions).length, 2000)
    assertTarballsAt(doc, registry, base)
  }
  assert.equal(registry.count('/big-pkg'), 1)
})
