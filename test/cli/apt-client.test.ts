// test/cli/apt-client.test.ts
// The real apt-get against the built binary with `--profile debian`, in base-URL mode
// (`deb http://mirror/debian stable main`), over an upstream that sends no validators and no
// Cache-Control: indexes refetched on every update, pool/ and by-hash/ served from the cache,
// everything from the cache while the upstream is gone, and a new publication seen at once.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeAptClient, missingAptGet, type AptClient, type AptResult } from '../helpers/apt-get.js'
import { COMPONENT, makeAptRepo, missingDebTools, serveRepo, SUITE, type DebPackage } from '../helpers/apt-repo.js'
import { sha256, startOrigin, type Origin } from '../helpers/origin.js'
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'

const PREFIX = '/debian/'

/** The request log lines of the mirror, one `METHOD url status cache` each, for failure messages. */
function requestLines(mirror: ProxyProcess): string {
  return mirror
    .output()
    .split('\n')
    .filter((line) => line.includes('"request completed"'))
    .map((line) => {
      const l = JSON.parse(line) as Record<string, unknown>
      return `${String(l['method'])} ${String(l['url'])} ${String(l['statusCode'])} ${String(l['cache'])}`
    })
    .join('\n')
}

/**
 * Runs apt-get and asserts it succeeded without an error or a warning: `apt-get update` exits 0
 * even when an index failed to download (`W: Failed to fetch …`), so the exit code alone says little.
 */
async function aptOk(client: AptClient, mirror: ProxyProcess, args: readonly string[]): Promise<AptResult> {
  const result = await client.run(args)
  const context = `apt-get ${args.join(' ')}\nexit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}\nmirror requests:\n${requestLines(mirror)}`
  assert.equal(result.code, 0, context)
  assert.doesNotMatch(result.stdout + result.stderr, /^(E|W|Err):/m, context)
  return result
}

/** The sha256 of the one .deb of `deb`'s name and version that `apt-get download` left in the client's dir. */
async function downloadedSha256(client: AptClient, deb: DebPackage): Promise<string> {
  const files = (await readdir(client.downloads)).filter((f) => f.startsWith(`${deb.name}_${deb.version}_`) && f.endsWith('.deb'))
  assert.equal(files.length, 1, `one ${deb.name} ${deb.version} .deb in ${client.downloads}: ${files.join(', ')}`)
  return sha256(await readFile(join(client.downloads, files[0] as string)))
}

