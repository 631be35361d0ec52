// test/cli/pip-client.test.ts
// The real pip against the built binary: `pip download` through a mirror with two pypi routes,
// the simple index and its separate files host. The wheel comes through the mirror (the page's
// links were rewritten), then from the cache with the files host down, then with the index down
// too (the last page served stale). Then the other ways an index is laid out: a route for the
// simple directory itself, and an HTML-only index linking its own files by absolute path.
// Skipped, saying why, when python3 has no pip.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startPypiIndex, type PypiIndex } from '../helpers/pypi-index.js'
import { startProxyProcess, type LogLine, type ProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'

/** One pip run's bound: a local download takes about a second; a hung child must not hang the suite. */
const PIP_TIMEOUT_MS = 60_000

interface PipRun {
  readonly code: number | string
  readonly output: string
}

/** The interpreter that has pip (the real path, not a version manager's shim), or why there is none. */
function findPython(): Promise<{ python: string } | { reason: string }> {
  return new Promise((resolve) => {
    execFile('python3', ['-c', 'import sys, pip; print(sys.executable)'], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err !== null) return resolve({ reason: `python3 with pip not available: ${stderr.trim() || err.message}` })
      const python = stdout.trim()
      resolve(python === '' ? { reason: 'python3 did not name its executable' } : { python })
    })
  })
}

/**
 * `pip download --no-deps` of `project` into a fresh directory, isolated from this machine's pip:
 * no config files, no PIP_* or proxy variables, a temp HOME, no retries, and killed after
 * PIP_TIMEOUT_MS.
 */
