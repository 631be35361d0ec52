// test/cli/cli.test.ts
// The `cachemir` command as a user runs it: help, start-up errors (exit 2, one line naming the
// field), configuration from the environment, the request log, the bin script, and signals.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { get, getFirstBytes } from '../helpers/client.js'
import { makeBody, serveStatic, sha256, startOrigin } from '../helpers/origin.js'
import type { Origin } from '../helpers/origin.js'
import { ROOT, runCli, startProxyProcess } from '../helpers/proxy.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { cacheFiles } from '../helpers/cache-files.js'
import { within } from '../helpers/wait.js'

const SERVE_OPTIONS = ['--upstream', '--listen', '--cache-dir', '--max-disk', '--max-memory', '--config', '--log-level']

type RunResult = Awaited<ReturnType<typeof runCli>>

/**
 * A start-up error as the user must see it: exit code 2 and exactly one non-empty line on
 * stderr, `cachemir: …`, naming `field`, without a stack trace.
 */
function assertConfigError(result: RunResult, field: string): void {
  const context = `stderr was:\n${result.stderr}\nstdout was:\n${result.stdout}`
  assert.equal(result.code, 2, `exit code; ${context}`)
  const lines = result.stderr.split('\n').filter((line) => line.trim() !== '')
  assert.equal(lines.length, 1, `exactly one line on stderr; ${context}`)
  const line = lines[0] ?? ''
  assert.ok(line.startsWith('cachemir: '), `line starts with "cachemir: "; ${context}`)
  assert.ok(line.includes(field), `line names ${JSON.stringify(field)}; ${context}`)
  assert.doesNotMatch(result.stderr, /^\s+at /m, `no stack frames; ${context}`)
}

/** An origin nobody needs to reach: the process fails before it would contact one. */
const UNUSED_UPSTREAM = 'http://127.0.0.1:9/'

/**
 * `serve` arguments that would start a mirror, with the cache in a temp dir (never the user's
 * ~/.cache); `extra` is appended, and a flag given in `extra` replaces the default one.
 */
async function serveArgs(t: TestContext, extra: string[] = []): Promise<string[]> {
  const cacheDir = await makeTempDir(t, 'cachemir-cli-')
  const defaults: [string, string][] = [
    ['--upstream', UNUSED_UPSTREAM],
    ['--listen', '127.0.0.1:0'],
    ['--cache-dir', cacheDir],
  ]
  const args = ['serve']
  for (const [flag, value] of defaults) if (!extra.includes(flag)) args.push(flag, value)
  return [...args, ...extra]
}

/** Polls every 50 ms until a .meta file is in the cache (a fill commits just after its response ends). */
async function storedFiles(cacheDir: string, timeoutMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const files = (await cacheFiles(cacheDir)).map((f) => f.name)
    if (files.some((name) => name.endsWith('.meta')) || Date.now() > deadline) return files
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function parseJsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>
      } catch {
        throw new Error(`not a JSON log line: ${JSON.stringify(line)}\nfull output:\n${text}`)
      }
    })
}

test('--help exits 0 and lists every serve option', async () => {
  const result = await runCli(['--help'])

  assert.equal(result.code, 0, result.stderr)
  for (const option of SERVE_OPTIONS) assert.ok(result.stdout.includes(option), `--help lists ${option}:\n${result.stdout}`)
})

test('serve --help exits 0 and lists every serve option', async () => {
  const result = await runCli(['serve', '--help'])

  assert.equal(result.code, 0, result.stderr)
  for (const option of SERVE_OPTIONS) assert.ok(result.stdout.includes(option), `serve --help lists ${option}:\n${result.stdout}`)
})

