// test/unit/upstream-auth-config.test.ts
// resolveConfig() and a route's upstreamAuth / shareAuthenticated: the header and value built
// from the environment, the problems reported, and the secret kept out of every message.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { inspect } from 'node:util'
import { test, type TestContext } from 'node:test'
import { resolveConfig, type Config, type Route } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'

type Env = Record<string, string | undefined>

const UP = 'http://origin.test/'
const SECRET = 'npm_s3cr3tV4lue'

/** A config file with these routes, in a temp dir removed after the test. */
function writeRoutes(t: TestContext, routes: unknown[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cachemir-config-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'cachemir.json')
  fs.writeFileSync(file, JSON.stringify({ routes }))
  return file
}

/** The config of one route `/` with these extra keys. */
function resolveRoute(t: TestContext, keys: Record<string, unknown>, env: Env): Route {
  const config = resolveConfig({ config: writeRoutes(t, [{ prefix: '/', upstreams: [UP], ...keys }]) }, env)
  return config.routes[0] as Route
}

/** The problems of a ConfigError from resolving these routes, with the file name stripped. */
function problemsOf(t: TestContext, routes: unknown[], env: Env): string[] {
  const file = writeRoutes(t, routes)
  try {
    resolveConfig({ config: file }, env)
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    return err.problems.map((p) => p.replace(`${file}: `, ''))
  }
  return assert.fail('expected resolveConfig to throw')
}

test('a scheme makes the header Authorization: <scheme> <value>; shareAuthenticated defaults to false', (t) => {
  const route = resolveRoute(t, { upstreamAuth: { env: 'NPM_TOKEN', scheme: 'Bearer' } }, { NPM_TOKEN: ` ${SECRET}\n` })
  assert.equal(route.upstreamAuth?.header, 'authorization')
  assert.equal(route.upstreamAuth?.value, `Bearer ${SECRET}`)
  assert.equal(route.shareAuthenticated, false)
})

test('without a scheme the variable is the whole value; header names another header, lower-cased', (t) => {
  const basic = resolveRoute(t, { upstreamAuth: { env: 'AUTH' } }, { AUTH: 'Basic dXNlcjpwYXNz' })
  assert.deepEqual([basic.upstreamAuth?.header, basic.upstreamAuth?.value], ['authorization', 'Basic dXNlcjpwYXNz'])
  const key = resolveRoute(t, { upstreamAuth: { env: 'KEY', header: 'X-Api-Key' }, shareAuthenticated: true }, { KEY: SECRET })
  assert.deepEqual([key.upstreamAuth?.header, key.upstreamAuth?.value, key.shareAuthenticated], ['x-api-key', SECRET, true])
})

test('routes without upstreamAuth, the --upstream catch-all included, have no credential and share as usual', (t) => {
  const plain = resolveRoute(t, {}, { NPM_TOKEN: SECRET })
  assert.deepEqual([plain.upstreamAuth, plain.shareAuthenticated], [undefined, false])
  const catchAll = resolveConfig({ upstream: [UP] }, { NPM_TOKEN: SECRET }).routes[0]
  assert.deepEqual([catchAll?.upstreamAuth, catchAll?.shareAuthenticated], [undefined, false])
})

test('an unset, empty or unusable variable is a problem naming the field and the variable, never the value', (t) => {
  const routes = [
    { prefix: '/a/', upstreams: [UP], upstreamAuth: { env: 'UNSET_TOKEN' } },
    { prefix: '/b/', upstreams: [UP], upstreamAuth: { env: 'EMPTY_TOKEN' } },
    { prefix: '/c/', upstreams: [UP], upstreamAuth: { env: 'BROKEN_TOKEN' } },
    { prefix: '/d/', upstreams: [UP], upstreamAuth: { env: 'DOUBLED_TOKEN', scheme: 'Bearer' } },
    { prefix: '/e/', upstreams: [UP], upstreamAuth: { env: 'GOOD_TOKEN' } },
  ]
  const env = { EMPTY_TOKEN: '  ', BROKEN_TOKEN: `${SECRET}\r\nX-Evil: 1`, DOUBLED_TOKEN: `bearer ${SECRET}`, GOOD_TOKEN: SECRET }
  const problems = problemsOf(t, routes, env)
  assert.deepEqual(problems, [
    'routes[0].upstreamAuth.env: expected the environment variable UNSET_TOKEN to hold the credential, got an unset variable',
    'routes[1].upstreamAuth.env: expected the environment variable EMPTY_TOKEN to hold the credential, got an empty one',
    'routes[2].upstreamAuth.env: expected the environment variable BROKEN_TOKEN to hold the credential, got a value with line breaks or control characters (not shown)',
    'routes[3].upstreamAuth.env: expected the environment variable DOUBLED_TOKEN to hold the credential without the scheme (the scheme key adds "Bearer "), got a value that starts with it',
  ])
})

