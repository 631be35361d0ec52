// test/unit/config.test.ts
// resolveConfig(): precedence, config-file routes and rules, and one ConfigError naming every bad field.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test, type TestContext } from 'node:test'
import {
  type CacheRule,
  type Config,
  type ConfigInput,
  DEFAULTS,
  defaultCacheDir,
  describeListen,
  ENV_VARS,
  resolveConfig,
  type Route,
} from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'

type Env = Record<string, string | undefined>

const UP = 'http://origin.test/'

/** Writes `content` (JSON-encoded unless a string) into a fresh temp dir removed after the test. */
function writeConfig(t: TestContext, content: unknown, name = 'cachemir.json'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cachemir-config-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, name)
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content))
  return file
}

/** Runs resolveConfig, asserts it throws one ConfigError, and returns its problems. */
function problemsOf(args: ConfigInput, env: Env = {}): readonly string[] {
  try {
    resolveConfig(args, env)
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    assert.equal(err.code, 'CACHEMIR_CONFIG_INVALID')
    assert.equal(err.message, err.problems.join('; '))
    return err.problems
  }
  return assert.fail('expected resolveConfig to throw')
}

function hrefs(route: Route | undefined): string[] {
  return route?.upstreams.map((url) => url.href) ?? []
}

test('unset settings take their DEFAULTS', () => {
  const config = resolveConfig({ upstream: [UP] }, {})
  assert.equal(config.host, '127.0.0.1')
  assert.equal(config.port, 8080)
  assert.equal(config.maxDiskBytes, 10 * 1024 ** 3)
  assert.equal(config.maxMemoryBytes, 256 * 1024 ** 2)
  assert.equal(config.logLevel, 'info')
  assert.equal(config.cacheDir, path.join(os.homedir(), '.cache', 'cachemir'))
  assert.deepEqual(
    { host: DEFAULTS.host, port: DEFAULTS.port, maxDiskBytes: DEFAULTS.maxDiskBytes },
    { host: '127.0.0.1', port: 8080, maxDiskBytes: 10_737_418_240 },
  )
  assert.equal(DEFAULTS.maxMemoryBytes, 268_435_456)
  assert.equal(DEFAULTS.logLevel, 'info')
})

test('the default cache dir follows an absolute XDG_CACHE_HOME and ignores a relative one', () => {
  const home = path.join(os.homedir(), '.cache', 'cachemir')
  const cases: [Env, string][] = [
    [{}, home],
    [{ XDG_CACHE_HOME: '/var/cache/me' }, '/var/cache/me/cachemir'],
    [{ XDG_CACHE_HOME: 'relative/cache' }, home],
    [{ CACHEMIR_CACHE_DIR: '/elsewhere' }, home],
  ]
  for (const [env, expected] of cases) {
    assert.equal(defaultCacheDir(env), expected, JSON.stringify(env))
  }
  assert.equal(resolveConfig({ upstream: [UP] }, { XDG_CACHE_HOME: '/x' }).cacheDir, '/x/cachemir')
})

test('ENV_VARS names the variable behind each setting', () => {
  assert.deepEqual(
    { ...ENV_VARS },
    {
      upstream: 'CACHEMIR_UPSTREAM',
      listen: 'CACHEMIR_LISTEN',
      cacheDir: 'CACHEMIR_CACHE_DIR',
      maxDisk: 'CACHEMIR_MAX_DISK',
      maxMemory: 'CACHEMIR_MAX_MEMORY',
      config: 'CACHEMIR_CONFIG',
      logLevel: 'CACHEMIR_LOG_LEVEL',
      offline: 'CACHEMIR_OFFLINE',
      shutdownGrace: 'CACHEMIR_SHUTDOWN_GRACE',
      caFile: 'CACHEMIR_CA_FILE',
      connectTimeout: 'CACHEMIR_CONNECT_TIMEOUT',
      headersTimeout: 'CACHEMIR_HEADERS_TIMEOUT',
      idleTimeout: 'CACHEMIR_IDLE_TIMEOUT',
      workers: 'CACHEMIR_WORKERS',
      name: 'CACHEMIR_NAME',
      profile: 'CACHEMIR_PROFILE',
      publicUrl: 'CACHEMIR_PUBLIC_URL',
      adminToken: 'CACHEMIR_ADMIN_TOKEN',
      syncEvery: 'CACHEMIR_SYNC_EVERY',
      logFormat: 'CACHEMIR_LOG_FORMAT',
      proxyAllow: 'CACHEMIR_PROXY_ALLOW',
      connectAllow: 'CACHEMIR_CONNECT_ALLOW',
    },
  )
})

