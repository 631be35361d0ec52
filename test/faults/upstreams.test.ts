// test/faults/upstreams.test.ts
// Upstreams that fail in every way a mirror meets: refusing connections, answering 5xx, never
// sending their headers (on fills and on a passed-through POST), stalling mid-body, all failing
// at once, per-route timeouts, and redirecting (into the route, out of it, in long chains). Each test checks what a client sees (status, body digest,
// Cache-Status, a short error body naming the upstream), what the origins saw (request counts),
// and what /_cachemir/health reports about each upstream.
//
// Already covered elsewhere, not repeated here (test/integration/failures.test.ts): a single
// upstream refusing connections gives 502, an origin 500 is passed on and not stored, bodies
// that break off mid-way cut every client short; (test/integration/stale.test.ts) stale-if-error
// windows and must-revalidate on an upstream 5xx.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { assertBody } from '../helpers/assert.js'
import { cacheStatus, get, type Fetched } from '../helpers/client.js'
import { makeBody, sendBody, serveStatic, startOrigin, type Origin } from '../helpers/origin.js'
import { getHealth, startConfiguredProxy, startProxy, type Proxy } from '../helpers/proxy.js'
import { tempFilesIn } from '../helpers/cache-files.js'
import { KiB } from '../helpers/sizes.js'
import { closedPort, startTcpSink } from '../helpers/tcp.js'
import { until, WAIT_MS, within } from '../helpers/wait.js'

const CACHEABLE = { 'cache-control': 'max-age=3600', 'content-type': 'application/octet-stream' }

interface UpstreamHealth {
  url: string
  state: 'up' | 'down'
  consecutiveFailures: number
  retryInMs: number
  lastError?: string
  requests: number
  failures: number
}

interface Health {
  offline: boolean
  upstream: { requests: number; failures: number; failovers: number }
  routes: { prefix: string; upstreams: UpstreamHealth[] }[]
}

/** The health record of the upstream with this base URL (as configured, trailing slash included). */
async function upstreamHealth(proxy: Proxy, url: string): Promise<UpstreamHealth> {
  const h = await getHealth<Health>(proxy)
  const found = h.routes.flatMap((r) => r.upstreams).find((u) => u.url === url)
  assert.ok(found !== undefined, `health lists ${url}: ${JSON.stringify(h.routes)}`)
  return found
}

/** A short plain-text error answer, as the README promises for upstream failures. */
function assertShortTextError(r: Fetched, status: number, what: string): string {
  assert.equal(r.status, status, `${what}: status (${r.body.toString()})`)
  assert.equal(r.complete, true, `${what}: complete`)
  assert.match(r.headers['content-type'] ?? '', /^text\/plain/, `${what}: content-type`)
  assert.ok(r.body.length > 0 && r.body.length < 512, `${what}: short body, got ${r.body.length} bytes`)
  assert.doesNotMatch(cacheStatus(r), /hit|stored/, `${what}: cache-status`)
  return r.body.toString()
}

/** Nothing stored and nothing being filled: no fill left, no entry, no temp file. */
async function assertNothingStored(proxy: Proxy): Promise<void> {
  await until(() => proxy.mirror.fills.size === 0, 'the fill to finish', WAIT_MS)
  assert.equal(proxy.mirror.store.stats().diskEntries, 0, 'no entry on disk')
  assert.deepEqual(await tempFilesIn(proxy.cacheDir), [], 'no temp file left')
}

/** An origin answering every request with a cacheable body naming itself and the target. */
function namedOrigin(t: TestContext, name: string): Promise<Origin> {
  return startOrigin(t, (req, res) => sendBody(req, res, Buffer.from(`${name} ${req.url ?? ''}`), { headers: CACHEABLE }))
}

