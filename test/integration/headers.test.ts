// test/integration/headers.test.ts
// What the cache does with response header fields: hop-by-hop fields are never stored, the stored
// block keeps its order and case, upstream Cache-Status and Age are handled per RFC 9211 / 9111,
// fields a shared cache must not keep (Set-Cookie, private="…", no-cache="…") are dropped, targeted
// fields (CDN-Cache-Control, Cachemir-Cache-Control, RFC 9213) decide over Cache-Control, and odd
// Cache-Control input is parsed safely. The origin writes raw header lists (case, order and
// duplicates as given) and its Date follows the mirror's fake clock.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { startConfiguredProxy, startProxy, type Proxy } from '../helpers/proxy.js'
import { get, type Fetched } from '../helpers/client.js'
import { until } from '../helpers/wait.js'
import { fakeClock, httpDate, type Clock } from '../helpers/clock.js'

const SECOND = 1000
const DAY = 24 * 3600 * SECOND
const PATH = '/h'
const ETAG = '"h1"'
const BODY = 'hello headers'

/**
 * An origin that answers with `Date` (from the clock), the case's raw header list, `ETag` and
 * `Content-Length`, in that order; a matching If-None-Match gets 304 with the same fields.
 */
async function startRawOrigin(t: TestContext, clock: Clock, headers: (now: number) => string[], chunked: boolean): Promise<Origin> {
  return startOrigin(t, (req, res) => {
    const notModified = req.headers['if-none-match'] === ETAG
    const raw = ['Date', httpDate(clock.now()), ...headers(clock.now()), 'ETag', ETAG]
    if (!notModified && !chunked) raw.push('Content-Length', String(Buffer.byteLength(BODY)))
    // Node refuses to write a Trailer field on a response without a chunked body.
    res.writeHead(notModified ? 304 : 200, notModified ? withoutField(raw, 'trailer') : raw)
    res.end(notModified ? undefined : BODY)
  })
}

/** A raw header list without the field `name` (lower case). */
function withoutField(raw: readonly string[], name: string): string[] {
  const out: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]?.toLowerCase() !== name) out.push(raw[i] ?? '', raw[i + 1] ?? '')
  return out
}

/** A mirror for `origin` with one catch-all route and these rules, from a config file. */
function startRuleProxy(t: TestContext, origin: Origin, rules: readonly object[], now: () => number): Promise<Proxy> {
  return startConfiguredProxy(t, { routes: [{ prefix: '/', upstreams: [`${origin.url}/`], rules }] }, { now })
}

/** All lines of a field, in order, as received. */
function lines(res: Fetched, name: string): string[] {
  const out: string[] = []
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
    if (res.rawHeaders[i]?.toLowerCase() === name) out.push(res.rawHeaders[i + 1] ?? '')
  return out
}

interface Step {
  /** clock offset, seconds */
  readonly at: number
  readonly cacheStatus: string | RegExp
  readonly originCount: number
  /** the last origin request revalidated with If-None-Match */
  readonly conditional?: boolean
  /** fields (lower case) that must be there, with their (joined) value */
  readonly present?: Readonly<Record<string, string>>
  /** fields (lower case) that must not be there */
  readonly absent?: readonly string[]
  /** further checks; `first` is the response of the case's first step */
  readonly check?: (res: Fetched, first: Fetched) => void
}

interface Case {
  readonly name: string
  /** the origin's header fields, between its Date and its ETag */
  readonly headers: (now: number) => string[]
  /** route rules (config file); none when undefined */
  readonly rules?: readonly object[]
  /** the origin sends a chunked body (node refuses a Trailer field next to Content-Length) */
  readonly chunked?: boolean
  readonly steps: readonly Step[]
}

const MISS_STORED = 'cachemir; fwd=miss; stored'
const NOT_STORED = /^cachemir; fwd=miss; detail=[\w-]+$/
const REVALIDATED = 'cachemir; fwd=stale; fwd-status=304'

/** Names the mirror (or node) sets itself on every response it sends. */
const OWN_FIELDS = new Set(['age', 'cache-status', 'connection', 'keep-alive', 'transfer-encoding'])