test('each setting takes the flag over the variable over the config file over the default', (t) => {
  const settings: {
    name: string
    flag: ConfigInput
    env: Env
    file: Record<string, unknown>
    read: (config: Config) => unknown
    values: [flag: unknown, env: unknown, file: unknown, fallback: unknown]
  }[] = [
    {
      name: 'listen',
      flag: { listen: '127.0.0.1:1' },
      env: { CACHEMIR_LISTEN: '127.0.0.1:2' },
      file: { listen: '127.0.0.1:3' },
      read: (c) => c.port,
      values: [1, 2, 3, 8080],
    },
    {
      name: 'cacheDir',
      flag: { cacheDir: '/from/flag' },
      env: { CACHEMIR_CACHE_DIR: '/from/env' },
      file: { cacheDir: '/from/file' },
      read: (c) => c.cacheDir,
      values: ['/from/flag', '/from/env', '/from/file', path.join(os.homedir(), '.cache', 'cachemir')],
    },
    {
      name: 'maxDisk',
      flag: { maxDisk: '1KiB' },
      env: { CACHEMIR_MAX_DISK: '2KiB' },
      file: { maxDisk: '3KiB' },
      read: (c) => c.maxDiskBytes,
      values: [1024, 2048, 3072, 10 * 1024 ** 3],
    },
    {
      name: 'maxMemory',
      flag: { maxMemory: '1MB' },
      env: { CACHEMIR_MAX_MEMORY: '2MB' },
      file: { maxMemory: 3_000_000 },
      read: (c) => c.maxMemoryBytes,
      values: [1_000_000, 2_000_000, 3_000_000, 256 * 1024 ** 2],
    },
    {
      name: 'logLevel',
      flag: { logLevel: 'debug' },
      env: { CACHEMIR_LOG_LEVEL: 'warn' },
      file: { logLevel: 'error' },
      read: (c) => c.logLevel,
      values: ['debug', 'warn', 'error', 'info'],
    },
    {
      name: 'name',
      flag: { name: 'edge-1' },
      env: { CACHEMIR_NAME: 'edge-2' },
      file: { name: 'edge-3' },
      read: (c) => c.name,
      values: ['edge-1', 'edge-2', 'edge-3', 'cachemir'],
    },
  ]
  for (const s of settings) {
    const file = writeConfig(t, { upstreams: [UP], ...s.file })
    const bare = writeConfig(t, { upstreams: [UP] })
    const [flag, env, fromFile, fallback] = s.values
    assert.equal(s.read(resolveConfig({ ...s.flag, config: file }, s.env)), flag, `${s.name}: flag`)
    assert.equal(s.read(resolveConfig({ config: file }, s.env)), env, `${s.name}: env`)
    assert.equal(s.read(resolveConfig({ config: file }, {})), fromFile, `${s.name}: file`)
    assert.equal(s.read(resolveConfig({ config: bare }, {})), fallback, `${s.name}: default`)
  }
})

test('upstreams come from the flag, else the variable, else the file', (t) => {
  const file = writeConfig(t, { upstreams: ['http://file.test/'] })
  const env = { CACHEMIR_UPSTREAM: 'http://env.test/' }
  const catchAll = (args: ConfigInput, e: Env): string[] => hrefs(resolveConfig(args, e).routes[0])
  assert.deepEqual(catchAll({ upstream: ['http://flag.test/'], config: file }, env), ['http://flag.test/'])
  assert.deepEqual(catchAll({ config: file }, env), ['http://env.test/'])
  assert.deepEqual(catchAll({ config: file }, {}), ['http://file.test/'])
})

