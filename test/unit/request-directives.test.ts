// test/unit/request-directives.test.ts
// Pure request-side cache decisions (RFC 9111 §5.2.1, §5.4; RFC 5861): parsing a client's
// Cache-Control and Pragma, and whether a stored response may be used as it is, stale, or only
// after revalidation. Plain objects and a fixed clock.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decideUse, NO_DIRECTIVES, parseRequestDirectives, type RequestDirectives, type Use } from '../../src/policy/request-directives.js'
import { computeFreshness, type Freshness } from '../../src/policy/freshness.js'
import type { CacheRule } from '../../src/config.js'

const NOW = Date.parse('2026-01-10T12:00:00Z')
const SECOND = 1000

interface ParseCase {
  readonly cacheControl: string | undefined
  readonly pragma: string | undefined
  readonly expected: Partial<RequestDirectives>
}

const PARSE_CASES: readonly ParseCase[] = [
  { cacheControl: undefined, pragma: undefined, expected: {} },
  { cacheControl: undefined, pragma: 'no-cache', expected: { noCache: true } },
  { cacheControl: undefined, pragma: 'x-foo, No-Cache', expected: { noCache: true } },
  { cacheControl: undefined, pragma: 'no-cache-please', expected: {} },
  // §5.4: Pragma is ignored when Cache-Control is present.
  { cacheControl: 'max-age=600', pragma: 'no-cache', expected: { maxAgeMs: 600 * SECOND } },
  { cacheControl: 'no-cache', pragma: undefined, expected: { noCache: true } },
  { cacheControl: 'NO-STORE', pragma: undefined, expected: { noStore: true } },
  { cacheControl: 'max-age=0', pragma: undefined, expected: { maxAgeMs: 0 } },
  { cacheControl: 'max-age="30"', pragma: undefined, expected: { maxAgeMs: 30 * SECOND } },
  // An invalid number is read as the most conservative value.
  { cacheControl: 'max-age=soon', pragma: undefined, expected: { maxAgeMs: 0 } },
  { cacheControl: 'max-age=60, max-age=10', pragma: undefined, expected: { maxAgeMs: 10 * SECOND } },
  { cacheControl: 'max-stale', pragma: undefined, expected: { maxStaleMs: Infinity } },
  { cacheControl: 'max-stale=45', pragma: undefined, expected: { maxStaleMs: 45 * SECOND } },
  { cacheControl: 'max-stale=never', pragma: undefined, expected: { maxStaleMs: 0 } },
  { cacheControl: 'min-fresh=20', pragma: undefined, expected: { minFreshMs: 20 * SECOND } },
  { cacheControl: 'Only-If-Cached', pragma: undefined, expected: { onlyIfCached: true } },
  {
    cacheControl: 'max-age=5, min-fresh=2, max-stale=9, only-if-cached, no-store',
    pragma: undefined,
    expected: { maxAgeMs: 5 * SECOND, minFreshMs: 2 * SECOND, maxStaleMs: 9 * SECOND, onlyIfCached: true, noStore: true },
  },
]

for (const c of PARSE_CASES) {
  test(`parseRequestDirectives(${JSON.stringify(c.cacheControl)}, pragma ${JSON.stringify(c.pragma)})`, () => {
    assert.deepEqual(parseRequestDirectives(c.cacheControl, c.pragma), { ...NO_DIRECTIVES, ...c.expected })
  })
}

/** Freshness of a response received at NOW with these headers (Date = NOW, no delay). */
function freshness(headers: Record<string, string>, rule?: CacheRule): Freshness {
  return computeFreshness(
    { status: 200, headers: ['Date', new Date(NOW).toUTCString(), ...Object.entries(headers).flat()], requestAt: NOW, responseAt: NOW },
    rule,
  )
}

const rd = (fields: Partial<RequestDirectives>): RequestDirectives => ({ ...NO_DIRECTIVES, ...fields })

interface UseCase {
  readonly name: string
  readonly cacheControl: string
  readonly rule?: CacheRule
  /** seconds after the response arrived */
  readonly at: number
  readonly request: Partial<RequestDirectives>
  readonly use: Use
}

const IMMUTABLE: CacheRule = { pattern: /./, mode: 'immutable', ttlMs: undefined }