function storedBlock(res: Fetched): string[] {
  const out: string[] = []
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    const name = res.rawHeaders[i] ?? ''
    if (!OWN_FIELDS.has(name.toLowerCase())) out.push(name, res.rawHeaders[i + 1] ?? '')
  }
  return out
}

const HOP_BY_HOP_HEADERS = [
  'Cache-Control',
  'max-age=60',
  'Connection',
  'x-drop',
  'X-Drop',
  '1',
  'Keep-Alive',
  'timeout=99, max=7',
  'Proxy-Authenticate',
  'Basic realm="upstream"',
  'Trailer',
  'X-Checksum',
  'Upgrade',
  'h2c',
  'X-Kept',
  'yes',
]

const ORDERED_HEADERS = [
  'X-Zeta',
  'z',
  'content-TYPE',
  'text/plain',
  'Cache-Control',
  'max-age=60',
  'x-Mixed-CASE',
  'm',
  'X-Multi',
  'one',
  'X-Alpha',
  'a',
  'X-Multi',
  'two',
]

function assertNoHopByHop(res: Fetched): void {
  for (const name of ['x-drop', 'proxy-authenticate', 'trailer', 'upgrade'])
    assert.equal(res.headers[name], undefined, `${name} is not passed on`)
  assert.doesNotMatch(res.headers.connection ?? '', /x-drop/i, "the origin's Connection is not passed on")
  assert.notEqual(res.headers['keep-alive'], 'timeout=99, max=7', "the origin's Keep-Alive is not passed on")
  assert.equal(res.headers['x-kept'], 'yes')
}