test('bad upstreamAuth and shareAuthenticated values are problems that never repeat a string that may be a secret', (t) => {
  const routes = [
    // The secret pasted where its variable's name belongs, or instead of the object.
    { prefix: '/a/', upstreams: [UP], upstreamAuth: `Bearer ${SECRET}` },
    { prefix: '/b/', upstreams: [UP], upstreamAuth: { env: `Bearer ${SECRET}` } },
    { prefix: '/c/', upstreams: [UP], upstreamAuth: { env: 'T', scheme: `Bearer ${SECRET}`, header: `X-Key: ${SECRET}` } },
    { prefix: '/d/', upstreams: [UP], upstreamAuth: { env: 'T', header: 'Host', token: SECRET } },
    { prefix: '/e/', upstreams: [UP], upstreamAuth: {}, shareAuthenticated: 'maybe' },
    { prefix: '/f/', upstreams: [UP], shareAuthenticated: true },
  ]
  const problems = problemsOf(t, routes, { T: 'x' })
  assert.deepEqual(problems, [
    'routes[0].upstreamAuth: expected an object like {"env": "NPM_TOKEN", "scheme": "Bearer"} (the secret itself never goes in the file), got a string (not shown: it may be a secret)',
    'routes[1].upstreamAuth.env: expected the name of an environment variable like "NPM_TOKEN", got a string (not shown: it may be a secret)',
    'routes[2].upstreamAuth.scheme: expected a single word like "Bearer", got a string (not shown: it may be a secret)',
    'routes[2].upstreamAuth.header: expected a single word like "X-Api-Key", got a string (not shown: it may be a secret)',
    'routes[3].upstreamAuth.token: unknown key (expected one of env, scheme, header)',
    'routes[3].upstreamAuth.header: expected a header the mirror does not set itself, got "Host"',
    'routes[4].upstreamAuth.env: expected the name of an environment variable like "NPM_TOKEN", got nothing',
    'routes[4].shareAuthenticated: expected true or false, got "maybe"',
    'routes[5].shareAuthenticated: expected only on a route with upstreamAuth, got it without one',
  ])
  for (const problem of problems) assert.ok(!problem.includes(SECRET), problem)
})

test('the resolved secret shows as [redacted] when the config is serialized or inspected', (t) => {
  const config: Config = resolveConfig(
    { config: writeRoutes(t, [{ prefix: '/', upstreams: [UP], upstreamAuth: { env: 'NPM_TOKEN', scheme: 'Bearer' } }]) },
    { NPM_TOKEN: SECRET },
  )
  assert.equal(config.routes[0]?.upstreamAuth?.value, `Bearer ${SECRET}`)
  assert.ok(Object.isFrozen(config.routes[0]?.upstreamAuth))
  const json = JSON.stringify(config)
  assert.ok(!json.includes(SECRET), json)
  assert.match(json, /"upstreamAuth":\{"header":"authorization","value":"\[redacted\]"\}/)
  const shown = inspect(config, { depth: null })
  assert.ok(!shown.includes(SECRET), shown)
  assert.match(shown, /\[redacted\]/)
})

test("the README's private-upstream example resolves once its variable is set", (t) => {
  const readme = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'README.md'), 'utf8')
  const block = /### Private upstreams[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)?.[1]
  assert.ok(block !== undefined, 'README has a private-upstream example')
  const routes = (JSON.parse(block) as { routes: unknown[] }).routes
  const route = resolveConfig({ config: writeRoutes(t, routes) }, { REGISTRY_TOKEN: SECRET }).routes[0]
  assert.deepEqual([route?.prefix, route?.upstreamAuth?.value, route?.shareAuthenticated], ['/npm/', `Bearer ${SECRET}`, true])
  assert.equal(problemsOf(t, routes, {}).length, 1)
})
