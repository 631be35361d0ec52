// test/integration/stale.test.ts
// Serving stale responses (RFC 5861, RFC 9111 §4.2.4): stale-while-revalidate with one background
// revalidation, stale-if-error for 5xx answers, a disconnected origin, and an immutable rule that
// must not pin an error. Time is a fake clock the origin's Date follows.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sendBody, startOrigin, type Origin } from '../helpers/origin.js'
import { startProxy, type Proxy } from '../helpers/proxy.js'
import { get, type Fetched } from '../helpers/client.js'
import { makeTempDir } from '../helpers/temp-dir.js'
import { gate, until, waitForFills, type Gate } from '../helpers/wait.js'
import { fakeClock, type Clock } from '../helpers/clock.js'

const SECOND = 1000
const PATH = '/s'

/** What the origin answers; tests change it between requests. */
interface OriginState {
  version: number
  cacheControl: string
  /** answer every request with this status and a short error body */
  failWith: number | undefined
  /** when set, responses wait for it before their headers are written */
  hold: Gate | undefined
}

const etagOf = (version: number): string => `"v${version}"`
const bodyOf = (version: number): string => `representation version ${version}`

/**
 * Serves `bodyOf(version)` with ETag and X-Version; If-None-Match for the current ETag gets 304
 * with the current Cache-Control, ETag and X-Version. Date always follows the clock.
 */
async function startStateOrigin(t: TestContext, clock: Clock, state: OriginState): Promise<Origin> {
  return startOrigin(t, async (req, res) => {
    if (state.hold !== undefined) await state.hold.promise
    const date = new Date(clock.now()).toUTCString()
    if (state.failWith !== undefined) {
      await sendBody(req, res, Buffer.from(`origin error ${state.failWith}`), {
        status: state.failWith,
        headers: { 'content-type': 'text/plain', date },
      })
      return
    }
    const headers = { 'cache-control': state.cacheControl, etag: etagOf(state.version), 'x-version': String(state.version), date }
    if (req.headers['if-none-match'] === etagOf(state.version)) {
      res.writeHead(304, headers)
      res.end()
      return
    }
    await sendBody(req, res, Buffer.from(bodyOf(state.version)), { headers })
  })
}

/** Starts origin and mirror and stores version 1 at clock offset 0. */
async function primed(t: TestContext, cacheControl: string): Promise<{ clock: Clock; state: OriginState; origin: Origin; proxy: Proxy }> {
  const clock = fakeClock()
  const state: OriginState = { version: 1, cacheControl, failWith: undefined, hold: undefined }
  const origin = await startStateOrigin(t, clock, state)
  const proxy = await startProxy(t, { upstream: origin.url, now: clock.now })
  const first = await get(proxy.url(PATH))
  assert.equal(first.body.toString(), bodyOf(1))
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  await waitForFills(proxy)
  return { clock, state, origin, proxy }
}

function assertBody(res: Fetched, version: number, where: string): void {
  assert.equal(res.status, 200, `${where}: status`)
  assert.equal(res.body.toString(), bodyOf(version), `${where}: body`)
  assert.equal(res.headers['x-version'], String(version), `${where}: X-Version`)
}

// stale-while-revalidate within its window: served at once, refreshed once in the background.

interface BackgroundCase {
  readonly name: string
  /** the origin's new state when the background revalidation reaches it */
  readonly change: Partial<OriginState>
  /** what the next request gets once the revalidation is done */
  readonly versionAfter: number
  /** the new freshness lifetime, seconds: the ttl of the next hit */
  readonly ttlAfter: number
}

const SWR = 'max-age=60, stale-while-revalidate=30'

const BACKGROUND_CASES: readonly BackgroundCase[] = [
  {
    name: 'stale-while-revalidate serves a stale entry at once; one background request stores the new version',
    change: { version: 2 },
    versionAfter: 2,
    ttlAfter: 60,
  },
  {
    name: 'stale-while-revalidate serves a stale entry at once; a background 304 refreshes its freshness',
    change: { cacheControl: 'max-age=120, stale-while-revalidate=30' },
    versionAfter: 1,
    ttlAfter: 120,
  },
]