const CASES: readonly Case[] = [
  {
    name: 'hop-by-hop fields from the origin, and fields its Connection names, never reach clients',
    headers: () => HOP_BY_HOP_HEADERS,
    chunked: true,
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1, check: assertNoHopByHop },
      { at: 10, cacheStatus: 'cachemir; hit; ttl=50', originCount: 1, check: assertNoHopByHop },
      // A 304 carrying the same fields refreshes the stored block without them.
      { at: 65, cacheStatus: REVALIDATED, originCount: 2, conditional: true, check: assertNoHopByHop },
      { at: 70, cacheStatus: 'cachemir; hit; ttl=55', originCount: 2, check: assertNoHopByHop },
    ],
  },
  {
    name: 'a hit replays the stored header block in the order, case and line count it arrived in',
    headers: () => ORDERED_HEADERS,
    steps: [
      {
        at: 0,
        cacheStatus: MISS_STORED,
        originCount: 1,
        check: (res) => {
          const expected = ['Date', res.headers.date ?? '', ...ORDERED_HEADERS, 'ETag', ETAG, 'Content-Length', String(BODY.length)]
          assert.deepEqual(storedBlock(res), expected)
        },
      },
      {
        at: 10,
        cacheStatus: 'cachemir; hit; ttl=50',
        originCount: 1,
        check: (res, first) => {
          assert.deepEqual(storedBlock(res), storedBlock(first))
          assert.deepEqual(lines(res, 'x-multi'), ['one', 'two'])
        },
      },
    ],
  },
  {
    name: "an upstream cache's Cache-Status is kept and ours comes after it",
    headers: () => ['Cache-Control', 'max-age=60', 'Cache-Status', 'upstream; hit'],
    steps: [
      { at: 0, cacheStatus: 'upstream; hit, cachemir; fwd=miss; stored', originCount: 1 },
      {
        at: 10,
        cacheStatus: 'upstream; hit, cachemir; hit; ttl=50',
        originCount: 1,
        check: (res) => assert.match(lines(res, 'cache-status').at(-1) ?? '', /cachemir; hit; ttl=50$/, 'ours is the last line'),
      },
    ],
  },
  {
    name: 'Age on a hit is computed from the upstream Age and the time in cache, in one line',
    headers: () => ['Cache-Control', 'max-age=100', 'Age', '30'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1, check: (res) => assert.deepEqual(lines(res, 'age'), ['30']) },
      { at: 20, cacheStatus: 'cachemir; hit; ttl=50', originCount: 1, check: (res) => assert.deepEqual(lines(res, 'age'), ['50']) },
    ],
  },
  {
    name: 'a storeSetCookie rule stores a Set-Cookie response that has a max-age',
    headers: () => ['Cache-Control', 'max-age=60', 'Set-Cookie', 'theme=dark'],
    rules: [{ match: '^h$', storeSetCookie: true }],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      { at: 10, cacheStatus: 'cachemir; hit; ttl=50', originCount: 1 },
    ],
  },
  {
    name: 'a storeSetCookie rule does not store a Set-Cookie response without explicit freshness',
    headers: (now) => ['Last-Modified', httpDate(now - 10 * DAY), 'Set-Cookie', 'theme=dark'],
    rules: [{ match: '^h$', storeSetCookie: true }],
    steps: [
      { at: 0, cacheStatus: NOT_STORED, originCount: 1, present: { 'set-cookie': 'theme=dark' } },
      { at: 10, cacheStatus: NOT_STORED, originCount: 2, conditional: false, present: { 'set-cookie': 'theme=dark' } },
    ],
  },
  {
    name: 'private="Set-Cookie" stores the response without its Set-Cookie',
    headers: () => ['Cache-Control', 'private="Set-Cookie", max-age=60', 'Set-Cookie', 'session=secret', 'X-Kept', 'yes'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      { at: 10, cacheStatus: 'cachemir; hit; ttl=50', originCount: 1, absent: ['set-cookie'], present: { 'x-kept': 'yes' } },
      // The 304 repeats the Set-Cookie; it does not join the stored block either.
      { at: 65, cacheStatus: REVALIDATED, originCount: 2, conditional: true, absent: ['set-cookie'] },
      { at: 70, cacheStatus: 'cachemir; hit; ttl=55', originCount: 2, absent: ['set-cookie'], present: { 'x-kept': 'yes' } },
    ],
  },
  {
    name: 'no-cache="X-Secret" stores the response without X-Secret and serves it without revalidation',
    headers: () => ['Cache-Control', 'no-cache="X-Secret", max-age=60', 'X-Secret', 'hunter2', 'X-Kept', 'yes'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      { at: 10, cacheStatus: 'cachemir; hit; ttl=50', originCount: 1, absent: ['x-secret'], present: { 'x-kept': 'yes' } },
      { at: 65, cacheStatus: REVALIDATED, originCount: 2, conditional: true, absent: ['x-secret'] },
      { at: 70, cacheStatus: 'cachemir; hit; ttl=55', originCount: 2, absent: ['x-secret'], present: { 'x-kept': 'yes' } },
    ],
  },
  {
    name: 'CDN-Cache-Control: max-age wins over Cache-Control: no-store, and is passed on to clients',
    headers: () => ['CDN-Cache-Control', 'max-age=60', 'Cache-Control', 'no-store'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      {
        at: 10,
        cacheStatus: 'cachemir; hit; ttl=50',
        originCount: 1,
        present: { 'cdn-cache-control': 'max-age=60', 'cache-control': 'no-store' },
      },
      { at: 65, cacheStatus: REVALIDATED, originCount: 2, conditional: true },
    ],
  },
  {
    name: 'Cachemir-Cache-Control wins over CDN-Cache-Control and Cache-Control, and is not sent to clients',
    headers: () => ['Cachemir-Cache-Control', 'max-age=60', 'CDN-Cache-Control', 'max-age=5', 'Cache-Control', 'no-store'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1, absent: ['cachemir-cache-control'] },
      {
        at: 30,
        cacheStatus: 'cachemir; hit; ttl=30',
        originCount: 1,
        absent: ['cachemir-cache-control'],
        present: { 'cdn-cache-control': 'max-age=5', 'cache-control': 'no-store' },
      },
    ],
  },
  {
    name: 'Cachemir-Cache-Control: no-store wins over a CDN-Cache-Control max-age',
    headers: () => ['Cachemir-Cache-Control', 'no-store', 'CDN-Cache-Control', 'max-age=60', 'Cache-Control', 'max-age=60'],
    steps: [
      { at: 0, cacheStatus: NOT_STORED, originCount: 1, absent: ['cachemir-cache-control'] },
      { at: 0, cacheStatus: NOT_STORED, originCount: 2, conditional: false },
    ],
  },
  {
    name: 'a targeted field without max-age makes the cache ignore a past Expires',
    headers: (now) => ['CDN-Cache-Control', 'public', 'Expires', httpDate(now - 3600 * SECOND), 'Last-Modified', httpDate(now - 10 * DAY)],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      // Not Expires (stale at once) but the Last-Modified heuristic: fresh for one day.
      { at: 3600, cacheStatus: 'cachemir; hit; ttl=82800', originCount: 1 },
    ],
  },
  {
    name: 'Cache-Control names and directives are read case-insensitively',
    headers: () => ['CACHE-CONTROL', 'MAX-AGE=60'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      { at: 30, cacheStatus: 'cachemir; hit; ttl=30', originCount: 1 },
      { at: 65, cacheStatus: REVALIDATED, originCount: 2, conditional: true },
    ],
  },
  {
    name: 'a quoted max-age is read as its number',
    headers: () => ['Cache-Control', 'max-age="60"'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      { at: 30, cacheStatus: 'cachemir; hit; ttl=30', originCount: 1 },
      { at: 65, cacheStatus: REVALIDATED, originCount: 2, conditional: true },
    ],
  },
  {
    name: 'two Cache-Control lines with different max-age values give the smaller lifetime',
    headers: () => ['Cache-Control', 'max-age=60', 'Cache-Control', 'max-age=10'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      { at: 5, cacheStatus: 'cachemir; hit; ttl=5', originCount: 1 },
      { at: 15, cacheStatus: REVALIDATED, originCount: 2, conditional: true },
    ],
  },
  {
    name: 'an invalid max-age makes the response stale at once',
    headers: () => ['Cache-Control', 'max-age=abc'],
    steps: [
      { at: 0, cacheStatus: MISS_STORED, originCount: 1 },
      { at: 0, cacheStatus: REVALIDATED, originCount: 2, conditional: true },
    ],
  },
  {
    name: 'no-store next to a max-age is not stored',
    headers: () => ['Cache-Control', 'max-age=60, no-store'],
    steps: [
      { at: 0, cacheStatus: NOT_STORED, originCount: 1 },
      { at: 0, cacheStatus: NOT_STORED, originCount: 2, conditional: false },
    ],
  },
]