const USE_CASES: readonly UseCase[] = [
  { name: 'fresh, no request directives', cacheControl: 'max-age=100', at: 30, request: {}, use: 'fresh' },
  { name: 'stale, no request directives', cacheControl: 'max-age=100', at: 150, request: {}, use: 'revalidate' },
  { name: 'request no-cache on a fresh entry', cacheControl: 'max-age=100', at: 30, request: { noCache: true }, use: 'revalidate' },
  {
    name: 'response no-cache beats request max-stale',
    cacheControl: 'max-age=100, no-cache',
    at: 30,
    request: { maxStaleMs: Infinity },
    use: 'revalidate',
  },
  { name: 'request max-age below the age', cacheControl: 'max-age=100', at: 30, request: { maxAgeMs: 10 * SECOND }, use: 'revalidate' },
  { name: 'request max-age equal to the age', cacheControl: 'max-age=100', at: 30, request: { maxAgeMs: 30 * SECOND }, use: 'fresh' },
  { name: 'request max-age above the age', cacheControl: 'max-age=100', at: 30, request: { maxAgeMs: 60 * SECOND }, use: 'fresh' },
  { name: 'request max-age=0 one second after storing', cacheControl: 'max-age=100', at: 1, request: { maxAgeMs: 0 }, use: 'revalidate' },
  {
    name: 'request max-age does not make a stale entry usable',
    cacheControl: 'max-age=100',
    at: 150,
    request: { maxAgeMs: 600 * SECOND },
    use: 'revalidate',
  },
  {
    name: 'min-fresh above the freshness left',
    cacheControl: 'max-age=100',
    at: 30,
    request: { minFreshMs: 80 * SECOND },
    use: 'revalidate',
  },
  {
    name: 'min-fresh equal to the freshness left',
    cacheControl: 'max-age=100',
    at: 30,
    request: { minFreshMs: 70 * SECOND },
    use: 'fresh',
  },
  {
    name: 'bare max-stale on a long-stale entry',
    cacheControl: 'max-age=100',
    at: 100_000,
    request: { maxStaleMs: Infinity },
    use: 'stale-ok',
  },
  { name: 'max-stale=N within N', cacheControl: 'max-age=100', at: 150, request: { maxStaleMs: 60 * SECOND }, use: 'stale-ok' },
  { name: 'max-stale=N at exactly N', cacheControl: 'max-age=100', at: 150, request: { maxStaleMs: 50 * SECOND }, use: 'stale-ok' },
  { name: 'max-stale=N beyond N', cacheControl: 'max-age=100', at: 150, request: { maxStaleMs: 49 * SECOND }, use: 'revalidate' },
  {
    name: 'max-stale with must-revalidate',
    cacheControl: 'max-age=100, must-revalidate',
    at: 150,
    request: { maxStaleMs: Infinity },
    use: 'revalidate',
  },
  {
    name: 'max-stale with proxy-revalidate',
    cacheControl: 'max-age=100, proxy-revalidate',
    at: 150,
    request: { maxStaleMs: Infinity },
    use: 'revalidate',
  },
  { name: 'max-stale with s-maxage', cacheControl: 's-maxage=100', at: 150, request: { maxStaleMs: Infinity }, use: 'revalidate' },
  // §5.2.1.1: "the client prefers a response whose age is less than or equal to" max-age; max-stale
  // only adds that a stale one is acceptable too. The age bound stays.
  {
    name: 'request max-age still bounds the age when max-stale is present',
    cacheControl: 'max-age=100',
    at: 150,
    request: { maxAgeMs: 10 * SECOND, maxStaleMs: Infinity },
    use: 'revalidate',
  },
  {
    name: 'request max-age and max-stale both satisfied',
    cacheControl: 'max-age=100',
    at: 150,
    request: { maxAgeMs: 200 * SECOND, maxStaleMs: Infinity },
    use: 'stale-ok',
  },
  {
    name: 'stale-while-revalidate within its window',
    cacheControl: 'max-age=100, stale-while-revalidate=60',
    at: 150,
    request: {},
    use: 'stale-while-revalidate',
  },
  {
    name: 'stale-while-revalidate at the end of its window',
    cacheControl: 'max-age=100, stale-while-revalidate=60',
    at: 160,
    request: {},
    use: 'stale-while-revalidate',
  },
  {
    name: 'stale-while-revalidate beyond its window',
    cacheControl: 'max-age=100, stale-while-revalidate=60',
    at: 161,
    request: {},
    use: 'revalidate',
  },
  {
    name: 'stale-while-revalidate with must-revalidate',
    cacheControl: 'max-age=100, stale-while-revalidate=60, must-revalidate',
    at: 150,
    request: {},
    use: 'revalidate',
  },
  {
    name: 'stale-while-revalidate with a client max-age',
    cacheControl: 'max-age=100, stale-while-revalidate=60',
    at: 150,
    request: { maxAgeMs: 600 * SECOND },
    use: 'revalidate',
  },
  {
    name: 'stale-while-revalidate with a client min-fresh',
    cacheControl: 'max-age=100, stale-while-revalidate=60',
    at: 150,
    request: { minFreshMs: 0 },
    use: 'revalidate',
  },
  {
    name: 'stale-while-revalidate with a client no-cache',
    cacheControl: 'max-age=100, stale-while-revalidate=60',
    at: 150,
    request: { noCache: true },
    use: 'revalidate',
  },
  // Without stale-while-revalidate there is no window: an entry whose lifetime just ran out (here
  // max-age=0, or an invalid max-age, at the instant it arrived) is revalidated, not served.
  {
    name: 'max-age=0 at the instant it was stored, no stale-while-revalidate',
    cacheControl: 'max-age=0',
    at: 0,
    request: {},
    use: 'revalidate',
  },
  { name: 'an invalid max-age at the instant it was stored', cacheControl: 'max-age=abc', at: 0, request: {}, use: 'revalidate' },
  {
    name: 'max-age=100 exactly at its end, no stale-while-revalidate',
    cacheControl: 'max-age=100',
    at: 100,
    request: {},
    use: 'revalidate',
  },
  {
    name: 'an immutable rule is fresh a year later',
    cacheControl: 'max-age=0',
    rule: IMMUTABLE,
    at: 365 * 24 * 3600,
    request: {},
    use: 'fresh',
  },
  // Content-addressed files: a client's reload cannot get other bytes (apt sends max-age=0 for by-hash/ indexes).
  {
    name: 'an immutable rule and a request max-age=0',
    cacheControl: 'max-age=0',
    rule: IMMUTABLE,
    at: 60,
    request: { maxAgeMs: 0 },
    use: 'fresh',
  },
  { name: 'an immutable rule and a request no-cache', cacheControl: '', rule: IMMUTABLE, at: 60, request: { noCache: true }, use: 'fresh' },
]

