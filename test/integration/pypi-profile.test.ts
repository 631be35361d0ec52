// test/integration/pypi-profile.test.ts
// The pypi profile on two routes, `/pypi/` (a simple index) and `/files/` (its files host): HTML
// and JSON pages cached apart as PEP 691 negotiates them, links on the pages rewritten to the
// mirror (its --public-url, else the Host each client used), distribution files immutable hits,
// and the derived ETag of a rewritten page answered with 304.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { gunzipSync } from 'node:zlib'
import { cacheStatus, get, type Fetched } from '../helpers/client.js'
import { sha256 } from '../helpers/origin.js'
import { PEP691_JSON, startPypiIndex, type PypiIndex, type PypiIndexOptions } from '../helpers/pypi-index.js'
import { startConfiguredProxy, type Proxy, type ProxyOptions } from '../helpers/proxy.js'

/** What pip 23 sends for a simple page. */
const PIP_ACCEPT = `${PEP691_JSON}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01`
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'

interface Setup {
  readonly pypi: PypiIndex
  readonly proxy: Proxy
  /** `/pypi/simple/<project>/` */
  readonly page: string
  /** `/files/packages/…/<wheel>` */
  readonly wheel: string
}

async function setUp(t: TestContext, index: PypiIndexOptions = {}, options: ProxyOptions = {}): Promise<Setup> {
  const pypi = await startPypiIndex(t, index)
  const routes = [
    { prefix: '/pypi/', upstreams: [`${pypi.index.url}/`], profile: 'pypi' },
    { prefix: '/files/', upstreams: [`${pypi.files.url}/`], profile: 'pypi' },
  ]
  const proxy = await startConfiguredProxy(t, { routes }, options)
  return { pypi, proxy, page: `/pypi/simple/${pypi.project}/`, wheel: `/files${pypi.wheelPath}` }
}

function getPage(proxy: Proxy, path: string, accept: string, headers: Record<string, string> = {}): Promise<Fetched> {
  return get(proxy.url(path), { headers: { accept, ...headers } })
}

/** The form a page response is in, by its Content-Type and its body. */
function formOf(res: Fetched): 'json' | 'html' {
  const type = res.headers['content-type'] ?? ''
  const body = res.body.toString()
  if (type === PEP691_JSON && body.startsWith('{')) return 'json'
  assert.match(type, /^text\/html/, `a page is JSON or HTML, got ${type}`)
  assert.match(body, /^<!DOCTYPE html>/)
  return 'html'
}

interface ProjectJson {
  files: { filename: string; url: string; hashes: { sha256: string } }[]
}

test('HTML and JSON pages are cached apart: each client gets the form it asked for, from the index and from the cache', async (t) => {
  const { pypi, proxy, page } = await setUp(t)

  const json = await getPage(proxy, page, PIP_ACCEPT)
  const html = await getPage(proxy, page, BROWSER_ACCEPT)
  assert.equal(json.status, 200)
  assert.equal(html.status, 200)
  assert.equal(formOf(json), 'json')
  assert.equal(formOf(html), 'html')
  assert.deepEqual(pypi.served, ['json', 'html'], 'two origin requests, one a form')

  // The index down: each form comes from its own cache entry.
  await pypi.index.close()
  const cases: [accept: string, form: 'json' | 'html'][] = [
    [PIP_ACCEPT, 'json'],
    [BROWSER_ACCEPT, 'html'],
    ['application/vnd.pypi.simple.latest+json', 'json'], // PEP 691's alias of the newest version
    ['application/vnd.pypi.simple.v1+json;q=0, text/html', 'html'], // q=0: JSON is refused
    ['application/vnd.pypi.simple.v1+json;q=0.2, application/vnd.pypi.simple.v1+html', 'html'], // the higher q wins, not the first
    ['application/vnd.pypi.simple.v1+html;q=0.5, application/vnd.pypi.simple.v1+json', 'json'],
    ['*/*', 'html'],
  ]
  for (const [accept, form] of cases) {
    const res = await getPage(proxy, page, accept)
    assert.equal(res.status, 200, accept)
    assert.match(cacheStatus(res), /fwd=stale; detail=stale-if-error/, accept)
    assert.equal(formOf(res), form, accept)
  }
})

test('links on the pages point at the mirror: the files host below /files/, the index itself below /pypi/', async (t) => {
  const { pypi, proxy, page, wheel } = await setUp(t)
  const mirrorWheel = proxy.url(wheel)

  const html = (await getPage(proxy, page, 'text/html')).body.toString()
  assert.ok(html.includes(`href="${mirrorWheel}#sha256=${pypi.wheelSha256}"`), html)
  assert.ok(!html.includes(pypi.files.url), html)

  const json = JSON.parse((await getPage(proxy, page, PIP_ACCEPT)).body.toString()) as ProjectJson
  assert.deepEqual(
    json.files.map((f) => [f.url, f.hashes.sha256]),
    [[mirrorWheel, pypi.wheelSha256]],
  )

  // The root page links each project as `/simple/<project>/`, a path on the index: below /pypi/ on the mirror.
  const root = (await getPage(proxy, '/pypi/simple/', 'text/html')).body.toString()
  assert.ok(root.includes(`href="${proxy.url(page)}"`), root)

  const followed = await get(mirrorWheel)
  assert.equal(followed.status, 200)
  assert.equal(sha256(followed.body), pypi.wheelSha256)
})

