// test/integration/request-directives.test.ts
// What a client's own Cache-Control asks of the cache (RFC 9111 §5.2.1): max-age, min-fresh,
// max-stale, only-if-cached, no-store, and Pragma next to Cache-Control (§5.4). Each case is a
// request sequence on a fake clock that the origin's Date header follows.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { serveStatic, startOrigin, type Handler, type Origin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { get } from '../helpers/client.js'
import { waitForFills } from '../helpers/wait.js'
import { fakeClock, type Clock } from '../helpers/clock.js'

const SECOND = 1000
const ETAG = '"v1"'
const BODY = 'the stored representation'
const PATH = '/r'

/** The origin's Date follows the mirror's clock, as a real origin's Date follows real time. */
function dated(clock: Clock, handler: Handler): Handler {
  return (req, res) => {
    res.setHeader('Date', new Date(clock.now()).toUTCString())
    return handler(req, res)
  }
}

interface Expect {
  readonly status: number
  readonly cacheStatus: string | RegExp
  readonly originCount: number
  /** true: the last origin request revalidated with If-None-Match; false: it was unconditional */
  readonly conditional?: boolean
}

interface Step {
  /** clock offset, seconds */
  readonly at: number
  readonly headers?: Record<string, string>
  readonly expect: Expect
}

interface Case {
  readonly name: string
  /** the origin's Cache-Control */
  readonly cacheControl: string
  readonly steps: readonly Step[]
}

const MISS_STORED: Expect = { status: 200, cacheStatus: 'cachemir; fwd=miss; stored', originCount: 1, conditional: false }
const NOT_CACHED_504 = /^cachemir(?!.*\bhit\b)/

