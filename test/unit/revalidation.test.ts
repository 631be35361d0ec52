// test/unit/revalidation.test.ts
// Pure revalidation decisions (policy/revalidation.ts, RFC 9111 §4.3): the conditional request,
// whether a 304 selects the stored response, and what the stored record looks like after it.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  applyNotModified,
  buildConditionalHeaders,
  isSelectedBy304,
  mergeNotModifiedHeaders,
  NOT_UPDATED_BY_304,
} from '../../src/policy/revalidation.js'

const NOW = Date.parse('2026-01-10T12:00:00Z')
const LAST_MODIFIED = 'Fri, 09 Jan 2026 12:00:00 GMT'

test('the conditional request asks with the stored ETag and Last-Modified, whichever it has', () => {
  const cases: [string, string[], Record<string, string>][] = [
    ['both', ['ETag', '"v1"', 'Last-Modified', LAST_MODIFIED], { 'if-none-match': '"v1"', 'if-modified-since': LAST_MODIFIED }],
    ['ETag only, weak kept as is', ['etag', 'W/"v1"'], { 'if-none-match': 'W/"v1"' }],
    ['Last-Modified only', ['LAST-MODIFIED', LAST_MODIFIED], { 'if-modified-since': LAST_MODIFIED }],
    ['neither: unconditional', ['Content-Type', 'text/plain'], {}],
  ]
  for (const [name, stored, expected] of cases) assert.deepEqual(buildConditionalHeaders(stored), expected, name)
})

test('a 304 selects the stored response unless it names a different strong ETag (§4.3.4)', () => {
  const cases: [string, string[], string[], boolean][] = [
    ['no ETag in the 304', ['ETag', '"v1"'], ['Cache-Control', 'max-age=60'], true],
    ['no ETag on either side', [], [], true],
    ['weak ETag in the 304', ['ETag', '"v1"'], ['ETag', 'W/"v2"'], true],
    ['the same strong ETag', ['ETag', '"v1"'], ['etag', '"v1"'], true],
    ['a different strong ETag', ['ETag', '"v1"'], ['ETag', '"v2"'], false],
    ['a strong ETag, none stored', ['Last-Modified', LAST_MODIFIED], ['ETag', '"v1"'], false],
    ['a strong ETag against a weak stored one', ['ETag', 'W/"v1"'], ['ETag', '"v1"'], false],
  ]
  for (const [name, stored, notModified, expected] of cases) assert.equal(isSelectedBy304(stored, notModified), expected, name)
})

test('fields in a 304 replace every stored field of that name and go last; the rest keep their order', () => {
  const stored = ['Content-Type', 'text/plain', 'Cache-Control', 'max-age=10', 'X-A', '1', 'x-a', '2', 'ETag', '"v1"']
  const notModified = ['cache-control', 'max-age=60', 'X-A', '3', 'Date', 'Sat, 10 Jan 2026 12:00:00 GMT']
  assert.deepEqual(mergeNotModifiedHeaders(stored, notModified), [
    'Content-Type',
    'text/plain',
    'ETag',
    '"v1"',
    'cache-control',
    'max-age=60',
    'X-A',
    '3',
    'Date',
    'Sat, 10 Jan 2026 12:00:00 GMT',
  ])
})

test('a 304 never changes the fields that describe the stored body (§3.2)', () => {
  assert.deepEqual([...NOT_UPDATED_BY_304].sort(), ['content-encoding', 'content-length', 'content-range', 'transfer-encoding'])
  const stored = ['Content-Length', '100', 'Content-Encoding', 'gzip']
  const notModified = ['Content-Length', '0', 'content-encoding', 'br', 'Content-Range', 'bytes 0-0/1', 'ETag', '"v1"']
  assert.deepEqual(mergeNotModifiedHeaders(stored, notModified), ['Content-Length', '100', 'Content-Encoding', 'gzip', 'ETag', '"v1"'])
})

test('a 304 brings no Set-Cookie, hop-by-hop fields, or fields a shared cache may not keep', () => {
  const stored = ['X-User', 'stored', 'Set-Cookie', 'old=1']
  const notModified = [
    'Set-Cookie',
    'new=2',
    'Connection',
    'X-Hop',
    'X-Hop',
    'h',
    'Keep-Alive',
    'timeout=5',
    'Cache-Control',
    'max-age=60, private="X-User"',
    'X-User',
    'bob',
  ]
  // The stored fields of those names stay as they were: the 304 simply does not speak for them.
  assert.deepEqual(mergeNotModifiedHeaders(stored, notModified), [
    'X-User',
    'stored',
    'Set-Cookie',
    'old=1',
    'Cache-Control',
    'max-age=60, private="X-User"',
  ])
})

test('after a 304 the record has the merged headers and the new exchange times; the rest is kept', () => {
  const stored = {
    key: '/a',
    bodyBytes: 3,
    headers: ['Cache-Control', 'max-age=10', 'ETag', '"v1"'],
    requestAt: NOW - 60_000,
    responseAt: NOW - 59_000,
  }
  const after = applyNotModified(stored, { headers: ['Cache-Control', 'max-age=60'], requestAt: NOW - 100, responseAt: NOW })
  assert.deepEqual(after, {
    key: '/a',
    bodyBytes: 3,
    headers: ['ETag', '"v1"', 'Cache-Control', 'max-age=60'],
    requestAt: NOW - 100,
    responseAt: NOW,
  })
  assert.deepEqual(stored.headers, ['Cache-Control', 'max-age=10', 'ETag', '"v1"'], 'the stored record is not changed')
})
