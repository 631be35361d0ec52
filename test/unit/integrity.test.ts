// test/unit/integrity.test.ts
// The digest finders of src/integrity/ on their own: the bounded-memory search (an occurrence cut
// by a chunk boundary, the window around it), the small JSON object around a match, and how each
// ecosystem's metadata names a file's digest, including the near misses that must not count.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import type { Route } from '../../src/config-types.js'
import { aptDigest, stanzaDigest } from '../../src/integrity/apt-digest.js'
import type { ExpectedDigest } from '../../src/integrity/expected-digest.js'
import { findNear } from '../../src/integrity/find-near.js'
import { objectAround } from '../../src/integrity/json-object.js'
import { distDigest, npmDigest } from '../../src/integrity/npm-digest.js'
import { fileDigest, linkDigest, projectOf, pypiDigest } from '../../src/integrity/pypi-digest.js'
import type { StoredMetadata } from '../../src/integrity/stored-metadata.js'

function hash(algorithm: string, data: string | Buffer): Buffer {
  return createHash(algorithm).update(data).digest()
}

/** `data` in chunks of `size` bytes. */
function chunked(data: Buffer, size: number): AsyncIterable<Buffer> {
  const chunks: Buffer[] = []
  for (let pos = 0; pos < data.length; pos += size) chunks.push(data.subarray(pos, pos + size))
  return Readable.from(chunks)
}

function route(prefix: string, profile: string): Route {
  return {
    prefix,
    upstreams: [new URL('http://upstream.invalid/')],
    rules: [],
    timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000 },
    followRedirects: false,
    profile,
    upstreamAuth: undefined,
    shareAuthenticated: false,
  }
}

/** Cached metadata from a map of keys to bodies, read in 4 KiB chunks; records what was read. */
function storedFrom(bodies: Record<string, Buffer>, indexKeys: string[] = []): StoredMetadata & { reads: string[] } {
  const reads: string[] = []
  return {
    reads,
    read: (key) => {
      reads.push(key)
      const body = bodies[key]
      return Promise.resolve(body === undefined ? undefined : chunked(body, 4096))
    },
    indexKeys: () => indexKeys,
  }
}

test('findNear finds a needle cut by any chunk boundary and shows its surroundings', async () => {
  const text = Buffer.from(`${'x'.repeat(300)}[before]NEEDLE[after]${'y'.repeat(300)}`)
  for (const size of [1, 2, 3, 5, 7, 64, 1000]) {
    const found = await findNear(chunked(text, size), Buffer.from('NEEDLE'), { before: 8, after: 7 }, (w) => w.toString('latin1'))
    assert.equal(found, '[before]NEEDLE[after]', `chunks of ${size}`)
  }
})

test('findNear goes on past occurrences inspect rejects, and clips the window at the stream ends', async () => {
  const text = Buffer.from('k=1;k=2;k=3')
  const seen: string[] = []
  const found = await findNear(chunked(text, 2), Buffer.from('k='), { before: 100, after: 1 }, (w, at) => {
    seen.push(w.toString('latin1'))
    return w[at + 2] === 0x33 ? 'three' : undefined
  })
  assert.equal(found, 'three')
  assert.deepEqual(seen, ['k=1', 'k=1;k=2', 'k=1;k=2;k=3'])
  assert.equal(await findNear(chunked(text, 3), Buffer.from('nope'), { before: 4, after: 4 }, () => 1), undefined)
})

test('findNear holds a chunk plus the surroundings, never the whole stream', async () => {
  const big = Buffer.alloc(4 * 1024 * 1024, 0x61)
  big.write('NEEDLE', big.length - 100)
  let widest = 0
  const found = await findNear(chunked(big, 64 * 1024), Buffer.from('NEEDLE'), { before: 1024, after: 16 }, (w) => {
    widest = Math.max(widest, w.length)
    return true
  })
  assert.equal(found, true)
  assert.ok(widest <= 1024 + 6 + 16, `window of ${widest} bytes`)
})

