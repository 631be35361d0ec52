// test/unit/policy.test.ts
// Pure RFC 9111 decisions: storability, freshness lifetime, age, and Cache-Control parsing.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { canStore, computeFreshness, currentAgeMs, isFresh, type ResponseFacts } from '../../src/policy/freshness.js'
import { parseCacheControl } from '../../src/http/cache-control.js'
import type { CacheRule } from '../../src/config.js'

const NOW = Date.parse('2026-01-10T12:00:00Z')
const date = (ms: number): string => new Date(ms).toUTCString()

function facts(status: number, headers: Record<string, string>, at = NOW): ResponseFacts {
  return { status, headers: Object.entries(headers).flat(), requestAt: at, responseAt: at }
}

test('Cache-Control parsing survives case, quotes, duplicates and several lines', () => {
  const cases: [string, Record<string, string | true>][] = [
    ['max-age=60', { 'max-age': '60' }],
    ['Max-Age=60, PUBLIC', { 'max-age': '60', public: true }],
    ['max-age="60"', { 'max-age': '60' }],
    ['max-age=60, max-age=10', { 'max-age': '10' }],
    ['max-age=10, max-age=60', { 'max-age': '10' }],
    ['no-cache="set-cookie, x-a", max-age=5', { 'no-cache': 'set-cookie, x-a', 'max-age': '5' }],
    ['max-age=abc', { 'max-age': 'abc' }],
    ['max-age=60, max-age=abc', { 'max-age': 'abc' }],
    [' , no-store ,, private', { 'no-store': true, private: true }],
  ]
  for (const [input, expected] of cases) {
    assert.deepEqual(Object.fromEntries(parseCacheControl(input)), expected, input)
  }
})

test('freshness lifetime follows s-maxage, max-age, Expires, rule ttl, then the heuristic', () => {
  const ttlRule: CacheRule = { pattern: /x/, mode: 'default', ttlMs: 3_600_000 }
  const cases: [string, ResponseFacts, CacheRule | undefined, number][] = [
    ['max-age', facts(200, { 'cache-control': 'max-age=60' }), undefined, 60_000],
    ['s-maxage wins', facts(200, { 'cache-control': 'max-age=60, s-maxage=5' }), undefined, 5_000],
    ['invalid max-age is stale, not forever', facts(200, { 'cache-control': 'max-age=soon' }), undefined, 0],
    ['Expires minus Date', facts(200, { date: date(NOW), expires: date(NOW + 120_000) }), undefined, 120_000],
    ['max-age beats Expires', facts(200, { 'cache-control': 'max-age=1', expires: date(NOW + 120_000) }), undefined, 1_000],
    ['invalid Expires is stale', facts(200, { expires: '0' }), undefined, 0],
    ['past Expires is stale', facts(200, { date: date(NOW), expires: date(NOW - 1000) }), undefined, 0],
    ['rule ttl replaces the heuristic', facts(200, { 'last-modified': date(NOW - 1e9) }), ttlRule, 3_600_000],
    [
      'heuristic is 10% of the age of Last-Modified',
      facts(200, { date: date(NOW), 'last-modified': date(NOW - 100_000) }),
      undefined,
      10_000,
    ],
    ['heuristic is capped at one day', facts(200, { date: date(NOW), 'last-modified': date(NOW - 1e11) }), undefined, 86_400_000],
    ['no heuristic for 302', facts(302, { date: date(NOW), 'last-modified': date(NOW - 100_000) }), undefined, 0],
    [
      'immutable rule is forever',
      facts(200, { 'cache-control': 'max-age=0' }),
      { pattern: /x/, mode: 'immutable', ttlMs: undefined },
      Infinity,
    ],
  ]
  for (const [name, f, rule, lifetime] of cases) {
    assert.equal(computeFreshness(f, rule).lifetimeMs, lifetime, name)
  }
})

test('current age adds upstream Age, response delay and resident time (RFC 9111 4.2.3)', () => {
  const f: ResponseFacts = {
    status: 200,
    headers: ['Date', date(NOW - 5_000), 'Age', '30', 'Cache-Control', 'max-age=100'],
    requestAt: NOW - 2_000,
    responseAt: NOW,
  }
  const freshness = computeFreshness(f, undefined)
  // apparent age 5 s; corrected Age 30 s + 2 s delay = 32 s; the larger wins.
  assert.equal(freshness.initialAgeMs, 32_000)
  assert.equal(currentAgeMs(freshness, f.responseAt, NOW + 10_000), 42_000)
  assert.equal(isFresh(freshness, f.responseAt, NOW + 67_000), true)
  assert.equal(isFresh(freshness, f.responseAt, NOW + 68_000), false)
})

test('no-cache and revalidate rules are never fresh; must-revalidate forbids stale use', () => {
  assert.equal(isFresh(computeFreshness(facts(200, { 'cache-control': 'max-age=60, no-cache' }), undefined), NOW, NOW), false)
  assert.equal(
    isFresh(
      computeFreshness(facts(200, { 'cache-control': 'max-age=60' }), { pattern: /x/, mode: 'revalidate', ttlMs: undefined }),
      NOW,
      NOW,
    ),
    false,
  )
  assert.equal(computeFreshness(facts(200, { 'cache-control': 'max-age=60, must-revalidate' }), undefined).mustRevalidate, true)
  assert.equal(computeFreshness(facts(200, { 'cache-control': 'max-age=60, proxy-revalidate' }), undefined).mustRevalidate, true)
  assert.equal(computeFreshness(facts(200, { 'cache-control': 'max-age=60' }), undefined).mustRevalidate, false)
})

test('storability: what a shared cache may keep', () => {
  const cases: [string, ResponseFacts, string | undefined, boolean][] = [
    ['plain 200', facts(200, {}), undefined, true],
    ['404 is heuristically cacheable', facts(404, {}), undefined, true],
    ['302 without freshness', facts(302, {}), undefined, false],
    ['302 with max-age', facts(302, { 'cache-control': 'max-age=60' }), undefined, true],
    ['500 without freshness', facts(500, {}), undefined, false],
    ['no-store', facts(200, { 'cache-control': 'no-store' }), undefined, false],
    ['private', facts(200, { 'cache-control': 'private, max-age=60' }), undefined, false],
    ['request no-store', facts(200, { 'cache-control': 'max-age=60' }), 'no-store', false],
    ['Vary: *', facts(200, { vary: '*' }), undefined, false],
    ['Set-Cookie', facts(200, { 'set-cookie': 'a=b', 'cache-control': 'max-age=60' }), undefined, false],
    ['206 is not stored', facts(206, { 'cache-control': 'max-age=60' }), undefined, false],
  ]
  for (const [name, f, requestCc, expected] of cases) {
    assert.equal(canStore(f, { cacheControl: requestCc, authorized: false }, undefined).storable, expected, name)
  }
  assert.equal(
    canStore(facts(200, {}), { cacheControl: undefined, authorized: false }, { pattern: /x/, mode: 'no-store', ttlMs: undefined }).storable,
    false,
    'no-store rule',
  )
})