for (const c of CASES) {
  test(c.name, async (t) => {
    const clock = fakeClock()
    const origin = await startRawOrigin(t, clock, c.headers, c.chunked === true)
    const proxy =
      c.rules === undefined
        ? await startProxy(t, { upstream: origin.url, now: clock.now })
        : await startRuleProxy(t, origin, c.rules, clock.now)

    let first: Fetched | undefined
    for (const [i, step] of c.steps.entries()) {
      const where = `step ${i + 1} (at ${step.at} s)`
      clock.set(step.at * SECOND)
      const res = await get(proxy.url(PATH))
      first ??= res
      assert.equal(res.status, 200, `${where}: status`)
      assert.equal(res.body.toString(), BODY, `${where}: body`)
      const cacheStatus = res.headers['cache-status'] ?? ''
      if (typeof step.cacheStatus === 'string') assert.equal(cacheStatus, step.cacheStatus, `${where}: Cache-Status`)
      else assert.match(cacheStatus, step.cacheStatus, `${where}: Cache-Status`)
      assert.equal(origin.count(PATH), step.originCount, `${where}: origin requests`)
      if (step.conditional !== undefined) {
        assert.equal(
          origin.requests.at(-1)?.headers['if-none-match'],
          step.conditional ? ETAG : undefined,
          `${where}: If-None-Match sent upstream`,
        )
      }
      for (const [name, value] of Object.entries(step.present ?? {})) assert.equal(res.headers[name], value, `${where}: ${name}`)
      for (const name of step.absent ?? []) assert.equal(res.headers[name], undefined, `${where}: no ${name}`)
      step.check?.(res, first)
      await until(() => proxy.mirror.fills.size === 0, 'no fill is running')
    }
  })
}