test('objectAround parses the innermost object around a position, skipping braces in strings and objects that end before it', () => {
  // Braces in strings that do not pair up: counted as structure, they would end the object in the wrong place.
  const doc = Buffer.from('{"a":{"x":"{not","sig":[{"k":1}],"tarball":"u/-/p.tgz","deep":{"z":"x"},"w":"}}}"},"b":2}')
  const at = doc.indexOf('/-/p.tgz')
  const found = objectAround(doc, at, (o) => (typeof o.tarball === 'string' ? o : undefined))
  assert.deepEqual(found, { x: '{not', sig: [{ k: 1 }], tarball: 'u/-/p.tgz', deep: { z: 'x' }, w: '}}}' })
  // A window that cuts the object off finds nothing rather than a wrong object.
  assert.equal(
    objectAround(doc.subarray(0, at + 20), at, (o) => o),
    undefined,
  )
})

test('npm: the strongest listed SRI digest wins, shasum is the fallback, and another version never counts', () => {
  const sha512 = hash('sha512', 'x').toString('base64')
  const sha1 = hash('sha1', 'x')
  const dist = {
    tarball: 'http://r.invalid/p/-/p-1.0.0.tgz',
    integrity: `sha1-${sha1.toString('base64')} sha512-${sha512}?opt`,
    shasum: 'ab',
  }
  assert.deepEqual(distDigest(dist, 'p-1.0.0.tgz', 'k')?.algorithm, 'sha512')
  assert.deepEqual(
    distDigest(
      { ...dist, integrity: `sha384-${hash('sha384', 'x').toString('base64')}`, shasum: sha1.toString('hex') },
      'p-1.0.0.tgz',
      'k',
    ),
    {
      algorithm: 'sha1',
      expected: sha1,
      source: 'k',
    },
  )
  assert.equal(distDigest(dist, 'p-1.0.1.tgz', 'k'), undefined, 'another version')
  assert.equal(distDigest(dist, '-1.0.0.tgz', 'k'), undefined, 'a suffix of the name is not the name')
})

test('npm: a tarball digest is read from a multi-megabyte document in chunks, from the first representation that lists it', async () => {
  const versions: Record<string, unknown> = {}
  for (let i = 0; i < 20000; i++) {
    versions[`1.0.${i}`] = {
      dist: { integrity: `sha512-${hash('sha512', `v${i}`).toString('base64')}`, tarball: `http://r.invalid/@s/p/-/p-1.0.${i}.tgz` },
    }
  }
  const doc = Buffer.from(JSON.stringify({ name: '@s/p', versions }))
  assert.ok(doc.length > 3 * 1024 * 1024)
  const npm = route('/npm/', 'npm')
  const stored = storedFrom({ '/npm/@s%2fp\u0000npm-full': doc })
  const found = await npmDigest.find({ route: npm, relativePath: '@s/p/-/p-1.0.19998.tgz', routes: [npm], stored })
  assert.deepEqual(found?.expected, hash('sha512', 'v19998'))
  assert.deepEqual(stored.reads, ['/npm/@s%2fp', '/npm/@s%2fp\u0000npm-abbreviated', '/npm/@s%2fp\u0000npm-full'])
  assert.equal(npmDigest.covers('@s/p/-/p-1.0.0.tgz'), true)
  assert.equal(npmDigest.covers('@s%2fp'), false)
  assert.equal(npmDigest.metadataKind('@s%2fp'), 'document')
})

test('apt: the SHA256 of the Filename line stanza, wherever it sits in the stanza, never a neighbour stanza', () => {
  const sha = (n: string): string => hash('sha256', n).toString('hex')
  const text = Buffer.from(
    `Package: a\nSHA256: ${sha('a')}\nFilename: pool/a.deb\n\nPackage: b\nFilename: pool/b.deb\nSize: 1\n\nPackage: c\nFilename: pool/c.deb\nSHA256: ${sha('c')}\n`,
  )
  const at = (name: string): number => text.indexOf(`Filename: pool/${name}.deb`)
  assert.deepEqual(stanzaDigest(text, at('a'), 'k')?.expected, hash('sha256', 'a'), 'before the Filename line')
  assert.equal(stanzaDigest(text, at('b'), 'k'), undefined, 'b has no SHA256 of its own')
  assert.deepEqual(stanzaDigest(text, at('c'), 'k')?.expected, hash('sha256', 'c'), 'after it')
  assert.equal(stanzaDigest(Buffer.from('X-Filename: pool/a.deb\n'), 2, 'k'), undefined, 'not at the start of a line')
})

