// test/unit/store-decision.test.ts
// Pure decisions a fill makes about a response before its body (policy/store-decision.ts): which
// header fields are kept, and whether the response is stored given its announced length.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decideStore, selectStoredHeaders } from '../../src/policy/store-decision.js'
import type { ResponseFacts, StoreRequest } from '../../src/policy/freshness.js'

const NOW = Date.parse('2026-01-10T12:00:00Z')
const PLAIN: StoreRequest = { cacheControl: undefined, authorized: false }
const fitsAll = (): boolean => true

function facts(status: number, headers: string[]): ResponseFacts {
  return { status, headers, requestAt: NOW, responseAt: NOW }
}

test('stored headers lose hop-by-hop fields and those Connection names, keeping order and case', () => {
  const raw = ['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Trace', 'Keep-Alive', 'timeout=5', 'X-Trace', '1', 'ETag', '"a"']
  assert.deepEqual(selectStoredHeaders(raw), ['Content-Type', 'text/plain', 'ETag', '"a"'])
})

test('stored headers lose the fields named by private="…" and no-cache="…"', () => {
  const raw = [
    'Cache-Control',
    'max-age=60, private="X-User", no-cache="Set-Cookie"',
    'x-user',
    'alice',
    'Set-Cookie',
    'a=b',
    'Content-Length',
    '3',
  ]
  assert.deepEqual(selectStoredHeaders(raw), [
    'Cache-Control',
    'max-age=60, private="X-User", no-cache="Set-Cookie"',
    'Content-Length',
    '3',
  ])
})

test('stored headers are a copy when nothing is dropped', () => {
  const raw = ['Content-Type', 'text/plain']
  const kept = selectStoredHeaders(raw)
  assert.deepEqual(kept, raw)
  assert.notEqual(kept, raw)
})

test('a response RFC 9111 §3 forbids storing keeps its reason and announces no length', () => {
  const cases: [string, ResponseFacts, StoreRequest, string][] = [
    ['no-store', facts(200, ['Cache-Control', 'no-store', 'Content-Length', '3']), PLAIN, 'no-store'],
    ['private', facts(200, ['Cache-Control', 'private', 'Content-Length', '3']), PLAIN, 'private'],
    ['206', facts(206, ['Cache-Control', 'max-age=60', 'Content-Length', '3']), PLAIN, 'status'],
    ['request no-store', facts(200, ['Content-Length', '3']), { cacheControl: 'no-store', authorized: false }, 'request-no-store'],
    ['authorized', facts(200, ['Cache-Control', 'max-age=60']), { cacheControl: undefined, authorized: true }, 'authorization'],
  ]
  for (const [name, f, request, reason] of cases) {
    assert.deepEqual(decideStore(f, request, undefined, fitsAll), { storable: false, reason, totalBytes: undefined }, name)
  }
})

test('the length check is not consulted for a response that is not stored anyway', () => {
  let asked = 0
  decideStore(facts(200, ['Cache-Control', 'no-store', 'Content-Length', '3']), PLAIN, undefined, () => (asked++, true))
  assert.equal(asked, 0)
})

test('a storable response announces its Content-Length, and is stored when it fits', () => {
  const seen: number[] = []
  const decision = decideStore(facts(200, ['Content-Length', '42']), PLAIN, undefined, (bytes) => (seen.push(bytes), true))
  assert.deepEqual(decision, { storable: true, totalBytes: 42 })
  assert.deepEqual(seen, [42])
})

test('a storable response without Content-Length is stored; its length is checked as it arrives', () => {
  assert.deepEqual(
    decideStore(facts(200, ['Cache-Control', 'max-age=60']), PLAIN, undefined, () => false),
    {
      storable: true,
      totalBytes: undefined,
    },
  )
})

test('a Content-Length that is not a non-negative integer is bad-length', () => {
  for (const length of ['-1', 'abc', '1.5', '9007199254740993', '1e400']) {
    const decision = decideStore(facts(200, ['Content-Length', length]), PLAIN, undefined, fitsAll)
    assert.equal(decision.storable, false, length)
    assert.equal(decision.storable === false && decision.reason, 'bad-length', length)
    assert.equal(decision.totalBytes, Number(length), length)
  }
})

test('an announced body larger than the store accepts is too-large', () => {
  const decision = decideStore(facts(200, ['Content-Length', '1000']), PLAIN, undefined, (bytes) => bytes <= 999)
  assert.deepEqual(decision, { storable: false, reason: 'too-large', totalBytes: 1000 })
})

test('a rule decides before the length: no-store rules never reach the length check', () => {
  const decision = decideStore(facts(200, ['Content-Length', 'abc']), PLAIN, { pattern: /x/, mode: 'no-store', ttlMs: undefined }, fitsAll)
  assert.deepEqual(decision, { storable: false, reason: 'rule', totalBytes: undefined })
})