test('cachemir profiles exits 0 and lists each profile with its rules', async () => {
  const result = await runCli(['profiles'])

  assert.equal(result.code, 0, result.stderr)
  for (const name of ['debian', 'alpine', 'npm', 'pypi', 'static']) assert.match(result.stdout, new RegExp(`^${name}: `, 'm'), name)
  assert.match(result.stdout, /^ {2}immutable {2}\(\^\|\\\/\)pool\\\//m, 'the debian pool/ rule is listed')
  assert.match(result.stdout, /^ {2}no-store {2}\. {2}\(login, publish/m, 'the npm pass-through rule is listed')
})

test('--log-format pretty writes human lines, not JSON; a bad value exits 2 naming the flag', async (t) => {
  const dir = await makeTempDir(t, 'cachemir-pretty-')
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist', 'src', 'cli.js'),
      'serve',
      '--upstream',
      'http://127.0.0.1:9/',
      '--listen',
      '127.0.0.1:0',
      '--cache-dir',
      dir,
      '--log-format',
      'pretty',
    ],
    {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  t.after(() => void child.kill('SIGKILL'))
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await within(
    new Promise<void>((resolve) => child.stdout.on('data', () => out.includes('listening') && resolve())),
    10_000,
    'the listening line',
  )
  child.kill('SIGTERM')
  await once(child, 'exit')
  assert.match(out, /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO \(\d+\): listening$/m)
  assert.ok(!out.split('\n').some((line) => line.startsWith('{')), 'no JSON lines')
  const bad = await runCli(['serve', '--upstream', 'http://127.0.0.1:9/', '--log-format', 'fancy'])
  assert.equal(bad.code, 2)
  assert.equal(bad.stderr, 'cachemir: --log-format: expected json or pretty, got "fancy"\n')
})

test('an unknown flag exits 2 with one line naming it', async (t) => {
  const result = await runCli(await serveArgs(t, ['--bogus']))

  assertConfigError(result, 'bogus')
})

const BAD_FLAG_VALUES: readonly { args: string[]; field: string }[] = [
  { args: ['--max-disk', '10XB'], field: '--max-disk' },
  { args: ['--max-memory', '-1'], field: '--max-memory' },
  { args: ['--listen', 'nonsense'], field: '--listen' },
  { args: ['--log-level', 'loud'], field: '--log-level' },
  { args: ['--config', '/nonexistent.json'], field: '--config' },
]

for (const { args, field } of BAD_FLAG_VALUES) {
  test(`a bad value (${args.join(' ')}) exits 2 with one line naming ${field}`, async (t) => {
    const result = await runCli(await serveArgs(t, args))

    assertConfigError(result, field)
    assert.ok(result.stderr.includes(args[1] ?? ''), `quotes the bad value:\n${result.stderr}`)
  })
}

for (const upstream of ['ftp://x', 'not-a-url']) {
  test(`--upstream ${upstream} exits 2 with one line naming --upstream`, async (t) => {
    const cacheDir = await makeTempDir(t, 'cachemir-cli-')
    const result = await runCli(['serve', '--upstream', upstream, '--listen', '127.0.0.1:0', '--cache-dir', cacheDir])

    assertConfigError(result, '--upstream')
  })
}

test('a config file with an unknown key exits 2 with one line naming the file and the key', async (t) => {
  const dir = await makeTempDir(t, 'cachemir-cli-')
  const file = join(dir, 'cachemir.json')
  await writeFile(file, JSON.stringify({ upstreams: [UNUSED_UPSTREAM], cacheDir: join(dir, 'cache'), bogusKey: 1 }, null, 2))

  const result = await runCli(['serve', '--listen', '127.0.0.1:0', '--config', file])

  assertConfigError(result, file)
  assert.ok(result.stderr.includes('bogusKey'), `names the key:\n${result.stderr}`)
})

const INVALID_JSON: readonly { name: string; text: string }[] = [
  { name: 'a truncated object', text: `{\n  "upstreams": ["${UNUSED_UPSTREAM}"],\n` },
  { name: 'a trailing comma in a pretty-printed array', text: `{\n  "upstreams": [\n    "${UNUSED_UPSTREAM}",\n  ]\n}\n` },
  { name: 'YAML instead of JSON', text: `upstreams:\n  - ${UNUSED_UPSTREAM}\n` },
]

for (const { name, text } of INVALID_JSON) {
  test(`a config file with invalid JSON (${name}) exits 2 with one line naming --config and the file`, async (t) => {
    const dir = await makeTempDir(t, 'cachemir-cli-')
    const file = join(dir, 'cachemir.json')
    await writeFile(file, text)

    const result = await runCli(['serve', '--listen', '127.0.0.1:0', '--cache-dir', join(dir, 'cache'), '--config', file])

    assertConfigError(result, '--config')
    assert.ok(result.stderr.includes(file), `names the file:\n${result.stderr}`)
  })
}

test('no upstream at all exits 2 with one line naming --upstream', async (t) => {
  const cacheDir = await makeTempDir(t, 'cachemir-cli-')

  const result = await runCli(['serve', '--listen', '127.0.0.1:0', '--cache-dir', cacheDir])

  assertConfigError(result, '--upstream')
})

test('a cache dir that cannot be created exits 2 with one line naming --cache-dir', async (t) => {
  const dir = await makeTempDir(t, 'cachemir-cli-')
  const file = join(dir, 'f')
  await writeFile(file, 'a regular file, not a directory')

  const result = await runCli(['serve', '--upstream', UNUSED_UPSTREAM, '--listen', '127.0.0.1:0', '--cache-dir', join(file, 'sub')])

  assertConfigError(result, '--cache-dir')
})

test('a port in use exits 2 with one line naming --listen and saying it is in use', async (t) => {
  const blocker = createServer()
  blocker.listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())))
  const { port } = blocker.address() as AddressInfo
  const cacheDir = await makeTempDir(t, 'cachemir-cli-')

  const result = await runCli(['serve', '--upstream', UNUSED_UPSTREAM, '--listen', `127.0.0.1:${port}`, '--cache-dir', cacheDir])

  assertConfigError(result, '--listen')
  assert.match(result.stderr, /in use/)
})

