// test/cli/npm-client.test.ts
// The real npm CLI installs through the built binary (`serve --profile npm`) from a local registry
// (test/helpers/npm-registry.ts): lockfile URLs on the mirror, each tarball fetched from the
// registry once; then, with the registry stopped and npm's own caches empty, `npm install` and
// `npm ci` succeed from the mirror's cache alone. And clients stalled in a 20 MB document do not
// grow the mirror's RSS by the document's size.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { get, getFirstBytes } from '../helpers/client.js'
import { packageOf, startNpmRegistry, type NpmRegistry, type PackageSpec } from '../helpers/npm-registry.js'
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'

const PACKAGES: readonly PackageSpec[] = [
  packageOf('leaf-pkg', '1.0.0'),
  { name: 'multi-pkg', versions: [{ version: '1.0.0' }, { version: '1.1.0', dependencies: { 'leaf-pkg': '^1.0.0' } }] },
  packageOf('@scope/app-lib', '2.1.0', { 'leaf-pkg': '^1.0.0', 'multi-pkg': '^1.0.0' }),
]
/** What the projects ask for; leaf-pkg comes in as a dependency of both. */
const DEPENDENCIES = { '@scope/app-lib': '^2.0.0', 'multi-pkg': '^1.0.0' }
const INSTALLED = ['@scope/app-lib@2.1.0', 'multi-pkg@1.1.0', 'leaf-pkg@1.0.0']

const NPM_TIMEOUT_MS = 120_000
/** The npm next to this node, else the one on PATH. */
const NPM = existsSync(join(dirname(process.execPath), 'npm')) ? join(dirname(process.execPath), 'npm') : 'npm'

interface NpmRun {
  readonly code: number | string
  readonly output: string
}

/**
 * Runs npm in `cwd` against the mirror with npm cache `cache` and empty user and global config,
 * in a bare environment (no npm_config_* of a parent npm, no proxy variables); killed at the timeout.
 */
async function runNpm(t: TestContext, cwd: string, command: string, mirror: ProxyProcess, home: string, cache: string): Promise<NpmRun> {
  const userConfig = join(home, 'user-npmrc')
  const globalConfig = join(home, 'global-npmrc')
  await writeFile(userConfig, '')
  await writeFile(globalConfig, '')
  const args = [
    command,
    '--registry',
    mirror.url('/'),
    '--cache',
    cache,
    '--userconfig',
    userConfig,
    '--globalconfig',
    globalConfig,
    '--no-audit',
    '--no-fund',
    '--prefer-online',
    '--update-notifier=false',
    '--loglevel=http',
  ]
  const child = spawn(NPM, args, { cwd, env: { PATH: process.env.PATH ?? '', HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), NPM_TIMEOUT_MS)
  const code = await exited
  clearTimeout(timer)
  return { code, output }
}

async function makeProject(t: TestContext): Promise<string> {
  const dir = await makeTempDir(t, 'cachemir-npm-project-')
  await writeFile(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'project', version: '1.0.0', private: true, dependencies: DEPENDENCIES }),
  )
  return dir
}

interface Lockfile {
  packages: Record<string, { version?: string; resolved?: string; integrity?: string }>
}

/** node_modules holds each package's files as the registry built them; the lockfile points at the mirror. */
async function assertInstalled(dir: string, registry: NpmRegistry, mirror: ProxyProcess, what: string): Promise<void> {
  for (const id of INSTALLED) {
    const tarball = registry.tarballs.get(id)
    assert.ok(tarball !== undefined)
    for (const [file, text] of Object.entries(tarball.files)) {
      const installed: string = await readFile(join(dir, 'node_modules', tarball.name, file), 'utf8')
      // npm may rewrite package.json on install (it adds fields); the other files are byte for byte.
      if (file === 'package.json') assert.equal((JSON.parse(installed) as { version: string }).version, tarball.version, `${what}: ${id}`)
      else assert.equal(installed, text, `${what}: ${id} ${file}`)
    }
  }
  const lock = JSON.parse(await readFile(join(dir, 'package-lock.json'), 'utf8')) as Lockfile
  const entries = Object.entries(lock.packages).filter(([path]) => path !== '')
  assert.equal(entries.length, INSTALLED.length, `${what}: lockfile entries`)
  for (const [path, entry] of entries) {
    const tarball = registry.tarballs.get(`${path.replace(/^node_modules\//, '')}@${entry.version ?? ''}`)
    assert.ok(tarball !== undefined, `${what}: ${path}`)
    assert.equal(entry.resolved, mirror.url(tarball.path), `${what}: ${path} resolved on the mirror`)
    assert.equal(entry.integrity, tarball.integrity, `${what}: ${path}`)
  }
}

/** The mirror's request-completed lines from `since` (an offset into its output) on. */
function requestLines(mirror: ProxyProcess, since: number): { url: string; statusCode: number; cache: string }[] {
  return mirror
    .output()
    .slice(since)
    .split('\n')
    .filter((line) => line.includes('"msg":"request completed"'))
    .map((line) => JSON.parse(line) as { url: string; statusCode: number; cache: string })
}