for (const c of BACKGROUND_CASES) {
  test(c.name, async (t) => {
    const { clock, state, origin, proxy } = await primed(t, SWR)
    Object.assign(state, c.change)
    const hold = gate(t)
    state.hold = hold

    // 70 s: stale by 10 s, inside the 30 s window. The origin holds its answer, yet every client
    // gets the stored copy: none of them waits for the revalidation.
    clock.set(70 * SECOND)
    for (let i = 1; i <= 3; i++) {
      // A client that waited for the held revalidation would fail on its headers timeout.
      const res = await get(proxy.url(PATH), { timeoutMs: 10_000 })
      assertBody(res, 1, `stale request ${i}`)
      assert.equal(res.headers['cache-status'], 'cachemir; hit; ttl=-10; detail=stale-while-revalidate', `stale request ${i}`)
      assert.equal(res.headers.age, '70')
    }
    await until(() => origin.count(PATH) === 2, 'the background revalidation reaches the origin')
    assert.equal(origin.requests[1]?.headers['if-none-match'], etagOf(1), 'the background request is conditional')

    state.hold = undefined
    hold.open()
    await waitForFills(proxy)
    assert.equal(origin.count(PATH), 2, 'one background request for three stale hits')

    const after = await get(proxy.url(PATH))
    assertBody(after, c.versionAfter, 'after the revalidation')
    assert.equal(after.headers['cache-control'], state.cacheControl, 'the new headers are served')
    assert.equal(after.headers['cache-status'], `cachemir; hit; ttl=${c.ttlAfter}`)
    assert.equal(after.headers.age, '0')
    assert.equal(origin.count(PATH), 2)
  })
}

// A background revalidation whose answer cannot be stored leaves the stale entry as it was.

interface BackgroundFailureCase {
  readonly name: string
  readonly change: Partial<OriginState>
}

const BACKGROUND_FAILURE_CASES: readonly BackgroundFailureCase[] = [
  { name: 'a background revalidation answered 500 leaves the stale entry in place', change: { failWith: 500 } },
  {
    name: 'a background revalidation answered with a no-store 200 leaves the stale entry in place',
    change: { version: 2, cacheControl: 'no-store' },
  },
]

for (const c of BACKGROUND_FAILURE_CASES) {
  test(c.name, async (t) => {
    const { clock, state, origin, proxy } = await primed(t, SWR)
    const saved = { ...state }
    Object.assign(state, c.change)

    for (const [i, at] of [70, 75].entries()) {
      clock.set(at * SECOND)
      const res = await get(proxy.url(PATH))
      assertBody(res, 1, `stale request at ${at} s`)
      assert.equal(res.headers['cache-status'], `cachemir; hit; ttl=${60 - at}; detail=stale-while-revalidate`)
      await until(() => origin.count(PATH) === i + 2, 'the background revalidation reaches the origin')
      await waitForFills(proxy)
      // Let anything the failed revalidation left behind (its unread body) be cleaned up.
      await new Promise((resolve) => setImmediate(resolve))
    }

    // The origin is back with the original representation: the next background request refreshes it.
    Object.assign(state, saved)
    clock.set(80 * SECOND)
    assert.equal((await get(proxy.url(PATH))).headers['cache-status'], 'cachemir; hit; ttl=-20; detail=stale-while-revalidate')
    await until(() => origin.count(PATH) === 4, 'the third background revalidation reaches the origin')
    await waitForFills(proxy)
    const fresh = await get(proxy.url(PATH))
    assertBody(fresh, 1, 'after the successful revalidation')
    assert.equal(fresh.headers['cache-status'], 'cachemir; hit; ttl=60')
    assert.equal(origin.count(PATH), 4)
  })
}

// Stale, but stale-while-revalidate does not apply: the client waits for the revalidation.

interface SyncCase {
  readonly name: string
  readonly cacheControl: string
  /** clock offset, seconds */
  readonly at: number
  readonly headers?: Record<string, string>
  readonly cacheStatus: string | RegExp
}

const SYNC_CASES: readonly SyncCase[] = [
  {
    name: 'beyond its stale-while-revalidate window an entry is revalidated before it is served',
    cacheControl: SWR,
    at: 100,
    cacheStatus: 'cachemir; fwd=stale; fwd-status=304',
  },
  {
    name: 'stale-while-revalidate does not apply to a must-revalidate response',
    cacheControl: `${SWR}, must-revalidate`,
    at: 70,
    cacheStatus: 'cachemir; fwd=stale; fwd-status=304',
  },
  {
    name: 'stale-while-revalidate does not apply when the client sends max-age',
    cacheControl: SWR,
    at: 70,
    headers: { 'cache-control': 'max-age=600' },
    cacheStatus: /^cachemir; fwd=(stale|request); fwd-status=304$/,
  },
]

for (const c of SYNC_CASES) {
  test(c.name, async (t) => {
    const { clock, origin, proxy } = await primed(t, c.cacheControl)
    clock.set(c.at * SECOND)
    const res = await get(proxy.url(PATH), c.headers === undefined ? {} : { headers: c.headers })
    assertBody(res, 1, 'revalidated')
    if (typeof c.cacheStatus === 'string') assert.equal(res.headers['cache-status'], c.cacheStatus)
    else assert.match(res.headers['cache-status'] ?? '', c.cacheStatus)
    assert.equal(res.headers.age, '0', 'the entry was just revalidated')
    assert.equal(origin.count(PATH), 2)
    assert.equal(origin.requests[1]?.headers['if-none-match'], etagOf(1))
  })
}

// stale-if-error: a 5xx from the origin for a stale entry.

const SIE = 'max-age=60, stale-if-error=30'

