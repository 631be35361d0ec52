// test/integration/vary.test.ts
// Several stored variants of one URL (RFC 9111 §4.1): each response with Vary is stored for the
// request's values of the named headers and selected only by requests with the same (normalized)
// values. Also: Vary: * among other names, a URL that stops or starts varying, a POST that
// invalidates every variant, and a request that joins a fill whose response turns out to vary on
// a header it sent differently. Time is a fake clock the origin's Date follows.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { sendBody, startOrigin, type Origin } from '../helpers/origin.js'
import { startProxy } from '../helpers/proxy.js'
import { cacheStatus, get, getFirstBytes } from '../helpers/client.js'
import { gate, until, waitForFills, WAIT_MS, within } from '../helpers/wait.js'
import { fakeClock, type Clock } from '../helpers/clock.js'

const SECOND = 1000
const PATH = '/v'

/** What the origin currently answers GET with; steps may change it. */
interface OriginState {
  version: number
  /** The Vary header sent, or undefined for none. */
  vary: string | undefined
  maxAge: number
}

/** Request headers the origin echoes into the body, so every variant has its own bytes. */
const ECHOED = ['accept-encoding', 'accept-language', 'x-custom']

/** The body the origin sends for this version and these request header values. */
function bodyFor(version: number, values: Record<string, string | undefined>): string {
  return `v${version} ${ECHOED.map((n) => `${n}=${values[n] ?? '-'}`).join(' ')}`
}

function echo(req: IncomingMessage, version: number): string {
  const values: Record<string, string | undefined> = {}
  for (const n of ECHOED) {
    const v = req.headers[n]
    values[n] = Array.isArray(v) ? v.join(', ') : v
  }
  return bodyFor(version, values)
}

async function startVaryOrigin(t: Parameters<typeof startOrigin>[0], clock: Clock, state: OriginState): Promise<Origin> {
  return startOrigin(t, async (req, res) => {
    const date = new Date(clock.now()).toUTCString()
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      req.resume()
      await sendBody(req, res, Buffer.from('posted'), { headers: { 'content-type': 'text/plain', date } })
      return
    }
    const headers: Record<string, string> = { 'cache-control': `max-age=${state.maxAge}`, 'content-type': 'text/plain', date }
    if (state.vary !== undefined) headers['vary'] = state.vary
    await sendBody(req, res, Buffer.from(echo(req, state.version)), { headers })
  })
}

const HIT = /^cachemir; hit; ttl=\d+$/
const MISS_STORED = /^cachemir; fwd=(miss|vary-miss); stored$/
const NOT_STORED = /^cachemir; fwd=miss; detail=[\w-]+$/

type Step =
  | {
      readonly get: Record<string, string>
      /** expected body: version and the request header values it was produced for */
      readonly body: readonly [number, Record<string, string>]
      readonly cacheStatus: RegExp
      /** GETs the origin has seen after this step */
      readonly gets: number
    }
  | { readonly origin: Partial<OriginState> }
  | { readonly at: number }
  | { readonly post: number }

interface Case {
  readonly name: string
  readonly origin: OriginState
  readonly steps: readonly Step[]
}

const AE = (v: string): Record<string, string> => ({ 'accept-encoding': v })
const V1: OriginState = { version: 1, vary: 'Accept-Encoding', maxAge: 600 }