test('a first upstream that refuses connections is skipped: the fill is served and stored from the second, and health shows the first down', async (t) => {
  const body = makeBody(256 * KiB, 1)
  const good = await startOrigin(t, serveStatic({ '/a.bin': { body, headers: CACHEABLE } }))
  const deadPort = await closedPort()
  const dead = `http://127.0.0.1:${deadPort}/`
  const proxy = await startProxy(t, { upstream: [dead, `${good.url}/`] })

  const first = await within(get(proxy.url('/a.bin')), WAIT_MS, 'the fill with a dead first upstream')
  assertBody(first, body, 'fill')
  assert.equal(cacheStatus(first), 'cachemir; fwd=miss; stored')
  assert.equal(good.count('/a.bin'), 1)

  const down = await upstreamHealth(proxy, dead)
  assert.equal(down.state, 'down', JSON.stringify(down))
  assert.ok(down.consecutiveFailures >= 1, JSON.stringify(down))
  assert.ok(down.failures >= 1, JSON.stringify(down))
  assert.ok(down.retryInMs > 0, JSON.stringify(down))
  assert.equal(typeof down.lastError, 'string', JSON.stringify(down))
  assert.ok((down.lastError ?? '').length > 0, JSON.stringify(down))
  const up = await upstreamHealth(proxy, `${good.url}/`)
  assert.equal(up.state, 'up', JSON.stringify(up))
  assert.equal(up.consecutiveFailures, 0, JSON.stringify(up))
  assert.equal(up.requests, 1, JSON.stringify(up))

  const hit = await get(proxy.url('/a.bin'))
  assertBody(hit, body, 'second request')
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  assert.equal(good.count(), 1)
})

test('a failed upstream is not contacted during its back-off, is probed again after it (back-off doubling on a failed probe), and a healthy probe puts it back up', async (t) => {
  let clock = Date.now()
  let firstHealthy = false
  const first = await startOrigin(t, (req, res) =>
    firstHealthy
      ? sendBody(req, res, Buffer.from(`first ${req.url ?? ''}`), { headers: CACHEABLE })
      : sendBody(req, res, Buffer.from('busy'), { status: 503, headers: { 'content-type': 'text/plain' } }),
  )
  const second = await namedOrigin(t, 'second')
  const firstUrl = `${first.url}/`
  const proxy = await startProxy(t, { upstream: [firstUrl, `${second.url}/`], now: () => clock })

  // The first answers 503: the client gets the second's answer, and the first goes down for 1 s.
  assertBody(await get(proxy.url('/one')), 'second /one', '/one')
  assert.equal(first.count(), 1)
  let h = await upstreamHealth(proxy, firstUrl)
  assert.equal(h.state, 'down', JSON.stringify(h))
  assert.equal(h.consecutiveFailures, 1, JSON.stringify(h))
  assert.match(h.lastError ?? '', /503/, JSON.stringify(h))
  assert.ok(h.retryInMs > 0 && h.retryInMs <= 1000, JSON.stringify(h))

  // Within the back-off, misses go straight to the second.
  clock += 500
  assertBody(await get(proxy.url('/two')), 'second /two', '/two within the back-off')
  assert.equal(first.count(), 1, 'the first is not contacted during its back-off')

  // After the back-off the first is probed again; still failing, its back-off doubles to 2 s.
  clock += 700
  assertBody(await get(proxy.url('/three')), 'second /three', '/three after the back-off')
  assert.equal(first.count(), 2, 'the first is probed after its back-off')
  assert.equal(first.count('/three'), 1)
  h = await upstreamHealth(proxy, firstUrl)
  assert.equal(h.state, 'down', JSON.stringify(h))
  assert.equal(h.consecutiveFailures, 2, JSON.stringify(h))
  assert.ok(h.retryInMs > 1000 && h.retryInMs <= 2000, JSON.stringify(h))

  clock += 1200
  assertBody(await get(proxy.url('/four')), 'second /four', '/four within the doubled back-off')
  assert.equal(first.count(), 2, 'the first is not contacted during its doubled back-off')

  // Past the doubled back-off, and healthy again: the probe succeeds and the first is back up.
  clock += 1000
  firstHealthy = true
  const five = await get(proxy.url('/five'))
  assertBody(five, 'first /five', '/five from the recovered first upstream')
  assert.equal(cacheStatus(five), 'cachemir; fwd=miss; stored')
  assert.equal(first.count(), 3)
  assert.equal(second.count('/five'), 0)
  h = await upstreamHealth(proxy, firstUrl)
  assert.equal(h.state, 'up', JSON.stringify(h))
  assert.equal(h.consecutiveFailures, 0, JSON.stringify(h))
  assert.equal(h.retryInMs, 0, JSON.stringify(h))
  assert.equal(h.requests, 3, JSON.stringify(h))
  assert.equal(h.failures, 2, JSON.stringify(h))
  assert.equal(second.count(), 4)
})