async function startSmallOrigin(t: TestContext, body: Buffer): Promise<Origin> {
  return startOrigin(t, serveStatic({ '/file.bin': { body, headers: { 'cache-control': 'max-age=3600' } } }))
}

test('environment variables alone configure the mirror and it serves a proxied file', async (t) => {
  const body = makeBody(64 * 1024, 7)
  const origin = await startSmallOrigin(t, body)
  const cacheDir = join(await makeTempDir(t, 'cachemir-cli-'), 'from-env')
  // A 1 KiB memory budget cannot hold this 64 KiB body; the default (256 MiB) would.
  const proxy = await startProxyProcess(t, [], {
    CACHEMIR_UPSTREAM: origin.url,
    CACHEMIR_CACHE_DIR: cacheDir,
    CACHEMIR_MAX_MEMORY: '1KiB',
    CACHEMIR_LOG_LEVEL: 'info',
  })

  const first = await get(proxy.url('/file.bin'))
  const second = await get(proxy.url('/file.bin'))
  const health = await get(proxy.url('/_cachemir/health'))

  assert.equal(first.status, 200)
  assert.equal(sha256(first.body), sha256(body))
  assert.equal(second.status, 200)
  assert.equal(sha256(second.body), sha256(body))
  assert.match(second.headers['cache-status'] ?? '', /^cachemir; hit/)
  assert.equal(origin.count('/file.bin'), 1)
  // CACHEMIR_CACHE_DIR: the entry is stored there.
  const files = await storedFiles(cacheDir)
  assert.ok(
    files.some((name) => name.endsWith('.meta')),
    `a .meta file in CACHEMIR_CACHE_DIR: ${files.join(', ')}`,
  )
  assert.ok(
    files.some((name) => name.endsWith('.body')),
    `a .body file in CACHEMIR_CACHE_DIR: ${files.join(', ')}`,
  )
  // CACHEMIR_MAX_MEMORY: the memory tier stays within 1 KiB.
  assert.equal(health.status, 200)
  const stats = JSON.parse(health.body.toString()) as { store: { memoryBytes: number } }
  assert.ok(stats.store.memoryBytes <= 1024, `memoryBytes ${stats.store.memoryBytes} within CACHEMIR_MAX_MEMORY=1KiB`)
})