const CASES: readonly Case[] = [
  {
    name: 'two variants of one URL are both stored, and each is a hit for its own Accept-Encoding',
    origin: V1,
    steps: [
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: /^cachemir; fwd=miss; stored$/, gets: 1 },
      { get: AE('br'), body: [1, AE('br')], cacheStatus: MISS_STORED, gets: 2 },
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: HIT, gets: 2 },
      { get: AE('br'), body: [1, AE('br')], cacheStatus: HIT, gets: 2 },
    ],
  },
  {
    name: 'header values that differ only in whitespace around commas select the same variant',
    origin: V1,
    steps: [
      { get: AE('gzip,  br'), body: [1, AE('gzip,  br')], cacheStatus: MISS_STORED, gets: 1 },
      { get: AE('gzip, br'), body: [1, AE('gzip,  br')], cacheStatus: HIT, gets: 1 },
      { get: AE('gzip,br'), body: [1, AE('gzip,  br')], cacheStatus: HIT, gets: 1 },
      { get: AE('gzip ,\tbr'), body: [1, AE('gzip,  br')], cacheStatus: HIT, gets: 1 },
      { get: AE('gzip, deflate'), body: [1, AE('gzip, deflate')], cacheStatus: MISS_STORED, gets: 2 },
    ],
  },
  {
    name: 'a request without the varied header is its own variant',
    origin: V1,
    steps: [
      { get: {}, body: [1, {}], cacheStatus: MISS_STORED, gets: 1 },
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: MISS_STORED, gets: 2 },
      { get: {}, body: [1, {}], cacheStatus: HIT, gets: 2 },
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: HIT, gets: 2 },
    ],
  },
  {
    name: 'Vary with two names selects a variant on both header values',
    origin: { ...V1, vary: 'Accept-Encoding, Accept-Language' },
    steps: [
      {
        get: { 'accept-encoding': 'gzip', 'accept-language': 'en' },
        body: [1, { 'accept-encoding': 'gzip', 'accept-language': 'en' }],
        cacheStatus: MISS_STORED,
        gets: 1,
      },
      {
        get: { 'accept-encoding': 'gzip', 'accept-language': 'de' },
        body: [1, { 'accept-encoding': 'gzip', 'accept-language': 'de' }],
        cacheStatus: MISS_STORED,
        gets: 2,
      },
      {
        get: { 'accept-encoding': 'br', 'accept-language': 'en' },
        body: [1, { 'accept-encoding': 'br', 'accept-language': 'en' }],
        cacheStatus: MISS_STORED,
        gets: 3,
      },
      {
        get: { 'accept-encoding': 'gzip', 'accept-language': 'en' },
        body: [1, { 'accept-encoding': 'gzip', 'accept-language': 'en' }],
        cacheStatus: HIT,
        gets: 3,
      },
      {
        get: { 'accept-encoding': 'gzip', 'accept-language': 'de' },
        body: [1, { 'accept-encoding': 'gzip', 'accept-language': 'de' }],
        cacheStatus: HIT,
        gets: 3,
      },
      {
        get: { 'accept-encoding': 'br', 'accept-language': 'en' },
        body: [1, { 'accept-encoding': 'br', 'accept-language': 'en' }],
        cacheStatus: HIT,
        gets: 3,
      },
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: MISS_STORED, gets: 4 },
    ],
  },
  {
    name: 'a Vary that lists * among other names is never stored',
    origin: { ...V1, vary: 'Accept-Encoding, *' },
    steps: [
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: NOT_STORED, gets: 1 },
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: NOT_STORED, gets: 2 },
    ],
  },
  {
    name: 'when the origin stops sending Vary, its plain response replaces the variants for every request',
    origin: V1,
    steps: [
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: MISS_STORED, gets: 1 },
      { get: AE('br'), body: [1, AE('br')], cacheStatus: MISS_STORED, gets: 2 },
      { origin: { version: 2, vary: undefined } },
      { get: AE('deflate'), body: [2, AE('deflate')], cacheStatus: MISS_STORED, gets: 3 },
      { get: AE('gzip'), body: [2, AE('deflate')], cacheStatus: HIT, gets: 3 },
      { get: AE('br'), body: [2, AE('deflate')], cacheStatus: HIT, gets: 3 },
      { get: {}, body: [2, AE('deflate')], cacheStatus: HIT, gets: 3 },
    ],
  },
  {
    name: 'when a stale variant is refetched without Vary, the plain response serves the other variants too',
    origin: { ...V1, maxAge: 60 },
    steps: [
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: MISS_STORED, gets: 1 },
      { get: AE('br'), body: [1, AE('br')], cacheStatus: MISS_STORED, gets: 2 },
      { origin: { version: 2, vary: undefined } },
      { at: 65 },
      { get: AE('gzip'), body: [2, AE('gzip')], cacheStatus: /^cachemir; fwd=stale; fwd-status=200; stored$/, gets: 3 },
      { get: AE('br'), body: [2, AE('gzip')], cacheStatus: HIT, gets: 3 },
    ],
  },
  {
    name: 'when a URL starts to vary, its old plain entry is not served to other variants',
    origin: { ...V1, vary: undefined, maxAge: 60 },
    steps: [
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: /^cachemir; fwd=miss; stored$/, gets: 1 },
      // Without Vary the one response is right for every request.
      { get: AE('br'), body: [1, AE('gzip')], cacheStatus: HIT, gets: 1 },
      { origin: { version: 2, vary: 'Accept-Encoding' } },
      { at: 65 },
      { get: AE('gzip'), body: [2, AE('gzip')], cacheStatus: /^cachemir; fwd=stale; fwd-status=200; stored$/, gets: 2 },
      { get: AE('br'), body: [2, AE('br')], cacheStatus: MISS_STORED, gets: 3 },
      { get: {}, body: [2, {}], cacheStatus: MISS_STORED, gets: 4 },
      { get: AE('gzip'), body: [2, AE('gzip')], cacheStatus: HIT, gets: 4 },
      { get: AE('br'), body: [2, AE('br')], cacheStatus: HIT, gets: 4 },
    ],
  },
  {
    name: 'a successful POST to the URL invalidates all its variants',
    origin: V1,
    steps: [
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: MISS_STORED, gets: 1 },
      { get: AE('br'), body: [1, AE('br')], cacheStatus: MISS_STORED, gets: 2 },
      { get: {}, body: [1, {}], cacheStatus: MISS_STORED, gets: 3 },
      { get: AE('gzip'), body: [1, AE('gzip')], cacheStatus: HIT, gets: 3 },
      { origin: { version: 2 } },
      { post: 200 },
      { get: AE('gzip'), body: [2, AE('gzip')], cacheStatus: MISS_STORED, gets: 4 },
      { get: AE('br'), body: [2, AE('br')], cacheStatus: MISS_STORED, gets: 5 },
      { get: {}, body: [2, {}], cacheStatus: MISS_STORED, gets: 6 },
      { get: AE('gzip'), body: [2, AE('gzip')], cacheStatus: HIT, gets: 6 },
      { get: AE('br'), body: [2, AE('br')], cacheStatus: HIT, gets: 6 },
      { get: {}, body: [2, {}], cacheStatus: HIT, gets: 6 },
    ],
  },
  {
    name: 'Vary on an arbitrary request header (X-Custom) selects variants by its value',
    origin: { ...V1, vary: 'X-Custom' },
    steps: [
      { get: { 'x-custom': 'a' }, body: [1, { 'x-custom': 'a' }], cacheStatus: MISS_STORED, gets: 1 },
      { get: { 'x-custom': 'b' }, body: [1, { 'x-custom': 'b' }], cacheStatus: MISS_STORED, gets: 2 },
      { get: {}, body: [1, {}], cacheStatus: MISS_STORED, gets: 3 },
      // Accept-Encoding is not named in Vary: it does not select.
      { get: { 'x-custom': 'a', 'accept-encoding': 'gzip' }, body: [1, { 'x-custom': 'a' }], cacheStatus: HIT, gets: 3 },
      { get: { 'x-custom': 'b' }, body: [1, { 'x-custom': 'b' }], cacheStatus: HIT, gets: 3 },
      { get: {}, body: [1, {}], cacheStatus: HIT, gets: 3 },
      { get: { 'x-custom': 'A' }, body: [1, { 'x-custom': 'A' }], cacheStatus: MISS_STORED, gets: 4 },
    ],
  },
]