for (const status of [500, 502, 503, 504]) {
  test(`an origin ${status} within stale-if-error serves the stale copy, beyond it passes the ${status} on`, async (t) => {
    const { clock, state, origin, proxy } = await primed(t, SIE)
    state.failWith = status

    clock.set(70 * SECOND)
    const within = await get(proxy.url(PATH))
    assertBody(within, 1, 'within stale-if-error')
    assert.equal(within.headers['cache-status'], `cachemir; fwd=stale; fwd-status=${status}; detail=stale-if-error`)
    assert.equal(within.headers.age, '70')
    assert.equal(origin.count(PATH), 2)
    await waitForFills(proxy)

    clock.set(100 * SECOND)
    const beyond = await get(proxy.url(PATH))
    assert.equal(beyond.status, status)
    assert.equal(beyond.body.toString(), `origin error ${status}`)
    assert.doesNotMatch(beyond.headers['cache-status'] ?? '', /hit|stale-if-error/)
    assert.equal(origin.count(PATH), 3)
    await waitForFills(proxy)

    // The error replaced nothing: once the origin recovers, the entry is revalidated, not refetched.
    state.failWith = undefined
    const recovered = await get(proxy.url(PATH))
    assertBody(recovered, 1, 'after recovery')
    assert.equal(recovered.headers['cache-status'], 'cachemir; fwd=stale; fwd-status=304')
    assert.equal(origin.count(PATH), 4)
  })
}

// The origin cannot be reached at all.

interface DownCase {
  readonly name: string
  readonly cacheControl: string
  /** clock offset, seconds */
  readonly at: number
  /** the stale copy is served; otherwise 502 */
  readonly servesStale: boolean
}

const DOWN_CASES: readonly DownCase[] = [
  { name: 'with the origin down, a stale copy within stale-if-error is served', cacheControl: SIE, at: 70, servesStale: true },
  {
    name: 'with the origin down, a no-cache response is never served unvalidated: 502',
    cacheControl: 'no-cache, max-age=600',
    at: 0,
    servesStale: false,
  },
]

for (const c of DOWN_CASES) {
  test(c.name, async (t) => {
    const { clock, origin, proxy } = await primed(t, c.cacheControl)
    await origin.close()
    clock.set(c.at * SECOND)
    const res = await get(proxy.url(PATH), { timeoutMs: 20_000 })
    if (c.servesStale) {
      assertBody(res, 1, 'stale copy')
      assert.equal(res.headers['cache-status'], 'cachemir; fwd=stale; detail=stale-if-error')
    } else {
      assert.equal(res.status, 502)
      assert.notEqual(res.body.toString(), bodyOf(1))
      assert.equal(res.headers['cache-status'], 'cachemir; fwd=stale')
    }
    assert.equal(origin.count(PATH), 1)
  })
}

// An immutable rule must not pin an error.

test('under an immutable rule an origin 503 is passed on and not stored; the 200 after recovery is', async (t) => {
  const clock = fakeClock()
  let down = true
  const origin = await startOrigin(t, async (req, res) => {
    const date = new Date(clock.now()).toUTCString()
    if (down) {
      // Explicitly fresh, so without the rule a shared cache could keep it.
      await sendBody(req, res, Buffer.from('syncing, try later'), {
        status: 503,
        headers: { 'cache-control': 'max-age=600', 'retry-after': '5', date },
      })
      return
    }
    await sendBody(req, res, Buffer.from('package bytes'), { headers: { 'cache-control': 'max-age=600', date } })
  })
  const dir = await makeTempDir(t, 'cachemir-config-')
  const config = join(dir, 'cachemir.json')
  await writeFile(
    config,
    JSON.stringify({ routes: [{ prefix: '/', upstreams: [`${origin.url}/`], rules: [{ match: '\\.deb$', cache: 'immutable' }] }] }),
  )
  const proxy = await startProxy(t, { config, now: clock.now })

  for (let i = 1; i <= 2; i++) {
    const res = await get(proxy.url('/p.deb'))
    assert.equal(res.status, 503)
    assert.equal(res.body.toString(), 'syncing, try later')
    assert.match(res.headers['cache-status'] ?? '', /^cachemir; fwd=miss; detail=[\w-]+$/)
    assert.equal(origin.count('/p.deb'), i)
    await waitForFills(proxy)
  }

  down = false
  const filled = await get(proxy.url('/p.deb'))
  assert.equal(filled.status, 200)
  assert.equal(filled.body.toString(), 'package bytes')
  assert.equal(filled.headers['cache-status'], 'cachemir; fwd=miss; stored')
  await waitForFills(proxy)

  clock.set(365 * 24 * 3600 * SECOND)
  const hit = await get(proxy.url('/p.deb'))
  assert.equal(hit.status, 200)
  assert.equal(hit.body.toString(), 'package bytes')
  assert.match(hit.headers['cache-status'] ?? '', /^cachemir; hit(;|$)/)
  assert.equal(origin.count('/p.deb'), 3)
})