test('a flag wins over its environment variable', async (t) => {
  const body = makeBody(1000, 8)
  const origin = await startSmallOrigin(t, body)
  const cacheDir = await makeTempDir(t, 'cachemir-cli-')
  // startProxyProcess passes --listen 127.0.0.1:0, so the bad CACHEMIR_LISTEN must be ignored.
  const proxy = await startProxyProcess(t, ['--upstream', origin.url, '--cache-dir', cacheDir], {
    CACHEMIR_LISTEN: 'nonsense',
    CACHEMIR_UPSTREAM: 'ftp://ignored',
  })

  const res = await get(proxy.url('/file.bin'))

  assert.equal(res.status, 200)
  assert.equal(sha256(res.body), sha256(body))
  assert.equal(origin.count('/file.bin'), 1)
})

const BAD_ENV_VALUES: readonly { name: string; value: string }[] = [
  { name: 'CACHEMIR_MAX_DISK', value: 'lots' },
  { name: 'CACHEMIR_MAX_MEMORY', value: '-1' },
  { name: 'CACHEMIR_LOG_LEVEL', value: 'loud' },
  { name: 'CACHEMIR_UPSTREAM', value: 'ftp://x' },
  { name: 'CACHEMIR_LISTEN', value: 'nonsense' },
]

for (const { name, value } of BAD_ENV_VALUES) {
  test(`a bad environment value (${name}=${value}) exits 2 with one line naming ${name}`, async (t) => {
    const cacheDir = await makeTempDir(t, 'cachemir-cli-')
    const env: Record<string, string> = {
      CACHEMIR_UPSTREAM: UNUSED_UPSTREAM,
      CACHEMIR_LISTEN: '127.0.0.1:0',
      CACHEMIR_CACHE_DIR: cacheDir,
      [name]: value,
    }

    const result = await runCli(['serve'], env)

    assertConfigError(result, name)
  })
}

test('each request produces one JSON "request completed" log line with its fields', async (t) => {
  const body = makeBody(10_000, 9)
  const origin = await startSmallOrigin(t, body)
  const cacheDir = await makeTempDir(t, 'cachemir-cli-')
  const proxy = await startProxyProcess(t, ['--upstream', origin.url, '--cache-dir', cacheDir, '--log-level', 'info'])

  const miss = await get(proxy.url('/file.bin'))
  const hit = await get(proxy.url('/file.bin'))
  const missing = await get(proxy.url('/nope'))
  // A clean stop flushes the log, so every line is in the output once the process has exited.
  const code = await within(proxy.kill('SIGTERM'), 15_000, 'exit after SIGTERM')

  assert.equal(code, 0, proxy.output())
  assert.equal(sha256(miss.body), sha256(body))
  assert.equal(sha256(hit.body), sha256(body))
  assert.equal(missing.status, 404)
  const lines = parseJsonLines(proxy.output())
  const completed = lines.filter((line) => line['msg'] === 'request completed')
  assert.equal(completed.length, 3, `three request lines:\n${proxy.output()}`)
  const forFile = completed.filter((line) => line['url'] === '/file.bin')
  assert.equal(forFile.length, 2, `two lines for /file.bin:\n${proxy.output()}`)
  for (const line of completed) {
    assert.equal(line['method'], 'GET')
    assert.equal(typeof line['url'], 'string')
    assert.equal(typeof line['statusCode'], 'number')
    assert.equal(typeof line['cache'], 'string')
    assert.equal(typeof line['bytes'], 'number')
    assert.equal(typeof line['durationMs'], 'number')
    assert.ok((line['durationMs'] as number) >= 0)
  }
  assert.deepEqual(
    forFile.map((line) => [line['statusCode'], line['cache']]),
    [
      [200, 'miss'],
      [200, 'hit'],
    ],
  )
  for (const line of forFile) assert.ok((line['bytes'] as number) >= body.length, `bytes ${String(line['bytes'])} include the body`)
  const notFound = completed.find((line) => line['url'] === '/nope')
  assert.equal(notFound?.['statusCode'], 404)
  assert.equal(origin.count('/file.bin'), 1)
  assert.equal(origin.count('/nope'), 1)
})