test('the config file is found through CACHEMIR_CONFIG when --config is absent', (t) => {
  const file = writeConfig(t, { upstreams: [UP], listen: ':9999' })
  assert.equal(resolveConfig({}, { CACHEMIR_CONFIG: file }).port, 9999)
})

test('CACHEMIR_UPSTREAM splits on commas and whitespace', () => {
  const cases = [
    'http://a.test/,http://b.test/',
    'http://a.test/ http://b.test/',
    ' http://a.test/ ,\n\thttp://b.test/ ,',
    ',http://a.test,,http://b.test/',
  ]
  for (const value of cases) {
    const config = resolveConfig({}, { CACHEMIR_UPSTREAM: value })
    assert.deepEqual(hrefs(config.routes[0]), ['http://a.test/', 'http://b.test/'], JSON.stringify(value))
  }
})

test('blank environment variables count as unset', () => {
  const config = resolveConfig(
    { upstream: [UP] },
    { CACHEMIR_LISTEN: '', CACHEMIR_MAX_DISK: '  ', CACHEMIR_LOG_LEVEL: '', CACHEMIR_CONFIG: '' },
  )
  assert.equal(config.port, 8080)
  assert.equal(config.maxDiskBytes, DEFAULTS.maxDiskBytes)
  assert.equal(config.logLevel, 'info')
  assert.deepEqual(problemsOf({}, { CACHEMIR_UPSTREAM: ' \n', CACHEMIR_CONFIG: '' }), [
    '--upstream: at least one upstream is required (or a config file with routes)',
  ])
})

test('config file routes become normalized routes with compiled rules', (t) => {
  const file = writeConfig(t, {
    $schema: './cachemir.schema.json',
    routes: [
      {
        prefix: '/debian',
        upstreams: ['https://deb.example.org/debian', 'http://mirror.test/debian/'],
        rules: [
          { match: '\\.deb$', cache: 'immutable' },
          { match: '/InRelease$', cache: 'revalidate', ttl: '10m' },
          { match: '^dists/', ttl: 30 },
          { match: 'secret', cache: 'no-store' },
        ],
      },
      { prefix: '/alpine/', upstreams: ['https://dl-cdn.alpinelinux.org/alpine/'] },
    ],
  })
  const config = resolveConfig({ config: file }, {})
  const debian = config.routes.find((r) => r.prefix === '/debian/')
  assert.ok(debian)
  assert.deepEqual(hrefs(debian), ['https://deb.example.org/debian/', 'http://mirror.test/debian/'])
  const rules = debian.rules.map((r: CacheRule) => ({ source: r.pattern.source, mode: r.mode, ttlMs: r.ttlMs }))
  assert.deepEqual(rules, [
    { source: '\\.deb$', mode: 'immutable', ttlMs: undefined },
    { source: '\\/InRelease$', mode: 'revalidate', ttlMs: 600_000 },
    { source: '^dists\\/', mode: 'default', ttlMs: 30_000 },
    { source: 'secret', mode: 'no-store', ttlMs: undefined },
  ])
  assert.ok(debian.rules[0]?.pattern.test('pool/main/a/a_1.0.deb'))
  const alpine = config.routes.find((r) => r.prefix === '/alpine/')
  assert.deepEqual(alpine?.rules, [])
})

test('the file upstreams key is shorthand for a catch-all route', (t) => {
  const file = writeConfig(t, { upstreams: ['http://a.test', 'http://b.test/x'] })
  const config = resolveConfig({ config: file }, {})
  assert.equal(config.routes.length, 1)
  assert.equal(config.routes[0]?.prefix, '/')
  assert.deepEqual(hrefs(config.routes[0]), ['http://a.test/', 'http://b.test/x/'])
  assert.deepEqual(config.routes[0]?.rules, [])
})

test('routes are sorted longest prefix first, the catch-all last', (t) => {
  const file = writeConfig(t, {
    routes: [
      { prefix: '/a/', upstreams: [UP] },
      { prefix: '/a/bb/ccc/', upstreams: [UP] },
      { prefix: '/a/bb/', upstreams: [UP] },
    ],
  })
  const config = resolveConfig({ config: file, upstream: [UP] }, {})
  assert.deepEqual(
    config.routes.map((r) => r.prefix),
    ['/a/bb/ccc/', '/a/bb/', '/a/', '/'],
  )
})

