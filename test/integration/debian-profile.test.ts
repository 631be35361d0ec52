// test/integration/debian-profile.test.ts
// The debian profile's rules against an upstream that sends no validators and no Cache-Control:
// which paths of an apt repository are hits on the next request and which go upstream again,
// with and without apt's `Cache-Control: max-age=0`, and what is served once the upstream is gone.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { cacheStatus, get } from '../helpers/client.js'
import { sendBody, startOrigin, type Origin } from '../helpers/origin.js'
import { startConfiguredProxy, startProxy, type Proxy } from '../helpers/proxy.js'
import { waitForFills } from '../helpers/wait.js'

/** What apt sends for every index file (Release, Packages, by-hash/ …), but not for Release.gpg or pool/ files. */
const APT_INDEX_HEADERS = { 'cache-control': 'max-age=0', accept: 'text/*' }

/** A by-hash file is named for its content's digest (and the mirror checks it): one fixed body. */
const BY_HASH_BODY = 'an index file, as stored by its digest\n'
const HASH = createHash('sha256').update(BY_HASH_BODY).digest('hex')

/** Paths of a repository that are the same bytes forever: the first answer is kept. */
const IMMUTABLE = [
  `dists/stable/main/binary-amd64/by-hash/SHA256/${HASH}`,
  `dists/stable/main/i18n/by-hash/SHA256/${HASH}`,
  `dists/stable/main/source/by-hash/MD5Sum/${'b'.repeat(32)}`,
  'pool/main/h/hello/hello_1.0-1_amd64.deb',
  'pool/main/h/hello/hello_1.0-1.dsc',
  'pool/main/h/hello/hello_1.0.orig.tar.gz',
  'pool/main/libh/libhello/libhello1_1.0-1_amd64.udeb',
]

/** Paths that change with every publication: each request goes upstream again. */
const REVALIDATED = [
  'dists/stable/InRelease',
  'dists/stable/Release',
  'dists/stable/Release.gpg',
  'dists/stable/main/binary-amd64/Packages',
  'dists/stable/main/binary-amd64/Packages.gz',
  'dists/stable/main/binary-amd64/Packages.xz',
  'dists/stable/main/binary-amd64/Release',
  'dists/stable/main/source/Sources.xz',
  'dists/stable/main/Contents-amd64.gz',
  'dists/stable/main/i18n/Translation-en.bz2',
  'dists/stable/main/dep11/Components-amd64.yml.gz',
  'dists/stable/main/binary-amd64/Packages.diff/Index',
  'dists/stable/main/installer-amd64/current/images/SHA256SUMS',
]

interface Upstream {
  readonly origin: Origin
  /** Changes every body the origin serves from now on. */
  publish(): void
}

/**
 * Every path below /debian/ answers 200 with a body naming the path and the publication, and
 * only Content-Type, Content-Length and Date: no ETag, no Last-Modified, no Cache-Control.
 */
async function startRepoOrigin(t: TestContext): Promise<Upstream> {
  let publication = 1
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(bodyOf(req.url ?? '', publication)), {
      headers: { 'content-type': 'application/octet-stream' },
    }),
  )
  return { origin, publish: () => void publication++ }
}

/** A mirror with the profile on a /debian/ route of a config file. */
function startDebianMirror(t: TestContext, origin: Origin): Promise<Proxy> {
  return startConfiguredProxy(t, { routes: [{ prefix: '/debian/', upstreams: [`${origin.url}/debian/`], profile: 'debian' }] })
}

/** What the origin serves for `url`: a body naming the path and the publication, or the by-hash body. */
function bodyOf(url: string, publication: number): string {
  return url.includes('/by-hash/SHA256/') ? BY_HASH_BODY : `${url} publication ${publication}`
}

/** One GET through the mirror, the body checked against what the origin serves. */
async function fetchPath(proxy: Proxy, path: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await get(proxy.url(`/debian/${path}`), { headers })
  assert.equal(res.status, 200, `${path}: ${res.body.toString()}`)
  await waitForFills(proxy)
  if (path.includes('/by-hash/SHA256/')) assert.equal(res.body.toString(), BY_HASH_BODY)
  else assert.match(res.body.toString(), new RegExp(`^/debian/${path.replace(/[.+]/g, '\\$&')} publication \\d+$`))
  return cacheStatus(res)
}

test('pool/ and by-hash/ files are hits on the next request, even when the client sends max-age=0 as apt does', async (t) => {
  const { origin } = await startRepoOrigin(t)
  const proxy = await startDebianMirror(t, origin)
  for (const path of IMMUTABLE) {
    assert.equal(await fetchPath(proxy, path), 'cachemir; fwd=miss; stored', path)
    assert.match(await fetchPath(proxy, path), /^cachemir; hit/, path)
    assert.match(await fetchPath(proxy, path, APT_INDEX_HEADERS), /^cachemir; hit/, `${path} with max-age=0`)
    assert.match(
      await fetchPath(proxy, path, { 'cache-control': 'no-cache', pragma: 'no-cache' }),
      /^cachemir; hit/,
      `${path} with no-cache`,
    )
    assert.equal(origin.count(`/debian/${path}`), 1, path)
  }
})