test('./bin/cachemir --help works', async () => {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'cachemir'), '--help'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
  clearTimeout(timer)

  assert.equal(code ?? signal, 0, stderr)
  for (const option of SERVE_OPTIONS) assert.ok(stdout.includes(option), `bin --help lists ${option}:\n${stdout}`)
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} on an idle server exits 0`, async (t) => {
    const cacheDir = await makeTempDir(t, 'cachemir-cli-')
    const proxy = await startProxyProcess(t, ['--upstream', UNUSED_UPSTREAM, '--cache-dir', cacheDir])
    // The server has answered a request (and closed the connection), so it is up and idle.
    const health = await get(proxy.url('/_cachemir/health'))

    const code = await within(proxy.kill(signal), 15_000, `exit after ${signal}`)

    assert.equal(health.status, 200)
    assert.equal(code, 0, proxy.output())
  })

  test(`${signal} as soon as the listening line appears exits 0`, async (t) => {
    // The listening line tells a supervisor the server is up; a stop right then is a clean stop.
    // Several processes, because a missing signal handler shows up only when the signal wins the race.
    const codes = await Promise.all(
      Array.from({ length: 10 }, async () => {
        const cacheDir = await makeTempDir(t, 'cachemir-cli-')
        const proxy = await startProxyProcess(t, ['--upstream', UNUSED_UPSTREAM, '--cache-dir', cacheDir])
        return within(proxy.kill(signal), 15_000, `exit after ${signal}`)
      }),
    )

    assert.deepEqual(
      codes,
      Array.from({ length: 10 }, () => 0),
      `exit codes (a signal name means the process died of the signal)`,
    )
  })
}

const IN_FLIGHT_CASES: readonly { name: string; cacheControl: string }[] = [
  { name: 'a cacheable response being filled', cacheControl: 'max-age=3600' },
  { name: 'an uncacheable response passed through', cacheControl: 'no-store' },
]

for (const { name, cacheControl } of IN_FLIGHT_CASES) {
  test(`SIGTERM during ${name} lets the client receive the whole body, then exits 0`, async (t) => {
    const body = makeBody(1024 * 1024, 11)
    // About 1 s for the whole body.
    const origin = await startOrigin(
      t,
      serveStatic({ '/slow.bin': { body, headers: { 'cache-control': cacheControl }, send: { bytesPerSecond: 1024 * 1024 } } }),
    )
    const cacheDir = await makeTempDir(t, 'cachemir-cli-')
    const proxy = await startProxyProcess(t, ['--upstream', origin.url, '--cache-dir', cacheDir])

    const inFlight = await getFirstBytes(proxy.url('/slow.bin'), 1)
    const exited = proxy.kill('SIGTERM')
    const res = await inFlight.rest()
    const code = await within(exited, 15_000, 'exit after SIGTERM')

    assert.equal(res.status, 200)
    assert.equal(res.complete, true, `complete body; error: ${String(res.error)}`)
    assert.equal(res.body.length, body.length)
    assert.equal(sha256(res.body), sha256(body))
    assert.equal(code, 0, proxy.output())
    assert.equal(origin.count('/slow.bin'), 1)
  })
}

test('a relative --cache-dir is created relative to the working directory', async (t) => {
  const body = makeBody(2000, 12)
  const origin = await startSmallOrigin(t, body)
  const work = await makeTempDir(t, 'cachemir-cli-')
  await mkdir(join(work, 'sub'))
  const child = spawn(
    process.execPath,
    [join(ROOT, 'dist', 'src', 'cli.js'), 'serve', '--listen', '127.0.0.1:0', '--upstream', origin.url, '--cache-dir', 'rel-cache'],
    {
      cwd: join(work, 'sub'),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const exited = once(child, 'exit')
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (out += d.toString()))
  const port = await within(
    new Promise<number>((resolve) => {
      const check = (): void => {
        const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(out)
        if (m !== null) {
          child.stdout.off('data', check)
          resolve(Number(m[1]))
        }
      }
      child.stdout.on('data', check)
    }),
    10_000,
    'listening line',
  )

  const res = await get(`http://127.0.0.1:${port}/file.bin`)

  assert.equal(sha256(res.body), sha256(body))
  const files = await storedFiles(join(work, 'sub', 'rel-cache'))
  assert.ok(
    files.some((name) => name.endsWith('.meta')),
    `entry stored under sub/rel-cache: ${files.join(', ')}\n${out}`,
  )
})