test('a first upstream answering 500 is skipped for the second; its 500 never reaches the client', async (t) => {
  const body = makeBody(64 * KiB, 2)
  const broken = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from('first exploded'), { status: 500, headers: { 'content-type': 'text/plain' } }),
  )
  const good = await startOrigin(t, serveStatic({ '/a.bin': { body, headers: CACHEABLE } }))
  const proxy = await startProxy(t, { upstream: [`${broken.url}/`, `${good.url}/`] })

  const r = await within(get(proxy.url('/a.bin')), WAIT_MS, 'failover after a 500')
  assertBody(r, body, 'fill after the 500')
  assert.equal(cacheStatus(r), 'cachemir; fwd=miss; stored')
  assert.equal(broken.count('/a.bin'), 1)
  assert.equal(good.count('/a.bin'), 1)
  const h = await upstreamHealth(proxy, `${broken.url}/`)
  assert.equal(h.state, 'down', JSON.stringify(h))
  assert.match(h.lastError ?? '', /500/, JSON.stringify(h))

  assert.match(cacheStatus(await get(proxy.url('/a.bin'))), /^cachemir; hit/)
  assert.equal(broken.count() + good.count(), 2)
})

test('a first upstream that never sends its headers is abandoned after --headers-timeout for the second', async (t) => {
  const body = makeBody(64 * KiB, 3)
  const silent = await startTcpSink(t)
  const good = await startOrigin(t, serveStatic({ '/a.bin': { body, headers: CACHEABLE } }))
  const silentUrl = `http://127.0.0.1:${silent.port}/`
  const proxy = await startProxy(t, { upstream: [silentUrl, `${good.url}/`], headersTimeout: '300ms' })

  // The default headers timeout is 30 s: an answer within WAIT_MS means the 300 ms applied.
  const r = await within(get(proxy.url('/a.bin')), WAIT_MS, 'failover after the headers timeout')
  assertBody(r, body, 'fill after the timeout')
  assert.equal(cacheStatus(r), 'cachemir; fwd=miss; stored')
  assert.equal(silent.connections(), 1)
  assert.match(silent.received(), /^GET \/a\.bin HTTP\/1\.1\r\n/, 'the silent upstream was asked')
  assert.equal(good.count('/a.bin'), 1)
  const h = await upstreamHealth(proxy, silentUrl)
  assert.equal(h.state, 'down', JSON.stringify(h))
  assert.match(h.lastError ?? '', /timed out/, JSON.stringify(h))
})

test('a POST passed through to an upstream that never answers gets 504 after --headers-timeout, not an endless wait', async (t) => {
  const silent = await startTcpSink(t)
  const proxy = await startProxy(t, { upstream: `http://127.0.0.1:${silent.port}/`, headersTimeout: '300ms' })

  // The client gives up after 5 s; the mirror's 300 ms limit must answer long before.
  const r = await get(proxy.url('/upload'), { method: 'POST', body: 'payload', timeoutMs: 5_000 }).catch((err: unknown) =>
    assert.fail(`no answer to the POST within 5 s: ${String(err)}`),
  )
  assert.equal(silent.connections(), 1)
  assert.match(silent.received(), /^POST \/upload HTTP\/1\.1\r\n/, 'the POST reached the upstream')
  assertShortTextError(r, 504, 'POST to a silent upstream')
  assert.match(cacheStatus(r), /fwd=method/)
})