function originGets(origin: Origin): number {
  return origin.requests.filter((r) => r.method === 'GET' && r.url === PATH).length
}

for (const c of CASES) {
  test(c.name, async (t) => {
    const clock = fakeClock()
    const state: OriginState = { ...c.origin }
    const origin = await startVaryOrigin(t, clock, state)
    const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })

    for (const [i, step] of c.steps.entries()) {
      if ('origin' in step) {
        Object.assign(state, step.origin)
        continue
      }
      if ('at' in step) {
        clock.set(step.at * SECOND)
        continue
      }
      if ('post' in step) {
        const res = await get(proxy.url(PATH), { method: 'POST', body: 'change', headers: { 'content-type': 'text/plain' } })
        assert.equal(res.status, step.post, `step ${i + 1}: POST status`)
        assert.equal(res.body.toString(), 'posted')
        continue
      }
      const where = `step ${i + 1} (GET ${JSON.stringify(step.get)})`
      const before = originGets(origin)
      const res = await get(proxy.url(PATH), { headers: step.get })
      assert.equal(res.status, 200, `${where}: status`)
      assert.equal(res.body.toString(), bodyFor(step.body[0], step.body[1]), `${where}: body`)
      assert.match(res.headers['cache-status'] ?? '', step.cacheStatus, `${where}: Cache-Status`)
      assert.equal(originGets(origin), step.gets, `${where}: GETs at the origin`)
      if (step.gets > before) {
        // The fill carried this client's values of the echoed headers upstream.
        const seen = origin.requests.filter((r) => r.method === 'GET').at(-1)
        for (const name of ECHOED) assert.equal(seen?.headers[name], step.get[name], `${where}: ${name} sent upstream`)
      }
      await waitForFills(proxy)
    }
  })
}