async function pipDownload(t: TestContext, python: string, indexUrl: string, project: string): Promise<PipRun & { dest: string }> {
  const dest = await makeTempDir(t, 'cachemir-pip-dest-')
  const home = await makeTempDir(t, 'cachemir-pip-home-')
  const args = [
    '-m',
    'pip',
    'download',
    '--isolated',
    '--disable-pip-version-check',
    '--no-cache-dir',
    '--no-deps',
    '--retries',
    '0',
    '--timeout',
    '20',
    '--index-url',
    indexUrl,
    '--dest',
    dest,
    project,
  ]
  const child = spawn(python, args, {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      PIP_CONFIG_FILE: '/dev/null',
      PIP_NO_INPUT: '1',
      PYTHONDONTWRITEBYTECODE: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  const timer = setTimeout(() => child.kill('SIGKILL'), PIP_TIMEOUT_MS)
  t.after(async () => {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const code = await exited
  clearTimeout(timer)
  return { code, output, dest }
}

/** The mirror's `request completed` lines so far, parsed from its stdout. */
function requestLines(mirror: ProxyProcess): LogLine[] {
  return mirror
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine)
    .filter((line) => line.msg === 'request completed')
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex')
}

/** pip's interpreter, or undefined after marking the test skipped (with the reason in the output). */
async function pythonOrSkip(t: TestContext): Promise<string | undefined> {
  const found = await findPython()
  if ('python' in found) return found.python
  t.diagnostic(found.reason)
  t.skip(found.reason)
  return undefined
}

/** The built binary with a config file of these routes (each with the pypi profile), logging every request. */
async function startPypiMirror(t: TestContext, routes: readonly { prefix: string; upstream: string }[]): Promise<ProxyProcess> {
  const dir = await makeTempDir(t, 'cachemir-pip-')
  const config = join(dir, 'cachemir.json')
  await writeFile(config, JSON.stringify({ routes: routes.map((r) => ({ prefix: r.prefix, upstreams: [r.upstream], profile: 'pypi' })) }))
  return startProxyProcess(t, ['--config', config, '--cache-dir', join(dir, 'cache'), '--log-level', 'info'])
}

/** Exit 0, the one wheel in the destination, with the sha256 the index published. */
async function assertDownloaded(pypi: PypiIndex, run: PipRun & { dest: string }, context: string): Promise<void> {
  assert.equal(run.code, 0, `pip exit code; ${context}`)
  assert.deepEqual(await readdir(run.dest), [pypi.wheelName], `the one wheel; ${context}`)
  assert.equal(await sha256File(join(run.dest, pypi.wheelName)), pypi.wheelSha256, `the wheel's sha256; ${context}`)
}

function describe(run: PipRun, mirror: ProxyProcess): string {
  return `pip said:\n${run.output}\nmirror said:\n${mirror.output()}`
}

test('pip downloads a wheel through the mirror, then from its cache with the files host down, then with the index down too', async (t) => {
  const python = await pythonOrSkip(t)
  if (python === undefined) return
  // Public indexes gzip their pages, and pip accepts gzip: the rewrite then runs between a decoder and an encoder.
  const pypi = await startPypiIndex(t, { gzip: true })
  const mirror = await startPypiMirror(t, [
    { prefix: '/pypi/', upstream: `${pypi.index.url}/` },
    { prefix: '/files/', upstream: `${pypi.files.url}/` },
  ])
  const indexUrl = mirror.url('/pypi/simple/')
  const wheelUrl = `/files${pypi.wheelPath}`
  const pageUrl = `/pypi/simple/${pypi.project}/`

  // 1. Everything up: the page from the index, the wheel from the files host, both through the mirror.
  const first = await pipDownload(t, python, indexUrl, pypi.project)
  await assertDownloaded(pypi, first, `first download; ${describe(first, mirror)}`)
  assert.deepEqual(
    pypi.files.requests.map((r) => r.url),
    [pypi.wheelPath],
    'the files host saw one request, for the wheel',
  )
  const wheelLines = requestLines(mirror).filter((l) => l.url === wheelUrl)
  assert.equal(
    wheelLines.length,
    1,
    `the wheel went through the mirror (pip never contacted the files host itself); ${describe(first, mirror)}`,
  )
  assert.equal(wheelLines[0]?.['statusCode'], 200)
  assert.equal(wheelLines[0]?.['cache'], 'miss')
  assert.deepEqual(pypi.served, ['json'], 'pip asked for the PEP 691 JSON page, once')

  // 2. Files host down: the wheel is a hit; the page is revalidated with the index.
  await pypi.files.close()
  const second = await pipDownload(t, python, indexUrl, pypi.project)
  await assertDownloaded(pypi, second, `files host down; ${describe(second, mirror)}`)
  assert.deepEqual(
    requestLines(mirror)
      .filter((l) => l.url === wheelUrl)
      .map((l) => l['cache']),
    ['miss', 'hit'],
    'the wheel from the cache',
  )
  assert.deepEqual(pypi.served, ['json', 'json'], 'the page was revalidated with the index')

  // 3. Both down: the stored page stands in (the upstream is unreachable), the wheel is a hit.
  await pypi.index.close()
  const third = await pipDownload(t, python, indexUrl, pypi.project)
  await assertDownloaded(pypi, third, `both down; ${describe(third, mirror)}`)
  const pageLines = requestLines(mirror).filter((l) => l.url === pageUrl)
  assert.deepEqual(
    pageLines.map((l) => [l['statusCode'], l['cache']]),
    [
      [200, 'miss'],
      [200, 'request'],
      [200, 'stale'],
    ],
    'the page: fetched, revalidated (pip sends max-age=0), then served stale',
  )
  assert.equal(
    requestLines(mirror)
      .filter((l) => l.url === wheelUrl)
      .at(-1)?.['cache'],
    'hit',
  )
})

test('pip through a route whose upstream is the simple directory itself', async (t) => {
  const python = await pythonOrSkip(t)
  if (python === undefined) return
  const pypi = await startPypiIndex(t)
  // The index URL users know from pip.conf, given as the upstream: the pages sit at the route's root.
  const mirror = await startPypiMirror(t, [
    { prefix: '/simple/', upstream: `${pypi.index.url}/simple/` },
    { prefix: '/files/', upstream: `${pypi.files.url}/` },
  ])
  const run = await pipDownload(t, python, mirror.url('/simple/'), pypi.project)
  await assertDownloaded(pypi, run, describe(run, mirror))
  const wheelLines = requestLines(mirror).filter((l) => l.url === `/files${pypi.wheelPath}`)
  assert.equal(wheelLines.length, 1, `the page's link was rewritten: the wheel came through the mirror; ${describe(run, mirror)}`)
  assert.equal(pypi.files.count(pypi.wheelPath), 1)
})

test('pip with an HTML-only index that links its own files by absolute path', async (t) => {
  const python = await pythonOrSkip(t)
  if (python === undefined) return
  const pypi = await startPypiIndex(t, { json: false, links: 'absolute-path' })
  const mirror = await startPypiMirror(t, [{ prefix: '/pypi/', upstream: `${pypi.index.url}/` }])
  const run = await pipDownload(t, python, mirror.url('/pypi/simple/'), pypi.project)
  await assertDownloaded(pypi, run, describe(run, mirror))
  // `href="/packages/…"` would name /packages/… on the mirror, under no route: it must stay below /pypi/.
  const wheelLines = requestLines(mirror).filter((l) => l.url === `/pypi${pypi.wheelPath}`)
  assert.deepEqual(
    wheelLines.map((l) => l['statusCode']),
    [200],
    describe(run, mirror),
  )
  assert.equal(pypi.index.count(pypi.wheelPath), 1)
  assert.deepEqual(pypi.served, ['html'])
})