test('every upstream refusing connections: a never-cached object gets 502 with a short text body naming the upstream, and nothing is stored', async (t) => {
  const ports = [await closedPort(), await closedPort()]
  const proxy = await startProxy(t, { upstream: ports.map((p) => `http://127.0.0.1:${p}/`) })

  for (let i = 1; i <= 2; i++) {
    const r = await within(get(proxy.url('/x.bin')), WAIT_MS, 'the answer when every upstream refuses')
    const text = assertShortTextError(r, 502, `request ${i}`)
    assert.ok(
      ports.some((p) => text.includes(`http://127.0.0.1:${p}/x.bin`)),
      `request ${i}: the body names the upstream URL: ${JSON.stringify(text)}`,
    )
    assert.match(cacheStatus(r), /^cachemir; fwd=miss/)
  }
  await assertNothingStored(proxy)
  for (const p of ports) {
    const h = await upstreamHealth(proxy, `http://127.0.0.1:${p}/`)
    assert.equal(h.state, 'down', JSON.stringify(h))
    assert.equal(h.consecutiveFailures, 2, JSON.stringify(h))
  }
})

test('every upstream silent past --headers-timeout: a never-cached object gets 504 with a short text body naming the upstream', async (t) => {
  const sinks = [await startTcpSink(t), await startTcpSink(t)]
  const proxy = await startProxy(t, { upstream: sinks.map((s) => `http://127.0.0.1:${s.port}/`), headersTimeout: '300ms' })

  const r = await within(get(proxy.url('/x.bin')), WAIT_MS, 'the answer when every upstream times out')
  const text = assertShortTextError(r, 504, 'timeout')
  assert.ok(
    sinks.some((s) => text.includes(`http://127.0.0.1:${s.port}/x.bin`)),
    `the body names the upstream URL: ${JSON.stringify(text)}`,
  )
  assert.match(text, /timed out/)
  for (const s of sinks) assert.equal(s.connections(), 1, 'each upstream was tried once')
  await assertNothingStored(proxy)
})

test('every upstream failing (one refusing, one silent): a stale cached copy is served with detail=stale-if-error, a never-cached object gets 504', async (t) => {
  let clock = Date.now()
  const body = makeBody(128 * KiB, 4)
  const origin = await startOrigin(t, serveStatic({ '/s.bin': { body, headers: { 'cache-control': 'max-age=60' } } }))
  const silent = await startTcpSink(t)
  const proxy = await startProxy(t, {
    upstream: [`${origin.url}/`, `http://127.0.0.1:${silent.port}/`],
    headersTimeout: '300ms',
    now: () => clock,
  })

  const fill = await get(proxy.url('/s.bin'))
  assertBody(fill, body, 'fill')
  assert.equal(cacheStatus(fill), 'cachemir; fwd=miss; stored')

  // The origin goes away (its port now refuses), the second never answers, the copy is stale.
  await origin.close()
  clock += 120_000
  const stale = await within(get(proxy.url('/s.bin')), WAIT_MS, 'the stale answer')
  assertBody(stale, body, 'stale copy')
  assert.equal(cacheStatus(stale), 'cachemir; fwd=stale; detail=stale-if-error')
  assert.ok(Number(stale.headers['age']) >= 120, `Age counts the time in cache: ${stale.headers['age']}`)
  assert.equal(silent.connections(), 1, 'the second upstream was tried')
  assert.equal(origin.count('/s.bin'), 1)

  const missing = await within(get(proxy.url('/never.bin')), WAIT_MS, 'the answer for a never-cached object')
  assertShortTextError(missing, 504, 'never-cached object')
})

test('an upstream body that stalls past --idle-timeout cuts the client short, stores nothing, and the next request refetches the whole object', async (t) => {
  const body = makeBody(1024 * KiB, 5)
  let served = 0
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, body, { headers: CACHEABLE, ...(++served === 1 ? { stallAfterBytes: 128 * KiB } : {}) }),
  )
  const proxy = await startProxy(t, { upstream: `${origin.url}/`, idleTimeout: '300ms' })

  // The client's own timeout (30 s) is far beyond WAIT_MS: an end within WAIT_MS is the mirror's doing.
  const cut = await within(get(proxy.url('/big.bin'), { timeoutMs: 30_000 }), WAIT_MS, 'the stalled response to end')
  assert.equal(cut.status, 200)
  assert.equal(cut.complete, false, 'the stalled body must not end cleanly')
  assert.ok(cut.body.length < body.length, `got ${cut.body.length} of ${body.length} bytes`)
  assert.deepEqual(cut.body, body.subarray(0, cut.body.length), 'what arrived is the start of the body')
  await assertNothingStored(proxy)

  const retry = await within(get(proxy.url('/big.bin')), WAIT_MS, 'the refetch')
  assertBody(retry, body, 'refetch')
  assert.equal(cacheStatus(retry), 'cachemir; fwd=miss; stored')
  assert.equal(origin.count('/big.bin'), 2)
  const hit = await get(proxy.url('/big.bin'))
  assertBody(hit, body, 'hit after the refetch')
  assert.match(cacheStatus(hit), /^cachemir; hit/)
  assert.equal(origin.count('/big.bin'), 2)
})