for (const c of USE_CASES) {
  test(`decideUse: ${c.name} -> ${c.use}`, () => {
    const f = freshness({ 'cache-control': c.cacheControl }, c.rule)
    assert.equal(decideUse(f, NOW, NOW + c.at * SECOND, rd(c.request)), c.use)
  })
}

test('decideUse counts the upstream Age toward a client max-age and the staleness for max-stale', () => {
  // Age 90 on arrival, max-age=100: 10 s after arrival the age is 100 s, 20 s after it is stale by 10 s.
  const f = freshness({ 'cache-control': 'max-age=100', age: '90' })
  assert.equal(decideUse(f, NOW, NOW + 5 * SECOND, rd({ maxAgeMs: 94 * SECOND })), 'revalidate')
  assert.equal(decideUse(f, NOW, NOW + 5 * SECOND, rd({ maxAgeMs: 95 * SECOND })), 'fresh')
  assert.equal(decideUse(f, NOW, NOW + 5 * SECOND, rd({ minFreshMs: 5 * SECOND })), 'fresh')
  assert.equal(decideUse(f, NOW, NOW + 5 * SECOND, rd({ minFreshMs: 6 * SECOND })), 'revalidate')
  assert.equal(decideUse(f, NOW, NOW + 20 * SECOND, rd({ maxStaleMs: 10 * SECOND })), 'stale-ok')
  assert.equal(decideUse(f, NOW, NOW + 20 * SECOND, rd({ maxStaleMs: 9 * SECOND })), 'revalidate')
})

test('parsed request directives drive decideUse end to end', () => {
  const f = freshness({ 'cache-control': 'max-age=100' })
  const use = (cc: string | undefined, pragma: string | undefined, at: number): Use =>
    decideUse(f, NOW, NOW + at * SECOND, parseRequestDirectives(cc, pragma))
  assert.equal(use(undefined, 'no-cache', 30), 'revalidate')
  assert.equal(use('max-age=600', 'no-cache', 30), 'fresh')
  assert.equal(use('max-stale', undefined, 150), 'stale-ok')
  assert.equal(use('max-stale=bogus', undefined, 150), 'revalidate')
  assert.equal(use('min-fresh=bogus', undefined, 30), 'fresh')
  assert.equal(use('max-age=bogus', undefined, 30), 'revalidate')
})