test('npm install and npm ci through the mirror, then from its cache alone with the registry stopped', async (t) => {
  const registry = await startNpmRegistry(t, PACKAGES)
  const cacheDir = await makeTempDir(t, 'cachemir-cache-')
  const home = await makeTempDir(t, 'cachemir-npm-home-')
  const mirror = await startProxyProcess(t, [
    '--profile',
    'npm',
    '--upstream',
    `${registry.url}/`,
    '--cache-dir',
    cacheDir,
    '--log-level',
    'info',
  ])

  const npmCache = (): Promise<string> => makeTempDir(t, 'cachemir-npm-cache-')

  const first = await makeProject(t)
  const firstCache = await npmCache()
  const online = await runNpm(t, first, 'install', mirror, home, firstCache)
  assert.equal(online.code, 0, online.output)
  await assertInstalled(first, registry, mirror, 'online install')
  // Each tarball reached the registry exactly once, and only through the mirror's fill.
  for (const id of INSTALLED) assert.equal(registry.count(registry.tarballs.get(id)?.path), 1, id)
  assert.equal(registry.tarballRequests(), INSTALLED.length)
  const documentRequests = registry.count() - registry.tarballRequests()

  // npm's own cache now holds the documents with the mirror's derived ETags: --prefer-online
  // revalidates them, and the mirror answers 304 from its cache.
  const revalidateFrom = mirror.output().length
  const again = await makeProject(t)
  const revalidating = await runNpm(t, again, 'install', mirror, home, firstCache)
  assert.equal(revalidating.code, 0, revalidating.output)
  await assertInstalled(again, registry, mirror, 'install revalidating npm’s cache')
  const revalidated = requestLines(mirror, revalidateFrom).filter((line) => !line.url.endsWith('.tgz'))
  assert.equal(revalidated.length, 3, 'one document request a package')
  for (const line of revalidated) assert.equal(line.statusCode, 304, line.url)
  assert.equal(registry.count() - registry.tarballRequests(), documentRequests, 'documents were fresh in the mirror')

  await registry.close()
  const offlineFrom = mirror.output().length

  const second = await makeProject(t)
  const install = await runNpm(t, second, 'install', mirror, home, await npmCache())
  assert.equal(install.code, 0, install.output)
  await assertInstalled(second, registry, mirror, 'install from the mirror alone')

  const third = await makeProject(t)
  await copyFile(join(first, 'package-lock.json'), join(third, 'package-lock.json'))
  const ci = await runNpm(t, third, 'ci', mirror, home, await npmCache())
  assert.equal(ci.code, 0, ci.output)
  await assertInstalled(third, registry, mirror, 'ci from the mirror alone')

  // Everything npm asked for once the registry was gone came from the cache.
  const served = requestLines(mirror, offlineFrom)
  t.diagnostic(`served with the registry stopped: ${served.map((line) => line.url).join(' ')}`)
  assert.ok(served.length >= INSTALLED.length, `the mirror answered npm: ${served.length} requests`)
  for (const line of served) {
    assert.equal(line.statusCode, 200, line.url)
    assert.equal(line.cache, 'hit', line.url)
  }
  assert.equal(registry.tarballRequests(), INSTALLED.length)
})

/** VmRSS of a process, in bytes (Linux). */
function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  assert.ok(m !== null, 'VmRSS in /proc/PID/status')
  return Number(m[1]) * 1024
}

// What is measured, and why this way: the peak RSS of a whole 20 MB rewrite is not a fair measure,
// since even an untransformed 20 MB fill raises it by about its size (V8 frees the per-chunk
// buffers only once tens of MiB of them have piled up). Clients stalled mid-document are: a
// mirror that held the rewritten document for each would grow by four documents, one that streams
// holds a few chunks a client. (Measured: +1 to +7 MiB; a buffering rewrite: more than +80 MiB.)
test(
  'four clients stalled in a cached 20 MB document do not grow the mirror’s RSS by its size',
  { skip: process.platform !== 'linux' },
  async (t) => {
    const versions = Array.from({ length: 2000 }, (_, i) => ({ version: `1.0.${i}`, readmeBytes: 10_000 }))
    const registry = await startNpmRegistry(t, [{ name: 'big-pkg', versions }, packageOf('leaf-pkg', '1.0.0')])
    const size = registry.fullDocument('big-pkg').length
    assert.ok(size > 20_000_000)
    const cacheDir = await makeTempDir(t, 'cachemir-cache-')
    const mirror = await startProxyProcess(t, ['--profile', 'npm', '--upstream', `${registry.url}/`, '--cache-dir', cacheDir])
    const pid = mirror.child.pid ?? -1

    // Every code path once (fill, rewrite, gzip both ways, memory hit), then the big document cached.
    for (const headers of [{ 'accept-encoding': 'gzip' }, {}, { 'accept-encoding': 'gzip' }]) {
      assert.equal((await get(mirror.url('/leaf-pkg'), { headers })).status, 200)
    }
    const whole = await get(mirror.url('/big-pkg'))
    assert.equal(whole.status, 200)
    // Once more from the cache, the path the stalled clients take: the heap has grown to what one
    // whole rewrite needs before the baseline is read (a baseline taken after a GC read low).
    assert.deepEqual((await get(mirror.url('/big-pkg'))).body, whole.body)
    const before = rssBytes(pid)

    const clients = await Promise.all(Array.from({ length: 4 }, () => getFirstBytes(mirror.url('/big-pkg'), 1024 * 1024)))
    t.after(() => Promise.all(clients.map((c) => c.abort())))
    await sleep(500)
    const stalled = rssBytes(pid)
    t.diagnostic(`document ${size} bytes; mirror RSS ${before} -> ${stalled} with 4 clients stalled in it`)
    assert.ok(stalled - before < size, `RSS grew by ${stalled - before} bytes for a ${size}-byte document`)

    for (const r of await Promise.all(clients.map((c) => c.rest()))) {
      assert.ok(r.complete)
      assert.deepEqual(r.body, whole.body)
    }
    assert.equal(registry.count('/big-pkg'), 1)
  },
)