test('a relative cacheDir resolves against the file directory or the working directory', (t) => {
  const file = writeConfig(t, { upstreams: [UP], cacheDir: 'cache' })
  const cases: [ConfigInput, Env, string][] = [
    [{ config: file }, {}, path.join(path.dirname(file), 'cache')],
    [{ config: file, cacheDir: 'from-flag' }, {}, path.join(process.cwd(), 'from-flag')],
    [{ config: file }, { CACHEMIR_CACHE_DIR: 'from-env' }, path.join(process.cwd(), 'from-env')],
    [{ config: file, cacheDir: '/abs/dir' }, {}, '/abs/dir'],
    [{ upstream: [UP], cacheDir: './a/../b' }, {}, path.join(process.cwd(), 'b')],
  ]
  for (const [args, env, expected] of cases) {
    const { cacheDir } = resolveConfig(args, env)
    assert.equal(cacheDir, expected)
    assert.ok(path.isAbsolute(cacheDir))
  }
})

test('listen accepts HOST:PORT, bracketed IPv6, :PORT and a bare port', () => {
  const cases: [string, string, number][] = [
    ['127.0.0.1:8080', '127.0.0.1', 8080],
    ['0.0.0.0:80', '0.0.0.0', 80],
    ['localhost:3000', 'localhost', 3000],
    ['[::1]:8080', '::1', 8080],
    ['[::]:0', '::', 0],
    [':9000', '127.0.0.1', 9000],
    ['9000', '127.0.0.1', 9000],
    ['0', '127.0.0.1', 0],
    ['example.test:65535', 'example.test', 65535],
  ]
  for (const [listen, host, port] of cases) {
    const config = resolveConfig({ upstream: [UP], listen }, {})
    assert.deepEqual({ host: config.host, port: config.port }, { host, port }, listen)
  }
})

test('listen refuses anything but HOST:PORT with a port in 0..65535', () => {
  const cases = [
    'abc',
    '',
    '127.0.0.1',
    '127.0.0.1:',
    '127.0.0.1:65536',
    '::1:8080',
    '[::1]',
    '[nope]:80',
    'a b:80',
    '-1',
    '1.5',
    'host:port',
  ]
  for (const listen of cases) {
    assert.deepEqual(
      problemsOf({ upstream: [UP], listen }),
      [`--listen: expected HOST:PORT like "127.0.0.1:8080", got ${JSON.stringify(listen)}`],
      listen,
    )
  }
})

test('describeListen brackets IPv6 hosts', () => {
  assert.equal(describeListen({ host: '127.0.0.1', port: 8080 }), '127.0.0.1:8080')
  assert.equal(describeListen({ host: '::1', port: 8080 }), '[::1]:8080')
  assert.equal(describeListen(resolveConfig({ upstream: [UP], listen: '[::1]:0' }, {})), '[::1]:0')
})