test('an index that links its files by absolute path: the links stay below the route', async (t) => {
  const { pypi, proxy, page } = await setUp(t, { links: 'absolute-path' })
  const mirrorWheel = proxy.url(`/pypi${pypi.wheelPath}`)

  const html = (await getPage(proxy, page, 'text/html')).body.toString()
  assert.ok(html.includes(`href="${mirrorWheel}#sha256=`), html)
  const json = JSON.parse((await getPage(proxy, page, PIP_ACCEPT)).body.toString()) as ProjectJson
  assert.equal(json.files[0]?.url, mirrorWheel)

  const followed = await get(mirrorWheel)
  assert.equal(followed.status, 200)
  assert.equal(sha256(followed.body), pypi.wheelSha256)
  assert.equal(pypi.index.count(pypi.wheelPath), 1)
})

test('--public-url names the mirror in the links; without it, each Host the clients use gets its own', async (t) => {
  const configured = await setUp(t, { etag: true }, { publicUrl: 'https://mirror.example.org:8443' })
  const json = JSON.parse((await getPage(configured.proxy, configured.page, PIP_ACCEPT)).body.toString()) as ProjectJson
  assert.equal(json.files[0]?.url, `https://mirror.example.org:8443${configured.wheel}`)

  const { proxy, page, wheel } = await setUp(t, { etag: true })
  const hosts = [`127.0.0.1:${proxy.port}`, 'mirror.internal:8080', 'pypi-cache.example.org']
  const etags = new Set<string>()
  for (const host of hosts) {
    const res = await getPage(proxy, page, 'text/html', { host })
    assert.equal(res.status, 200, host)
    assert.ok(res.body.toString().includes(`href="http://${host}${wheel}#sha256=`), `${host}: ${res.body.toString()}`)
    etags.add(res.headers['etag'] ?? '')
  }
  assert.equal(etags.size, hosts.length, `a validator per base: ${[...etags].join(' ')}`)
})

test('a distribution file is an immutable hit on the second request, served as stored', async (t) => {
  const { pypi, proxy, wheel } = await setUp(t)

  const first = await get(proxy.url(wheel))
  const second = await get(proxy.url(wheel))
  for (const res of [first, second]) {
    assert.equal(res.status, 200)
    assert.equal(sha256(res.body), pypi.wheelSha256)
    assert.equal(res.headers['content-length'], String(pypi.wheel.length), 'not transformed: the length is known')
  }
  assert.match(cacheStatus(first), /fwd=miss; stored/)
  assert.equal(cacheStatus(second), 'cachemir; hit', 'immutable: no ttl')
  assert.equal(pypi.files.count(pypi.wheelPath), 1)
})

test("If-None-Match with a rewritten page's derived ETag gets 304 once the index confirms it", async (t) => {
  const { pypi, proxy, page } = await setUp(t, { etag: true })

  const json = await getPage(proxy, page, PIP_ACCEPT)
  const html = await getPage(proxy, page, 'text/html')
  const jsonTag = json.headers['etag'] ?? ''
  assert.match(jsonTag, /^"json-1\.0\+urls-v2\.[0-9a-f]{8}"$/, 'derived from the index ETag, naming the rewrite and the base')
  assert.match(html.headers['etag'] ?? '', /^"html-1\.0\+/)

  const revalidated = await getPage(proxy, page, PIP_ACCEPT, { 'if-none-match': jsonTag })
  assert.equal(revalidated.status, 304)
  assert.equal(revalidated.headers['etag'], jsonTag)
  assert.equal(revalidated.body.length, 0)
  // The page is revalidated on every request: the mirror asked the index with the index's own tag.
  assert.deepEqual(pypi.served, ['json', 'html', 'json 304'])
  assert.equal(pypi.index.requests.at(-1)?.headers['if-none-match'], '"json-1.0"')

  // The index's own tag names the bytes before the rewrite: not a match for what this client got.
  const original = await getPage(proxy, page, PIP_ACCEPT, { 'if-none-match': '"json-1.0"' })
  assert.equal(original.status, 200)
  assert.equal(formOf(original), 'json')
})

test('a gzip-coded page is rewritten, coded again for a client that accepts gzip, sent decoded to one that does not', async (t) => {
  const { pypi, proxy, page, wheel } = await setUp(t, { gzip: true })
  const link = `href="${proxy.url(wheel)}#sha256=`

  const coded = await getPage(proxy, page, 'text/html', { 'accept-encoding': 'gzip' })
  assert.equal(coded.headers['content-encoding'], 'gzip')
  assert.ok(gunzipSync(coded.body).toString().includes(link))

  // The index down, so the stored gzip copy is what gets decoded for a client that does not accept gzip.
  await pypi.index.close()
  const plain = await getPage(proxy, page, 'text/html', { 'accept-encoding': 'identity' })
  assert.match(cacheStatus(plain), /fwd=stale/)
  assert.equal(plain.headers['content-encoding'], undefined)
  assert.ok(plain.body.toString().includes(link))
})