test('apt-get updates and downloads through the debian profile, from the cache while the upstream is down', async (t) => {
  const missing = missingAptGet() ?? missingDebTools()
  if (missing !== undefined) return t.skip(missing)

  const repo = await makeAptRepo(t, [
    ['cachemir-hello', '1.0'],
    ['cachemir-other', '1.0'],
  ])
  const hello1 = repo.published[0] as DebPackage
  let origin: Origin = await startOrigin(t, serveRepo(repo.dir, PREFIX))
  const cacheDir = await makeTempDir(t, 'cachemir-apt-cache-')
  const mirror = await startProxyProcess(t, ['--profile', 'debian', '--upstream', `${origin.url}/`, '--cache-dir', cacheDir])
  const source = `deb [trusted=yes] ${mirror.url('/debian')} ${SUITE} ${COMPONENT}`
  const before = repo.indexes

  // What the origin was asked for `p` (below the repository root), the mirror's answers on failure.
  const asked = (p: string, times: number, what: string): void =>
    assert.equal(origin.count(PREFIX + p), times, `${what}: ${p}\nmirror requests:\n${requestLines(mirror)}`)

  // A first machine: everything is a miss, fetched once.
  const first = await makeAptClient(t, source, repo.arch)
  await aptOk(first, mirror, ['update'])
  await aptOk(first, mirror, ['download', hello1.name])
  assert.equal(await downloadedSha256(first, hello1), hello1.sha256, 'the .deb apt got is the one built')
  asked(before.release, 1, 'Release')
  asked(before.packagesGzByHash, 1, 'Packages.gz, which apt takes by hash')
  asked(before.packagesGz, 0, 'Packages.gz by name')
  asked(hello1.filename, 1, 'the pool file')

  // A second machine: the release files go upstream again (no validators: refetched in full), the
  // by-hash index and the pool file come from the cache although apt sends max-age=0 for indexes.
  const second = await makeAptClient(t, source, repo.arch)
  await aptOk(second, mirror, ['update'])
  await aptOk(second, mirror, ['download', hello1.name])
  assert.equal(await downloadedSha256(second, hello1), hello1.sha256)
  asked(before.release, 2, 'Release, revalidated')
  asked(before.inRelease, 2, 'InRelease (a 404 here), revalidated')
  asked(before.packagesGzByHash, 1, 'the by-hash index, from the cache')
  asked(hello1.filename, 1, 'the pool file, from the cache')

  // The upstream is gone: a machine that already has the lists, and a new one, still update and
  // download, from the stale copies.
  await origin.close()
  await aptOk(second, mirror, ['update'])
  const third = await makeAptClient(t, source, repo.arch)
  await aptOk(third, mirror, ['update'])
  await aptOk(third, mirror, ['download', hello1.name])
  assert.equal(await downloadedSha256(third, hello1), hello1.sha256)

  // The upstream is back, on the same port, with a new version: the next update sees it.
  const hello2 = await repo.publish('cachemir-hello', '2.0')
  origin = await startOrigin(t, serveRepo(repo.dir, PREFIX), { port: origin.port })
  await aptOk(third, mirror, ['update'])
  await aptOk(third, mirror, ['download', `${hello2.name}=${hello2.version}`])
  assert.equal(await downloadedSha256(third, hello2), hello2.sha256, 'the new version')
  asked(repo.indexes.release, 1, 'the new Release')
  asked(repo.indexes.packagesGzByHash, 1, 'the new index, by its new hash')
  asked(hello2.filename, 1, 'the new pool file')
})

test('apt-get with the mirror as its Acquire::http::Proxy: cached by the guessed debian profile, served while the upstream is down', async (t) => {
  const missing = missingAptGet() ?? missingDebTools()
  if (missing !== undefined) return t.skip(missing)

  const repo = await makeAptRepo(t, [['cachemir-hello', '1.0']])
  const hello = repo.published[0] as DebPackage
  const origin = await startOrigin(t, serveRepo(repo.dir, PREFIX))
  const cacheDir = await makeTempDir(t, 'cachemir-apt-cache-')
  // The --upstream route is not used here: apt names the origin's host in each request.
  const args = ['--upstream', `${origin.url}/unused/`, '--proxy-allow', `127.0.0.1:${origin.port}`, '--cache-dir', cacheDir]
  const mirror = await startProxyProcess(t, args)
  const source = `deb [trusted=yes] ${origin.url}/debian ${SUITE} ${COMPONENT}`
  const asked = (p: string, times: number, what: string): void =>
    assert.equal(origin.count(PREFIX + p), times, `${what}: ${p}\nmirror requests:\n${requestLines(mirror)}`)

  const first = await makeAptClient(t, source, repo.arch, mirror.url('/'))
  await aptOk(first, mirror, ['update'])
  await aptOk(first, mirror, ['download', hello.name])
  assert.equal(await downloadedSha256(first, hello), hello.sha256)
  // The update's requests reached the mirror in absolute form (the download's line may still be on its way).
  assert.match(
    requestLines(mirror),
    new RegExp(`^GET http://127\\.0\\.0\\.1:${origin.port}/debian/dists/stable/Release 200`, 'm'),
    'apt asked the mirror as a proxy',
  )

  const second = await makeAptClient(t, source, repo.arch, mirror.url('/'))
  await aptOk(second, mirror, ['update'])
  await aptOk(second, mirror, ['download', hello.name])
  asked(repo.indexes.release, 2, 'Release, revalidated')
  asked(repo.indexes.packagesGzByHash, 1, 'the by-hash index, from the cache')
  asked(hello.filename, 1, 'the pool file, from the cache')

  await origin.close()
  const third = await makeAptClient(t, source, repo.arch, mirror.url('/'))
  await aptOk(third, mirror, ['update'])
  await aptOk(third, mirror, ['download', hello.name])
  assert.equal(await downloadedSha256(third, hello), hello.sha256)
})