test('apt: pool packages are looked up in the indexes of their archive and architecture, gzip or plain; by-hash files by their path', async () => {
  const debian = route('/debian/', 'debian')
  const sha = hash('sha256', 'deb').toString('hex')
  const stanza = `Package: hello\nFilename: pool/main/h/hello/hello_1_amd64.deb\nSHA256: ${sha}\n\n`
  const keys = [
    '/debian/dists/s/main/binary-arm64/Packages',
    '/debian/other/dists/s/main/binary-amd64/Packages',
    '/debian/dists/s/main/binary-amd64/Packages.gz',
  ]
  const stored = storedFrom(
    { [keys[2] as string]: gzipSync(stanza), [keys[0] as string]: Buffer.from(stanza), [keys[1] as string]: Buffer.from(stanza) },
    keys,
  )
  const found = await aptDigest.find({ route: debian, relativePath: 'pool/main/h/hello/hello_1_amd64.deb', routes: [debian], stored })
  assert.deepEqual(found, { algorithm: 'sha256', expected: hash('sha256', 'deb'), source: keys[2] })
  assert.deepEqual(stored.reads, [keys[2]], 'another architecture and another archive are not read')
  // An xz header over bytes that are not xz: the system's xz fails, and nothing is found.
  const xz = storedFrom({ [keys[2] as string]: Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]), Buffer.from(stanza)]) }, [
    keys[2] as string,
  ])
  assert.equal(
    await aptDigest.find({ route: debian, relativePath: 'pool/main/h/hello/hello_1_amd64.deb', routes: [debian], stored: xz }),
    undefined,
  )
  const byHash = await aptDigest.find({
    route: debian,
    relativePath: `dists/s/main/binary-amd64/by-hash/SHA256/${sha}`,
    routes: [debian],
    stored,
  })
  assert.deepEqual(byHash?.expected, hash('sha256', 'deb'))
  assert.equal(aptDigest.covers('dists/s/InRelease'), false)
  assert.equal(aptDigest.metadataKind('dists/s/main/binary-amd64/Packages.xz'), 'index', 'xz indexes are remembered (apt fetches them)')
  assert.equal(aptDigest.metadataKind('dists/s/main/binary-amd64/Packages.bz2'), undefined, 'bzip2 indexes are not')
})

test('pypi: project names from file names, and links and file entries that name exactly the file', () => {
  assert.equal(projectOf('Foo_Bar-1.0-py3-none-any.whl'), 'foo-bar')
  assert.equal(projectOf('python-dateutil-2.8.2.tar.gz'), 'python-dateutil')
  assert.equal(projectOf('abc-2fa-1.0.zip'), 'abc-2fa')
  const sha = hash('sha256', 'w').toString('hex')
  const html = Buffer.from(
    `<a href="http://f.invalid/xfoo-1.0.tar.gz#sha256=${'0'.repeat(64)}">x</a><a href="http://f.invalid/foo-1.0.tar.gz#sha256=${sha}">`,
  )
  const needle = 'foo-1.0.tar.gz#sha256='
  const first = html.indexOf(needle)
  const second = html.indexOf(needle, first + 1)
  assert.equal(linkDigest(html, first, 'foo-1.0.tar.gz'.length, 'k'), undefined, 'xfoo is another file')
  assert.deepEqual(linkDigest(html, second, 'foo-1.0.tar.gz'.length, 'k')?.expected, hash('sha256', 'w'))
  assert.equal(fileDigest({ filename: 'foo-1.0.tar.gz.metadata', hashes: { sha256: sha } }, 'foo-1.0.tar.gz', 'k'), undefined)
  assert.deepEqual(
    fileDigest({ hashes: { sha256: sha }, filename: 'foo-1.0.tar.gz' }, 'foo-1.0.tar.gz', 'k')?.expected,
    hash('sha256', 'w'),
  )
})

test('pypi: the page is looked for on every pypi route, in both representations', async () => {
  const index = route('/pypi/', 'pypi')
  const files = route('/files/', 'pypi')
  const sha = hash('sha256', 'w').toString('hex')
  const json = Buffer.from(JSON.stringify({ files: [{ filename: 'foo-1.0.tar.gz', hashes: { sha256: sha } }] }))
  const stored = storedFrom({ '/pypi/simple/foo/\u0000pypi-json': json })
  const found: ExpectedDigest | undefined = await pypiDigest.find({
    route: files,
    relativePath: 'packages/aa/foo-1.0.tar.gz',
    routes: [index, files],
    stored,
  })
  assert.deepEqual(found?.expected, hash('sha256', 'w'))
  assert.equal(pypiDigest.covers('packages/aa/foo-1.0.tar.gz.metadata'), false)
})
