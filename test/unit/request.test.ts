// test/unit/request.test.ts
// Pure request-side decisions: routing and refusing unsafe targets, Range and If-Range, conditionals.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { routeRequest } from '../../src/proxy/route.js'
import { evaluateRange } from '../../src/respond/range.js'
import { isNotModified } from '../../src/respond/conditional.js'
import type { Route } from '../../src/config.js'

const route = (prefix: string): Route => ({
  prefix,
  upstreams: [new URL('http://127.0.0.1:1/base/')],
  rules: [],
  followRedirects: false,
  profile: undefined,
  timeouts: { connectMs: 1000, headersMs: 1000, bodyIdleMs: 1000 },
  upstreamAuth: undefined,
  shareAuthenticated: false,
})
const ROUTES = [route('/debian/security/'), route('/debian/'), route('/')]

test('routing takes the longest prefix and keeps the query', () => {
  const a = routeRequest(ROUTES, '/debian/security/x?y=1')
  assert.ok(!('status' in a))
  assert.equal(a.route.prefix, '/debian/security/')
  assert.equal(a.relativePath, 'x?y=1')
  assert.equal(a.key, '/debian/security/x?y=1')
  const b = routeRequest(ROUTES, '/debian/pool/a.deb')
  assert.ok(!('status' in b))
  assert.equal(b.route.prefix, '/debian/')
})

test('routing refuses targets that could leave the upstream prefix', () => {
  for (const target of [
    'http://evil.invalid/',
    '*',
    '/debian/../x',
    '/debian/%2e%2e/x',
    '/debian/%2E%2E/x',
    '/debian/a%2fb',
    '/debian/a%5cb',
    '/debian/a\\b',
    '/debian/%00',
    '/debian/%zz',
  ]) {
    const r = routeRequest(ROUTES, target)
    assert.ok('status' in r && r.status === 400, target)
  }
  const none = routeRequest([route('/debian/')], '/alpine/x')
  assert.ok('status' in none && none.status === 404)
})

test('Range: single, suffix, open, clamped, unsatisfiable, multiple, ignored', () => {
  const size = 100
  const r = (h: string, ifRange?: string): unknown =>
    evaluateRange(h, ifRange, size, ['ETag', '"v1"', 'Last-Modified', 'Sat, 10 Jan 2026 12:00:00 GMT'])
  assert.deepEqual(r('bytes=0-9'), { kind: 'partial', ranges: [{ start: 0, end: 9 }] })
  assert.deepEqual(r('bytes=-5'), { kind: 'partial', ranges: [{ start: 95, end: 99 }] })
  assert.deepEqual(r('bytes=90-'), { kind: 'partial', ranges: [{ start: 90, end: 99 }] })
  assert.deepEqual(r('bytes=90-500'), { kind: 'partial', ranges: [{ start: 90, end: 99 }] })
  assert.deepEqual(r('bytes=100-'), { kind: 'unsatisfiable' })
  assert.deepEqual(r('bytes=0-1,5-6'), {
    kind: 'partial',
    ranges: [
      { start: 0, end: 1 },
      { start: 5, end: 6 },
    ],
  })
  assert.deepEqual(r('bytes=0-5,3-8'), { kind: 'full' }, 'overlapping ranges are served whole')
  assert.deepEqual(r('items=0-5'), { kind: 'full' })
  assert.deepEqual(r('bytes=5-1'), { kind: 'full' })
  assert.deepEqual(r('bytes=0-9', '"v1"'), { kind: 'partial', ranges: [{ start: 0, end: 9 }] })
  assert.deepEqual(r('bytes=0-9', '"v2"'), { kind: 'full' })
  assert.deepEqual(r('bytes=0-9', 'W/"v1"'), { kind: 'full' }, 'If-Range needs a strong match')
  assert.deepEqual(r('bytes=0-9', 'Sat, 10 Jan 2026 12:00:00 GMT'), { kind: 'partial', ranges: [{ start: 0, end: 9 }] })
  assert.deepEqual(r('bytes=0-9', 'Sat, 10 Jan 2026 12:00:01 GMT'), { kind: 'full' })
})

test('conditional requests: If-None-Match uses weak comparison and wins over If-Modified-Since', () => {
  const stored = ['ETag', 'W/"abc"', 'Last-Modified', 'Sat, 10 Jan 2026 12:00:00 GMT']
  assert.equal(isNotModified('"abc"', undefined, stored), true)
  assert.equal(isNotModified('"x", W/"abc"', undefined, stored), true)
  assert.equal(isNotModified('*', undefined, stored), true)
  assert.equal(isNotModified('"x"', 'Sun, 11 Jan 2026 12:00:00 GMT', stored), false)
  assert.equal(isNotModified(undefined, 'Sun, 11 Jan 2026 12:00:00 GMT', stored), true)
  assert.equal(isNotModified(undefined, 'Sat, 10 Jan 2026 12:00:00 GMT', stored), true)
  assert.equal(isNotModified(undefined, 'Fri, 09 Jan 2026 12:00:00 GMT', stored), false)
  assert.equal(isNotModified(undefined, 'garbage', stored), false)
})