test('each bad value yields a message naming its flag or variable, what was expected and what was got', () => {
  const cases: [ConfigInput, Env, string][] = [
    [{ maxDisk: '10XB' }, {}, '--max-disk: expected a size like "10GiB", got "10XB"'],
    [{}, { CACHEMIR_MAX_DISK: '10XB' }, 'CACHEMIR_MAX_DISK: expected a size like "10GiB", got "10XB"'],
    [{ maxMemory: '-1' }, {}, '--max-memory: expected a size like "256MiB", got "-1"'],
    [{}, { CACHEMIR_MAX_MEMORY: 'lots' }, 'CACHEMIR_MAX_MEMORY: expected a size like "256MiB", got "lots"'],
    [{ listen: 'abc' }, {}, '--listen: expected HOST:PORT like "127.0.0.1:8080", got "abc"'],
    [{}, { CACHEMIR_LISTEN: 'abc' }, 'CACHEMIR_LISTEN: expected HOST:PORT like "127.0.0.1:8080", got "abc"'],
    [{ logLevel: 'loud' }, {}, '--log-level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
    [{}, { CACHEMIR_LOG_LEVEL: 'INFO' }, 'CACHEMIR_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "INFO"'],
    [{ cacheDir: '' }, {}, '--cache-dir: expected a directory path, got ""'],
  ]
  for (const [args, env, message] of cases) {
    assert.deepEqual(problemsOf({ upstream: [UP], ...args }, env), [message])
  }
})

test('upstream URLs must be plain http or https base URLs', () => {
  const cases: [string, string][] = [
    ['ftp://x', '--upstream: expected an http:// or https:// URL, got "ftp://x"'],
    ['not a url', '--upstream: expected an http:// or https:// URL, got "not a url"'],
    ['/relative', '--upstream: expected an http:// or https:// URL, got "/relative"'],
    ['http://user:secret@x.test/', '--upstream: expected an http:// or https:// URL without user:password, got "http://***:***@x.test/"'],
    ['ftp://user:secret@x.test/', '--upstream: expected an http:// or https:// URL, got "ftp://***:***@x.test/"'],
    ['http://user@x.test/', '--upstream: expected an http:// or https:// URL without user:password, got "http://***@x.test/"'],
    ['http://x.test/?a=1', '--upstream: expected an http:// or https:// URL without a query or fragment, got "http://x.test/?a=1"'],
    ['http://x.test/?', '--upstream: expected an http:// or https:// URL without a query or fragment, got "http://x.test/?"'],
    ['http://x.test/#top', '--upstream: expected an http:// or https:// URL without a query or fragment, got "http://x.test/#top"'],
  ]
  for (const [upstream, message] of cases) {
    assert.deepEqual(problemsOf({ upstream: [upstream] }), [message], upstream)
  }
  assert.deepEqual(problemsOf({}, { CACHEMIR_UPSTREAM: 'http://ok.test/,ftp://x' }), [
    'CACHEMIR_UPSTREAM: expected an http:// or https:// URL, got "ftp://x"',
  ])
})

test('upstream paths are normalized to end with a slash', () => {
  const cases: [string, string][] = [
    ['http://x.test', 'http://x.test/'],
    ['https://x.test/debian', 'https://x.test/debian/'],
    ['https://x.test/debian/', 'https://x.test/debian/'],
    ['HTTP://X.TEST:80/a', 'http://x.test/a/'],
  ]
  for (const [upstream, href] of cases) {
    assert.deepEqual(hrefs(resolveConfig({ upstream: [upstream] }, {}).routes[0]), [href])
  }
})

test('the same upstream twice in one route is a problem', (t) => {
  assert.deepEqual(problemsOf({ upstream: ['http://a.test', 'http://a.test/'] }), [
    '--upstream: expected distinct upstreams, got "http://a.test/" twice',
  ])
  const file = writeConfig(t, { routes: [{ prefix: '/x/', upstreams: [UP, UP] }] })
  assert.deepEqual(problemsOf({ config: file }), [`${file}: routes[0].upstreams[1]: expected distinct upstreams, got "${UP}" twice`])
})

test('no upstream and no file routes is a problem', (t) => {
  const message = '--upstream: at least one upstream is required (or a config file with routes)'
  assert.deepEqual(problemsOf({}), [message])
  assert.deepEqual(problemsOf({ upstream: [] }), [message])
  assert.deepEqual(problemsOf({ config: writeConfig(t, { routes: [] }) }), [message])
  assert.deepEqual(problemsOf({ config: writeConfig(t, { listen: ':1' }) }), [message])
})

test('upstreams and a file route for / together are a problem', (t) => {
  const file = writeConfig(t, { routes: [{ prefix: '/', upstreams: [UP] }] })
  assert.deepEqual(problemsOf({ config: file, upstream: [UP] }), [
    `--upstream: upstreams given twice for prefix / (also ${file}: routes[0])`,
  ])
  assert.deepEqual(problemsOf({ config: file }, { CACHEMIR_UPSTREAM: UP }), [
    `CACHEMIR_UPSTREAM: upstreams given twice for prefix / (also ${file}: routes[0])`,
  ])
  const both = writeConfig(t, { upstreams: [UP], routes: [{ prefix: '/', upstreams: [UP] }] })
  assert.deepEqual(problemsOf({ config: both }), [`${both}: upstreams: upstreams given twice for prefix / (also ${both}: routes[0])`])
})

test('route prefixes must be clean, unique paths outside /_cachemir/', (t) => {
  const cases: [unknown, string][] = [
    ['debian/', 'expected a path prefix like "/debian/", got "debian/"'],
    [7, 'expected a path prefix like "/debian/", got 7'],
    [undefined, 'expected a path prefix like "/debian/", got nothing'],
    ['/a/../b/', 'expected a path prefix like "/debian/" without "..", "//", "?" or "#", got "/a/../b/"'],
    ['/a//b/', 'expected a path prefix like "/debian/" without "..", "//", "?" or "#", got "/a//b/"'],
    ['/a?b', 'expected a path prefix like "/debian/" without "..", "//", "?" or "#", got "/a?b"'],
    ['/a#b', 'expected a path prefix like "/debian/" without "..", "//", "?" or "#", got "/a#b"'],
    [
      '/_cachemir/',
      `expected a path prefix like "/debian/" outside /_cachemir/ (reserved for the mirror's own endpoints), got "/_cachemir/"`,
    ],
    [
      '/_cachemir/stats',
      `expected a path prefix like "/debian/" outside /_cachemir/ (reserved for the mirror's own endpoints), got "/_cachemir/stats"`,
    ],
    [
      '/_cachemir',
      `expected a path prefix like "/debian/" outside /_cachemir/ (reserved for the mirror's own endpoints), got "/_cachemir"`,
    ],
  ]
  for (const [prefix, message] of cases) {
    const file = writeConfig(t, { routes: [{ prefix, upstreams: [UP] }] })
    assert.deepEqual(problemsOf({ config: file }), [`${file}: routes[0].prefix: ${message}`], String(prefix))
  }
  const dup = writeConfig(t, {
    routes: [
      { prefix: '/a', upstreams: [UP] },
      { prefix: '/b/', upstreams: [UP] },
      { prefix: '/a/', upstreams: [UP] },
    ],
  })
  assert.deepEqual(problemsOf({ config: dup }), [`${dup}: routes[2].prefix: expected a unique prefix, got "/a/" (also ${dup}: routes[0])`])
})

test('every route needs at least one upstream', (t) => {
  const file = writeConfig(t, {
    routes: [{ prefix: '/a/', upstreams: [] }, { prefix: '/b/' }, { prefix: '/c/', upstreams: 'http://x.test/' }],
  })
  assert.deepEqual(problemsOf({ config: file }), [
    `${file}: routes[0].upstreams: expected at least one http:// or https:// URL, got none`,
    `${file}: routes[1].upstreams: expected an array of http:// or https:// URLs, got nothing`,
    `${file}: routes[2].upstreams: expected an array of http:// or https:// URLs, got "http://x.test/"`,
  ])
})

test('unknown keys are problems at the top level, in a route and in a rule', (t) => {
  const cases: [unknown, string][] = [
    [
      { upstreams: [UP], upstream: [UP] },
      'upstream: unknown key (expected one of listen, cacheDir, maxDisk, maxMemory, logLevel, upstreams, routes, offline, shutdownGrace, caFile, timeouts, workers, name, profile, publicUrl, adminToken, syncEvery, logFormat, proxyAllow, connectAllow)',
    ],
    [
      { routes: [{ prefix: '/', upstream: [UP], upstreams: [UP] }] },
      'routes[0].upstream: unknown key (expected one of prefix, upstreams, rules, timeouts, followRedirects, profile, upstreamAuth, shareAuthenticated)',
    ],
    [
      { routes: [{ prefix: '/', upstreams: [UP], rules: [{ match: 'x', ttl: 1, maxAge: 3 }] }] },
      'routes[0].rules[0].maxAge: unknown key (expected one of match, cache, ttl, storeSetCookie)',
    ],
  ]
  for (const [content, message] of cases) {
    const file = writeConfig(t, content)
    assert.deepEqual(problemsOf({ config: file }), [`${file}: ${message}`])
  }
})

test('bad rules name the rule and the key', (t) => {
  const file = writeConfig(t, {
    routes: [
      {
        prefix: '/r/',
        upstreams: [UP],
        rules: [{ match: '(' }, { cache: 'forever' }, { match: 'x', ttl: '-5m' }, { match: 'x', ttl: -1 }, 'x'],
      },
      { prefix: '/s/', upstreams: [UP], rules: {} },
    ],
  })
  const problems = problemsOf({ config: file })
  assert.deepEqual(problems, [
    `${file}: routes[0].rules[0].match: expected a valid regular expression, got "(" (Invalid regular expression: /(/: Unterminated group)`,
    `${file}: routes[0].rules[1].match: expected a regular expression like "\\\\.deb$", got nothing`,
    `${file}: routes[0].rules[1].cache: expected one of default, immutable, revalidate, no-store, got "forever"`,
    `${file}: routes[0].rules[2].ttl: expected a duration like "10m" or a number of seconds, got "-5m"`,
    `${file}: routes[0].rules[3].ttl: expected a duration like "10m" or a number of seconds, got -1`,
    `${file}: routes[0].rules[4]: expected an object like {"match": "\\\\.deb$", "cache": "immutable"}, got "x"`,
    `${file}: routes[1].rules: expected an array like [{"match": "\\\\.deb$", "cache": "immutable"}], got {}`,
  ])
})

test('file sizes accept a size string or a whole non-negative number of bytes', (t) => {
  const good: [unknown, number][] = [
    ['1GiB', 1024 ** 3],
    [0, 0],
    [4096, 4096],
  ]
  for (const [maxDisk, bytes] of good) {
    const file = writeConfig(t, { upstreams: [UP], maxDisk })
    assert.equal(resolveConfig({ config: file }, {}).maxDiskBytes, bytes)
  }
  for (const maxDisk of [-1, 1.5, '10XB', null, true]) {
    const file = writeConfig(t, { upstreams: [UP], maxDisk })
    assert.deepEqual(problemsOf({ config: file }), [`${file}: maxDisk: expected a size like "10GiB", got ${JSON.stringify(maxDisk)}`])
  }
})

test('an unreadable or invalid config file is a problem named after --config or CACHEMIR_CONFIG', (t) => {
  const missing = path.join(path.dirname(writeConfig(t, {})), 'x.json')
  assert.deepEqual(problemsOf({ config: missing }), [`--config: cannot read ${JSON.stringify(missing)}: ENOENT`])
  assert.deepEqual(problemsOf({}, { CACHEMIR_CONFIG: missing }), [`CACHEMIR_CONFIG: cannot read ${JSON.stringify(missing)}: ENOENT`])
  assert.deepEqual(problemsOf({ config: path.dirname(missing) }), [
    `--config: cannot read ${JSON.stringify(path.dirname(missing))}: EISDIR`,
  ])

  const broken = writeConfig(t, '{ "listen": ')
  const [problem, ...rest] = problemsOf({ config: broken, upstream: [UP] })
  const prefix = `--config: ${JSON.stringify(broken)} is not valid JSON: `
  assert.ok(problem?.startsWith(prefix) && problem.length > prefix.length, problem)
  assert.deepEqual(rest, [])

  const array = writeConfig(t, '[]')
  assert.deepEqual(problemsOf({ config: array, upstream: [UP] }), [
    `${array}: expected a JSON object like {"upstreams": ["https://example.org/"]}, got []`,
  ])
})

test('a config file with a byte order mark still parses', (t) => {
  const file = writeConfig(t, `\uFEFF${JSON.stringify({ upstreams: [UP] })}`)
  assert.equal(resolveConfig({ config: file }, {}).routes.length, 1)
})

test('all problems from flags, variables and the file come back in one ConfigError', (t) => {
  const file = writeConfig(t, {
    maxMemory: 'huge',
    bogus: true,
    routes: [{ prefix: 'nope', upstreams: ['ftp://x'] }],
  })
  const problems = problemsOf({ config: file, maxDisk: '10XB', listen: 'abc', upstream: ['ftp://y'] }, { CACHEMIR_LOG_LEVEL: 'loud' })
  const fields = [
    `${file}: maxMemory:`,
    `${file}: bogus:`,
    `${file}: routes[0].prefix:`,
    `${file}: routes[0].upstreams[0]:`,
    '--max-disk:',
    '--listen:',
    '--upstream:',
    'CACHEMIR_LOG_LEVEL:',
  ]
  assert.equal(problems.length, fields.length, problems.join('\n'))
  for (const field of fields) {
    assert.ok(
      problems.some((p) => p.startsWith(field)),
      `no problem for ${field} in:\n${problems.join('\n')}`,
    )
  }
})

test('the resolved config is deeply frozen', (t) => {
  const file = writeConfig(t, {
    routes: [{ prefix: '/a/', upstreams: [UP], rules: [{ match: 'x', cache: 'immutable' }] }],
  })
  const config = resolveConfig({ config: file, upstream: [UP] }, {})
  const route = config.routes.find((r) => r.prefix === '/a/')
  const rule = route?.rules[0]
  assert.ok(route && rule)
  const root = config.routes.find((r) => r.prefix === '/')
  assert.ok(root)
  const mutations: [string, () => void][] = [
    ['config.port', () => ((config as { port: number }).port = 1)],
    ['config.routes', () => (config.routes as Route[]).push(route)],
    ['route.prefix', () => ((route as { prefix: string }).prefix = '/b/')],
    ['route.upstreams', () => (route.upstreams as URL[]).push(new URL(UP))],
    ['catch-all upstreams', () => (root.upstreams as URL[]).pop()],
    ['route.rules', () => (route.rules as CacheRule[]).pop()],
    ['catch-all rules', () => (root.rules as CacheRule[]).push(rule)],
    ['rule.mode', () => ((rule as { mode: string }).mode = 'no-store')],
    ['DEFAULTS', () => ((DEFAULTS as { port: number }).port = 1)],
  ]
  for (const [name, mutate] of mutations) {
    assert.throws(mutate, TypeError, name)
  }
})

test('workers: a flag, a variable or the file; 1 by default; "auto" is one per CPU (at most 64)', (t) => {
  assert.equal(resolveConfig({ upstream: [UP] }, {}).workers, 1)
  assert.equal(resolveConfig({ upstream: [UP], workers: '3' }, {}).workers, 3)
  assert.equal(resolveConfig({ upstream: [UP] }, { CACHEMIR_WORKERS: '2' }).workers, 2)
  assert.equal(resolveConfig({ upstream: [UP], workers: 'auto' }, {}).workers, Math.min(os.availableParallelism(), 64))
  assert.equal(resolveConfig({ config: writeConfig(t, { upstreams: [UP], workers: 4 }) }, {}).workers, 4)
  const file = writeConfig(t, { upstreams: [UP], workers: 0 })
  assert.deepEqual(problemsOf({ config: file }), [`${file}: workers: expected a number of workers from 1 to 64 or "auto", got 0`])
  assert.deepEqual(problemsOf({ upstream: [UP], workers: '2.5' }), [
    '--workers: expected a number of workers from 1 to 64 or "auto", got "2.5"',
  ])
})

test('name: an RFC 8941 token for Cache-Status, "cachemir" by default', () => {
  assert.equal(resolveConfig({ upstream: [UP] }, {}).name, 'cachemir')
  assert.equal(resolveConfig({ upstream: [UP], name: 'edge-1.lan' }, {}).name, 'edge-1.lan')
  for (const bad of ['1st', 'two words', 'semi;colon', 'a,b', '"quoted"', 'x'.repeat(65)]) {
    assert.deepEqual(
      problemsOf({ upstream: [UP], name: bad }),
      [`--name: expected a name like "mirror-1" (a letter, then letters, digits or -._:/*, at most 64), got ${JSON.stringify(bad)}`],
      bad,
    )
  }
})