test('a POST while a variant is still being fetched leaves no pre-POST variant in the cache', async (t) => {
  const release = gate(t)
  let version = 1
  const origin = await startOrigin(t, async (req, res) => {
    if (req.method !== 'GET') {
      req.resume()
      version++
      await sendBody(req, res, Buffer.from('posted'), { headers: { 'content-type': 'text/plain' } })
      return
    }
    const encoding = req.headers['accept-encoding'] ?? '-'
    const body = `v${version} ${encoding} `.padEnd(64, '.')
    res.writeHead(200, { 'cache-control': 'max-age=600', vary: 'Accept-Encoding', 'content-length': String(body.length) })
    res.write(body.slice(0, 32))
    // The br variant of version 1 is held half-sent until the POST is done.
    if (version === 1 && encoding === 'br') await release.promise
    res.end(body.slice(32))
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  assert.match((await get(proxy.url(PATH), { headers: AE('gzip') })).body.toString(), /^v1 gzip /)
  await waitForFills(proxy)
  const inFlight = await getFirstBytes(proxy.url(PATH), 1, { headers: AE('br') })
  const write = await get(proxy.url(PATH), { method: 'POST', body: 'change' })
  assert.equal(write.status, 200)
  release.open()
  assert.match((await inFlight.rest()).body.toString(), /^v1 br /, 'the request made before the POST gets the old version')
  await waitForFills(proxy)

  for (const encoding of ['br', 'gzip']) {
    const res = await get(proxy.url(PATH), { headers: AE(encoding) })
    assert.match(res.body.toString(), new RegExp(`^v2 ${encoding} `), `${encoding}: no pre-POST bytes after the POST`)
    assert.match(res.headers['cache-status'] ?? '', MISS_STORED)
    await waitForFills(proxy)
  }
  assert.equal(originGets(origin), 4)
})

test('a request that joins a fill whose response varies on a header it sent differently gets its own response', async (t) => {
  const release = gate(t)
  const origin = await startOrigin(t, async (req, res) => {
    const language = req.headers['accept-language'] ?? '-'
    // The fill started by the en request answers only once the de request has joined it; the de
    // request's own fetch, if it makes one, is answered at once.
    if (language === 'en') await release.promise
    await sendBody(req, res, Buffer.from(`hello in ${language}`), {
      headers: { 'cache-control': 'max-age=600', 'content-type': 'text/plain', vary: 'Accept-Language' },
    })
  })
  const proxy = await startProxy(t, { upstream: origin.url })

  const en = get(proxy.url(PATH), { headers: { 'accept-language': 'en' } })
  await until(() => origin.count(PATH) === 1, 'the en request to start the fill', WAIT_MS)
  // Nothing is stored yet, so the mirror cannot know the URL varies: the de request joins the fill.
  const de = get(proxy.url(PATH), { headers: { 'accept-language': 'de' } })
  await until(() => proxy.mirror.fills.counters.joined === 1 || origin.count(PATH) > 1, 'the de request to join the fill', WAIT_MS)
  release.open()
  const [enRes, deRes] = await within(Promise.all([en, de]), WAIT_MS, 'both responses')

  assert.equal(enRes.status, 200)
  assert.equal(enRes.body.toString(), 'hello in en')
  assert.equal(cacheStatus(enRes), 'cachemir; fwd=miss; stored')
  assert.equal(deRes.status, 200)
  assert.equal(deRes.body.toString(), 'hello in de', 'the de client never gets the en body')
  assert.equal(cacheStatus(deRes), 'cachemir; fwd=vary-miss')
  assert.equal(proxy.mirror.fills.counters.joined, 1, 'the de request did join the en fill')
  assert.equal(origin.count(PATH), 2)
  assert.deepEqual(
    origin.requests.map((r) => r.headers['accept-language']),
    ['en', 'de'],
  )
})