test('per-route timeouts: a route with a 300 ms headers limit gets 504 from a slow origin while a route without one waits for its 200', async (t) => {
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(`slow ${req.url ?? ''}`), { headers: CACHEABLE, firstByteDelayMs: 1000 }),
  )
  const proxy = await startConfiguredProxy(t, {
    routes: [
      { prefix: '/quick/', upstreams: [`${origin.url}/q/`], timeouts: { headers: '300ms' } },
      { prefix: '/patient/', upstreams: [`${origin.url}/p/`] },
    ],
  })

  // The origin answers after 1 s: a 504 means the route's 300 ms limit fired first.
  const quick = await within(get(proxy.url('/quick/a')), WAIT_MS, 'the quick route')
  const text = assertShortTextError(quick, 504, '/quick/a')
  assert.ok(text.includes(`${origin.url}/q/a`), `the body names the upstream URL: ${JSON.stringify(text)}`)
  assert.equal(origin.count('/q/a'), 1)

  const patient = await within(get(proxy.url('/patient/a')), WAIT_MS, 'the patient route')
  assertBody(patient, 'slow /p/a', '/patient/a')
  assert.equal(cacheStatus(patient), 'cachemir; fwd=miss; stored')
  assert.equal(origin.count('/p/a'), 1)
})

test("the --headers-timeout flag wins over the config file's global timeouts, and a route's own timeouts win over the flag", async (t) => {
  const origin = await startOrigin(t, (req, res) =>
    sendBody(req, res, Buffer.from(`slow ${req.url ?? ''}`), { headers: CACHEABLE, firstByteDelayMs: 1000 }),
  )
  const proxy = await startConfiguredProxy(
    t,
    {
      timeouts: { headers: '300ms' },
      routes: [
        { prefix: '/global/', upstreams: [`${origin.url}/g/`] },
        { prefix: '/own/', upstreams: [`${origin.url}/o/`], timeouts: { headers: '300ms' } },
      ],
    },
    { headersTimeout: '5s' },
  )

  const global = await within(get(proxy.url('/global/a')), WAIT_MS, 'the route under the flag')
  assertBody(global, 'slow /g/a', "/global/a: the 5 s flag, not the file's 300 ms")
  const own = await within(get(proxy.url('/own/a')), WAIT_MS, 'the route with its own limit')
  assertShortTextError(own, 504, "/own/a: the route's 300 ms")
  assert.equal(origin.count('/g/a'), 1)
  assert.equal(origin.count('/o/a'), 1)
})

test("without followRedirects a redirect goes to the client: a Location into the route's upstream becomes the mirror path, others pass unchanged", async (t) => {
  let base = ''
  const origin = await startOrigin(t, (req, res) => {
    const locations: Record<string, string> = {
      '/base/moved': `${base}/base/other`,
      '/base/moved-relative': '/base/other?q=1',
      '/base/away': 'http://elsewhere.invalid/base/other',
      '/base/outside': `${base}/not-base/other`,
    }
    const location = locations[req.url ?? '']
    if (location === undefined) return sendBody(req, res, Buffer.from(`target ${req.url ?? ''}`), { headers: CACHEABLE })
    return sendBody(req, res, Buffer.from('redirecting'), { status: 302, headers: { location, 'content-type': 'text/plain' } })
  })
  base = origin.url
  const proxy = await startConfiguredProxy(t, { routes: [{ prefix: '/prefix/', upstreams: [`${origin.url}/base/`] }] })

  const cases: [string, string][] = [
    ['/prefix/moved', '/prefix/other'],
    ['/prefix/moved-relative', '/prefix/other?q=1'],
    ['/prefix/away', 'http://elsewhere.invalid/base/other'],
    ['/prefix/outside', `${origin.url}/not-base/other`],
  ]
  for (const [path, location] of cases) {
    const r = await within(get(proxy.url(path)), WAIT_MS, path)
    assert.equal(r.status, 302, path)
    assert.equal(r.headers['location'], location, `${path}: Location`)
    assert.equal(r.body.toString(), 'redirecting', path)
  }
  assert.equal(origin.count('/base/other'), 0, 'redirects are not followed')
  assert.equal(origin.count(), cases.length)
})