const CASES: readonly Case[] = [
  {
    name: "a client max-age smaller than the entry's age revalidates it (fwd=request)",
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 30,
        headers: { 'cache-control': 'max-age=10' },
        expect: { status: 200, cacheStatus: 'cachemir; fwd=request; fwd-status=304', originCount: 2, conditional: true },
      },
      // The 304 restarted the entry's age at 30 s.
      { at: 30, expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=100', originCount: 2 } },
      {
        at: 31,
        headers: { 'cache-control': 'max-age=0' },
        expect: { status: 200, cacheStatus: 'cachemir; fwd=request; fwd-status=304', originCount: 3, conditional: true },
      },
    ],
  },
  {
    name: "a client max-age at or above the entry's age accepts it as a hit",
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      { at: 30, headers: { 'cache-control': 'max-age=60' }, expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=70', originCount: 1 } },
      { at: 30, headers: { 'cache-control': 'max-age=30' }, expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=70', originCount: 1 } },
    ],
  },
  {
    name: 'min-fresh revalidates an entry with less freshness left, and accepts one with enough',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 30,
        headers: { 'cache-control': 'min-fresh=80' },
        expect: { status: 200, cacheStatus: 'cachemir; fwd=request; fwd-status=304', originCount: 2, conditional: true },
      },
      // Revalidated at 30 s: 90 s left at 40 s.
      {
        at: 40,
        headers: { 'cache-control': 'min-fresh=80' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=90', originCount: 2 },
      },
      {
        at: 40,
        headers: { 'cache-control': 'min-fresh=90' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=90', originCount: 2 },
      },
    ],
  },
  {
    name: 'a bare max-stale serves a stale entry without the origin; without it the entry is revalidated',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 150,
        headers: { 'cache-control': 'max-stale' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=-50; detail=max-stale', originCount: 1 },
      },
      {
        at: 1000,
        headers: { 'cache-control': 'max-stale' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=-900; detail=max-stale', originCount: 1 },
      },
      { at: 1000, expect: { status: 200, cacheStatus: 'cachemir; fwd=stale; fwd-status=304', originCount: 2, conditional: true } },
    ],
  },
  {
    name: 'max-stale=N serves an entry stale by at most N seconds, and revalidates beyond',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 150,
        headers: { 'cache-control': 'max-stale=60' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=-50; detail=max-stale', originCount: 1 },
      },
      {
        at: 150,
        headers: { 'cache-control': 'max-stale=50' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=-50; detail=max-stale', originCount: 1 },
      },
      {
        at: 150,
        headers: { 'cache-control': 'max-stale=49' },
        expect: { status: 200, cacheStatus: 'cachemir; fwd=stale; fwd-status=304', originCount: 2, conditional: true },
      },
    ],
  },
  {
    // §5.2.1.1: max-age bounds the age; max-stale only lifts the "not stale" part of it.
    name: 'a client max-age still bounds the age when max-stale is also present',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 150,
        headers: { 'cache-control': 'max-age=200, max-stale' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=-50; detail=max-stale', originCount: 1 },
      },
      {
        at: 150,
        headers: { 'cache-control': 'max-age=10, max-stale' },
        expect: { status: 200, cacheStatus: 'cachemir; fwd=request; fwd-status=304', originCount: 2, conditional: true },
      },
    ],
  },
  {
    name: "max-stale never overrides a response's must-revalidate",
    cacheControl: 'max-age=100, must-revalidate',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 150,
        headers: { 'cache-control': 'max-stale' },
        expect: { status: 200, cacheStatus: 'cachemir; fwd=stale; fwd-status=304', originCount: 2, conditional: true },
      },
    ],
  },
  {
    name: "max-stale never overrides a response's s-maxage (which implies proxy-revalidate)",
    cacheControl: 's-maxage=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 150,
        headers: { 'cache-control': 'max-stale=3600' },
        expect: { status: 200, cacheStatus: 'cachemir; fwd=stale; fwd-status=304', originCount: 2, conditional: true },
      },
    ],
  },
  {
    name: 'only-if-cached is a hit for a fresh entry',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 30,
        headers: { 'cache-control': 'only-if-cached' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=70', originCount: 1 },
      },
    ],
  },
  {
    name: 'only-if-cached with nothing stored gets 504 and the origin is not contacted',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, headers: { 'cache-control': 'only-if-cached' }, expect: { status: 504, cacheStatus: NOT_CACHED_504, originCount: 0 } },
      { at: 0, expect: MISS_STORED },
    ],
  },
  {
    name: 'only-if-cached with a stale entry gets 504 without the origin, unless max-stale accepts the entry',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      { at: 150, headers: { 'cache-control': 'only-if-cached' }, expect: { status: 504, cacheStatus: NOT_CACHED_504, originCount: 1 } },
      {
        at: 150,
        headers: { 'cache-control': 'only-if-cached, max-stale' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=-50; detail=max-stale', originCount: 1 },
      },
    ],
  },
  {
    name: 'a request no-store is not stored, but a fresh stored entry is still served to it',
    cacheControl: 'max-age=100',
    steps: [
      {
        at: 0,
        headers: { 'cache-control': 'no-store' },
        expect: { status: 200, cacheStatus: /^cachemir; fwd=miss; detail=[\w-]+$/, originCount: 1, conditional: false },
      },
      // Nothing was stored, so this one is a plain (unconditional) miss.
      { at: 0, expect: { ...MISS_STORED, originCount: 2 } },
      { at: 10, headers: { 'cache-control': 'no-store' }, expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=90', originCount: 2 } },
    ],
  },
  {
    name: 'Pragma: no-cache is ignored when Cache-Control is present',
    cacheControl: 'max-age=100',
    steps: [
      { at: 0, expect: MISS_STORED },
      {
        at: 30,
        headers: { pragma: 'no-cache', 'cache-control': 'max-age=600' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=70', originCount: 1 },
      },
      {
        at: 150,
        headers: { pragma: 'no-cache', 'cache-control': 'max-stale' },
        expect: { status: 200, cacheStatus: 'cachemir; hit; ttl=-50; detail=max-stale', originCount: 1 },
      },
    ],
  },
]

function checkStep(res: Awaited<ReturnType<typeof get>>, origin: Origin, step: Step, where: string): void {
  const e = step.expect
  assert.equal(res.status, e.status, `${where}: status`)
  const cacheStatus = res.headers['cache-status'] ?? ''
  if (typeof e.cacheStatus === 'string') assert.equal(cacheStatus, e.cacheStatus, `${where}: Cache-Status`)
  else assert.match(cacheStatus, e.cacheStatus, `${where}: Cache-Status`)
  if (e.status === 200) {
    assert.equal(res.body.toString(), BODY, `${where}: body`)
    assert.equal(res.headers.etag, ETAG, `${where}: ETag`)
  } else {
    assert.notEqual(res.body.toString(), BODY, `${where}: the stored body is not sent with ${e.status}`)
  }
  assert.equal(origin.count(PATH), e.originCount, `${where}: origin requests`)
  if (e.conditional !== undefined) {
    const last = origin.requests.at(-1)
    assert.equal(last?.headers['if-none-match'], e.conditional ? ETAG : undefined, `${where}: If-None-Match sent upstream`)
    // The client's own directives are not passed on to a shared fill.
    assert.equal(last?.headers['cache-control'], undefined, `${where}: Cache-Control sent upstream`)
  }
}

for (const c of CASES) {
  test(c.name, async (t) => {
    const clock = fakeClock()
    const origin = await startOrigin(
      t,
      dated(clock, serveStatic({ [PATH]: { body: BODY, etag: ETAG, headers: { 'cache-control': c.cacheControl } } })),
    )
    const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

    for (const [i, step] of c.steps.entries()) {
      clock.set(step.at * SECOND)
      const res = await get(proxy.url(PATH), step.headers === undefined ? {} : { headers: step.headers })
      checkStep(res, origin, step, `step ${i + 1} (at ${step.at} s, ${JSON.stringify(step.headers ?? {})})`)
      await waitForFills(proxy)
    }
  })
}