test('every other file under dists/ goes upstream on every request and is refetched in full (no validators)', async (t) => {
  const { origin } = await startRepoOrigin(t)
  const proxy = await startDebianMirror(t, origin)
  for (const path of REVALIDATED) {
    assert.equal(await fetchPath(proxy, path), 'cachemir; fwd=miss; stored', path)
    assert.equal(await fetchPath(proxy, path), 'cachemir; fwd=stale; fwd-status=200; stored', path)
    assert.equal(await fetchPath(proxy, path, APT_INDEX_HEADERS), 'cachemir; fwd=request; fwd-status=200; stored', path)
    const seen = origin.requests.filter((r) => r.url === `/debian/${path}`)
    assert.equal(seen.length, 3, path)
    // Nothing to revalidate with: the mirror asks for the whole file.
    for (const r of seen) assert.equal(r.headers['if-none-match'] ?? r.headers['if-modified-since'], undefined, path)
  }
})

test('Release.gpg and the other indexes are revalidated even when the upstream would let them be fresh', async (t) => {
  // A real archive sends Last-Modified (heuristic freshness: a tenth of its age) and sometimes
  // max-age; apt sends no Cache-Control for Release.gpg. A Release.gpg served from the cache next
  // to a new Release would fail its signature check.
  const lastModified = new Date(Date.now() - 10 * 3600_000).toUTCString()
  const origin = await startOrigin(t, (req, res) => {
    const headers = { etag: '"v1"', 'last-modified': lastModified, 'cache-control': 'max-age=3600' }
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, headers)
      return void res.end()
    }
    return sendBody(req, res, Buffer.from(`${req.url ?? ''} publication 1`), { headers })
  })
  const proxy = await startDebianMirror(t, origin)
  for (const path of REVALIDATED) {
    assert.equal(await fetchPath(proxy, path), 'cachemir; fwd=miss; stored', path)
    assert.equal(await fetchPath(proxy, path), 'cachemir; fwd=stale; fwd-status=304', path)
    assert.equal(origin.count(`/debian/${path}`), 2, path)
  }
})

test('a new publication is served at once under dists/; a pool/ file stays the first bytes stored', async (t) => {
  const upstream = await startRepoOrigin(t)
  const proxy = await startDebianMirror(t, upstream.origin)
  const release = 'dists/stable/Release'
  const deb = 'pool/main/h/hello/hello_1.0-1_amd64.deb'
  const body = async (path: string): Promise<string> =>
    (await get(proxy.url(`/debian/${path}`), { headers: APT_INDEX_HEADERS })).body.toString()

  assert.equal(await body(release), `/debian/${release} publication 1`)
  assert.equal(await body(deb), `/debian/${deb} publication 1`)
  await waitForFills(proxy)
  upstream.publish()
  assert.equal(await body(release), `/debian/${release} publication 2`)
  assert.equal(await body(deb), `/debian/${deb} publication 1`)
})

test('with the upstream gone, every file stored before is served: indexes stale, pool/ and by-hash/ as hits', async (t) => {
  const { origin } = await startRepoOrigin(t)
  const proxy = await startDebianMirror(t, origin)
  for (const path of [...IMMUTABLE, ...REVALIDATED]) await fetchPath(proxy, path)
  await origin.close()

  for (const path of REVALIDATED) {
    assert.equal(await fetchPath(proxy, path, APT_INDEX_HEADERS), 'cachemir; fwd=stale; detail=stale-if-error', path)
  }
  for (const path of IMMUTABLE) assert.match(await fetchPath(proxy, path, APT_INDEX_HEADERS), /^cachemir; hit/, path)
})

test('an upstream answering 502 (a corporate proxy with the archive gone) gets the stored indexes served stale, not the 502', async (t) => {
  let failing = false
  const origin = await startOrigin(t, (req, res) =>
    failing
      ? sendBody(req, res, Buffer.from('proxy error'), { status: 502 })
      : sendBody(req, res, Buffer.from(`${req.url ?? ''} publication 1`), { headers: { 'content-type': 'application/octet-stream' } }),
  )
  const proxy = await startDebianMirror(t, origin)
  for (const path of REVALIDATED) await fetchPath(proxy, path)
  failing = true
  for (const path of REVALIDATED) {
    assert.equal(await fetchPath(proxy, path, APT_INDEX_HEADERS), 'cachemir; fwd=stale; fwd-status=502; detail=stale-if-error', path)
  }
  // Without a profile a 502 is passed on, as RFC 5861 has it when the response did not allow stale-if-error.
  const plain = await startConfiguredProxy(t, { routes: [{ prefix: '/debian/', upstreams: [`${origin.url}/debian/`] }] })
  failing = false
  assert.equal((await get(plain.url('/debian/dists/stable/InRelease'))).status, 200)
  failing = true
  assert.equal((await get(plain.url('/debian/dists/stable/InRelease'))).status, 502)
})

test('--profile debian on the --upstream route applies the same rules below any path', async (t) => {
  const { origin } = await startRepoOrigin(t)
  const proxy = await startProxy(t, { upstream: `${origin.url}/`, profile: 'debian' })
  const byHash = `/debian/${IMMUTABLE[0] as string}`
  const release = '/debian/dists/stable/Release'
  for (let i = 0; i < 2; i++) {
    assert.equal((await get(proxy.url(byHash), { headers: APT_INDEX_HEADERS })).status, 200)
    assert.equal((await get(proxy.url(release), { headers: APT_INDEX_HEADERS })).status, 200)
    await waitForFills(proxy)
  }
  assert.equal(origin.count(byHash), 1)
  assert.equal(origin.count(release), 2)
})
