// test/unit/profiles.test.ts
// Each ecosystem profile's rules, as a route applies them: which paths are immutable, revalidated,
// short-lived or passed through; the representations npm and PyPI keep apart; and how a route's
// own rules and a profile combine in resolveConfig.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingHttpHeaders } from 'node:http'
import { resolveConfig } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'
import { matchRule } from '../../src/policy/freshness.js'
import { PROFILES } from '../../src/profiles/profiles.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

function modeOf(profile: string, path: string): string {
  const rule = matchRule(PROFILES.get(profile)?.rules ?? [], path)
  return rule === undefined ? 'standard' : `${rule.mode}${rule.ttlMs === undefined ? '' : ` ${rule.ttlMs / 1000}s`}`
}

const CASES: Record<string, [path: string, mode: string][]> = {
  debian: [
    ['dists/bookworm/InRelease', 'revalidate'],
    ['dists/bookworm/Release', 'revalidate'],
    ['dists/bookworm/Release.gpg', 'revalidate'],
    ['dists/bookworm/main/binary-amd64/Packages.xz', 'revalidate'],
    ['dists/bookworm/main/source/Sources.gz', 'revalidate'],
    ['dists/bookworm/main/Contents-amd64.gz', 'revalidate'],
    ['dists/bookworm/main/i18n/Translation-en.bz2', 'revalidate'],
    ['dists/bookworm/main/binary-amd64/by-hash/SHA256/0a1b2c', 'immutable'],
    ['pool/main/h/hostname/hostname_3.23_amd64.deb', 'immutable'],
    ['ubuntu/pool/universe/x/x_1.0.dsc', 'immutable'],
    ['README', 'standard'],
  ],
  alpine: [
    ['v3.20/main/x86_64/APKINDEX.tar.gz', 'revalidate'],
    ['v3.20/main/x86_64/busybox-1.36.1-r29.apk', 'immutable'],
  ],
  npm: [
    ['left-pad', 'default 300s'],
    ['@scope%2fname', 'default 300s'],
    ['@scope/name', 'default 300s'],
    ['left-pad/-/left-pad-1.3.0.tgz', 'immutable'],
    ['@scope/name/-/name-2.0.0.tgz', 'immutable'],
    ['-/v1/search?text=x', 'no-store'],
    ['-/npm/v1/security/advisories/bulk', 'no-store'],
    ['-/package/left-pad/dist-tags', 'no-store'],
    ['-/whoami', 'no-store'],
  ],
  pypi: [
    ['simple/', 'revalidate'],
    ['simple/requests/', 'revalidate'],
    ['packages/ab/cd/requests-2.32.0-py3-none-any.whl', 'immutable'],
    ['packages/ab/cd/requests-2.32.0.tar.gz', 'immutable'],
    ['pypi/requests/json', 'revalidate'],
  ],
  static: [
    ['books/12345/pg12345.epub', 'default 2592000s'],
    ['isos/debian-12.iso', 'default 2592000s'],
    ['index.html', 'standard'],
  ],
}

test('each profile gives each kind of file its rule', () => {
  assert.deepEqual([...PROFILES.keys()].sort(), Object.keys(CASES).sort())
  for (const [profile, cases] of Object.entries(CASES)) {
    for (const [path, mode] of cases) assert.equal(modeOf(profile, path), mode, `${profile}: ${path}`)
  }
})

test('npm keeps the abbreviated and the full document apart; PyPI its JSON and HTML pages', () => {
  const npm = PROFILES.get('npm')
  const pypi = PROFILES.get('pypi')
  const variant = (p: typeof npm, path: string, headers: IncomingHttpHeaders): string | undefined => p?.variantOf?.(path, headers)
  assert.equal(
    variant(npm, 'left-pad', { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*' }),
    'npm-abbreviated',
  )
  assert.equal(variant(npm, 'left-pad', { accept: 'application/json' }), 'npm-full')
  assert.equal(variant(npm, 'left-pad', {}), 'npm-full')
  assert.equal(variant(npm, 'left-pad/-/left-pad-1.3.0.tgz', { accept: 'application/vnd.npm.install-v1+json' }), undefined)
  const pip = 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01'
  assert.equal(variant(pypi, 'simple/requests/', { accept: pip }), 'pypi-json')
  assert.equal(variant(pypi, 'simple/requests/', { accept: 'text/html' }), 'pypi-html')
  assert.equal(variant(pypi, 'simple/requests/', {}), 'pypi-html')
  assert.equal(variant(pypi, 'packages/x.whl', { accept: pip }), undefined)
})

test('a route names a profile; its own rules come first; --profile applies one to the --upstream route', async (t) => {
  const dir = await makeTempDir(t, 'cachemir-profiles-')
  const file = join(dir, 'cachemir.json')
  const rules = [{ match: '^pool/main/x/', cache: 'no-store' }]
  await writeFile(
    file,
    JSON.stringify({ routes: [{ prefix: '/debian/', upstreams: ['http://mirror.test/debian/'], profile: 'debian', rules }] }),
  )
  const route = resolveConfig({ config: file }, {}).routes[0]
  assert.equal(route?.profile, 'debian')
  assert.equal(matchRule(route?.rules ?? [], 'pool/main/x/x_1_all.deb')?.mode, 'no-store')
  assert.equal(matchRule(route?.rules ?? [], 'pool/main/y/y_1_all.deb')?.mode, 'immutable')

  const catchAll = resolveConfig({ upstream: ['http://mirror.test/'], profile: 'alpine' }, {}).routes[0]
  assert.equal(catchAll?.profile, 'alpine')
  assert.equal(matchRule(catchAll?.rules ?? [], 'v3/main/x86_64/a-1.apk')?.mode, 'immutable')
  assert.equal(resolveConfig({ upstream: ['http://mirror.test/'] }, { CACHEMIR_PROFILE: 'npm' }).routes[0]?.profile, 'npm')
})

test('an unknown profile, a profile without an --upstream route, and a bad --public-url are one-line problems', async (t) => {
  const problems = (args: Parameters<typeof resolveConfig>[0]): readonly string[] => {
    try {
      resolveConfig(args, {})
    } catch (err) {
      assert.ok(err instanceof ConfigError)
      return err.problems
    }
    return []
  }
  assert.deepEqual(problems({ upstream: ['http://mirror.test/'], profile: 'cpan' }), [
    '--profile: expected one of debian, alpine, npm, pypi, static, got "cpan"',
  ])
  const dir = await makeTempDir(t, 'cachemir-profiles-')
  const file = join(dir, 'cachemir.json')
  await writeFile(file, JSON.stringify({ routes: [{ prefix: '/npm/', upstreams: ['http://mirror.test/'] }] }))
  assert.deepEqual(problems({ config: file, profile: 'npm' }), [
    '--profile: applies to the catch-all route /, which has no upstreams (give --upstream, or a profile per route)',
  ])
  assert.deepEqual(problems({ upstream: ['http://mirror.test/'], publicUrl: 'mirror.lan' }), [
    `--public-url: expected the mirror's public base URL like "http://mirror.example.org:8080", got "mirror.lan"`,
  ])
  assert.equal(
    resolveConfig({ upstream: ['http://mirror.test/'], publicUrl: 'http://mirror.lan:8080/' }, {}).publicUrl,
    'http://mirror.lan:8080',
  )
})