test("with followRedirects the client gets the target's body, stored under the requested URL; a redirect out of the route is passed on", async (t) => {
  const body = makeBody(64 * KiB, 6)
  let base = ''
  const origin = await startOrigin(t, (req, res) => {
    if (req.url === '/base/moved')
      return sendBody(req, res, Buffer.from('redirecting'), { status: 302, headers: { location: `${base}/base/target` } })
    if (req.url === '/base/away')
      return sendBody(req, res, Buffer.from('redirecting'), { status: 302, headers: { location: 'http://elsewhere.invalid/base/target' } })
    if (req.url === '/base/target') return sendBody(req, res, body, { headers: CACHEABLE })
    return sendBody(req, res, Buffer.from('not found'), { status: 404 })
  })
  base = origin.url
  const proxy = await startConfiguredProxy(t, {
    routes: [{ prefix: '/prefix/', upstreams: [`${origin.url}/base/`], followRedirects: true }],
  })

  const first = await within(get(proxy.url('/prefix/moved')), WAIT_MS, 'the followed redirect')
  assertBody(first, body, 'followed redirect')
  assert.equal(first.headers['location'], undefined)
  assert.equal(cacheStatus(first), 'cachemir; fwd=miss; stored')
  const second = await get(proxy.url('/prefix/moved'))
  assertBody(second, body, 'second request')
  assert.match(cacheStatus(second), /^cachemir; hit/)
  assert.equal(origin.count('/base/moved'), 1, 'the redirect was fetched once')
  assert.equal(origin.count('/base/target'), 1, 'the target was fetched once')

  const away = await within(get(proxy.url('/prefix/away')), WAIT_MS, 'a redirect out of the route')
  assert.equal(away.status, 302)
  assert.equal(away.headers['location'], 'http://elsewhere.invalid/base/target')
  assert.equal(origin.count('/base/away'), 1)
})

test('with followRedirects a redirect chain or loop stops after 5 hops: the client gets the 6th redirect, rewritten to the mirror path', async (t) => {
  let base = ''
  const origin = await startOrigin(t, (req, res) => {
    const url = req.url ?? ''
    const hop = /^\/base\/hop(\d+)$/.exec(url)
    const location = hop !== null ? `${base}/base/hop${Number(hop[1]) + 1}` : url === '/base/loop' ? `${base}/base/loop` : undefined
    if (location === undefined) return sendBody(req, res, Buffer.from('not found'), { status: 404 })
    return sendBody(req, res, Buffer.from('redirecting'), { status: 302, headers: { location } })
  })
  base = origin.url
  const proxy = await startConfiguredProxy(t, {
    routes: [{ prefix: '/prefix/', upstreams: [`${origin.url}/base/`], followRedirects: true }],
  })

  const chain = await within(get(proxy.url('/prefix/hop0')), WAIT_MS, 'the redirect chain')
  assert.equal(chain.status, 302)
  assert.equal(chain.headers['location'], '/prefix/hop6', 'the 6th redirect (from hop5), rewritten')
  assert.deepEqual(
    origin.requests.map((r) => r.url),
    ['/base/hop0', '/base/hop1', '/base/hop2', '/base/hop3', '/base/hop4', '/base/hop5'],
  )

  origin.reset()
  const loop = await within(get(proxy.url('/prefix/loop')), WAIT_MS, 'the redirect loop')
  assert.equal(loop.status, 302)
  assert.equal(loop.headers['location'], '/prefix/loop')
  assert.equal(origin.count('/base/loop'), 6)
  assert.equal(origin.count(), 6)
})
