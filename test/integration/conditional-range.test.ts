// test/integration/conditional-range.test.ts
// Client conditionals (If-None-Match, If-Modified-Since), Range and If-Range, and HEAD, answered
// from a cached object in the memory tier and from one streamed off disk; and ranges and HEAD on
// a miss, which still fill the whole object.

import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { makeBody, serveStatic, sha256, startOrigin, type Origin } from '../helpers/origin.js'
import { startProxy, type Proxy } from '../helpers/proxy.js'
import { get, type Fetched } from '../helpers/client.js'
import { waitForFills } from '../helpers/wait.js'

const ETAG = '"v1"'
const LAST_MODIFIED_MS = Date.parse('Mon, 01 Jan 2024 00:00:00 GMT')
const LAST_MODIFIED = new Date(LAST_MODIFIED_MS).toUTCString()
const CONTENT_TYPE = 'application/octet-stream'

interface Tier {
  readonly name: string
  readonly body: Buffer
}

// The memory tier keeps bodies up to min(maxMemory/16, 8 MiB); 20 MiB is always read from disk.
const TIERS: readonly Tier[] = [
  { name: 'a small object (memory tier)', body: makeBody(1000, 11) },
  { name: 'a large object (disk tier)', body: makeBody(20 * 1024 * 1024, 12) },
]

async function startMirrorFor(t: TestContext, body: Buffer): Promise<{ origin: Origin; proxy: Proxy }> {
  const origin = await startOrigin(
    t,
    serveStatic({
      '/obj': {
        body,
        etag: ETAG,
        lastModified: LAST_MODIFIED,
        headers: { 'cache-control': 'max-age=3600', 'content-type': CONTENT_TYPE },
      },
    }),
  )
  const proxy = await startProxy(t, { upstream: origin.url })
  return { origin, proxy }
}

/** Primes the cache with one full GET and checks it. */
async function prime(proxy: Proxy, body: Buffer): Promise<void> {
  const first = await get(proxy.url('/obj'))
  assert.equal(first.status, 200)
  assert.equal(sha256(first.body), sha256(body))
  assert.equal(first.headers['cache-status'], 'cachemir; fwd=miss; stored')
  await waitForFills(proxy)
}

function assertHit(res: Fetched): void {
  assert.match(res.headers['cache-status'] ?? '', /^cachemir; hit(;|$)/)
}

function assertFull(res: Fetched, body: Buffer): void {
  assert.equal(res.status, 200)
  assert.equal(res.headers['content-length'], String(body.length))
  assert.equal(res.headers['content-range'], undefined)
  assert.equal(res.body.length, body.length)
  assert.equal(sha256(res.body), sha256(body))
}

function assertPartial(res: Fetched, body: Buffer, start: number, end: number): void {
  assert.equal(res.status, 206)
  assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${body.length}`)
  assert.equal(res.headers['content-length'], String(end - start + 1))
  assert.equal(res.body.length, end - start + 1)
  assert.ok(res.body.equals(body.subarray(start, end + 1)), `bytes ${start}-${end} differ`)
}

interface Part {
  readonly headers: Record<string, string>
  readonly data: Buffer
}

/** Splits a multipart/byteranges body (RFC 9110 §14.6) into its parts. */
function parseByteranges(body: Buffer, contentType: string): Part[] {
  const m = /^multipart\/byteranges;\s*boundary=("?)([^";]+)\1$/i.exec(contentType)
  assert.ok(m !== null, `expected multipart/byteranges with a boundary, got ${contentType}`)
  const delimiter = Buffer.from(`--${m[2]}`)
  const nextDelimiter = Buffer.concat([Buffer.from('\r\n'), delimiter])
  const parts: Part[] = []
  let pos = body.indexOf(delimiter)
  assert.ok(pos >= 0, 'no boundary in the body')
  for (;;) {
    pos += delimiter.length
    if (body.subarray(pos, pos + 2).toString('latin1') === '--') break
    assert.equal(body.subarray(pos, pos + 2).toString('latin1'), '\r\n', 'CRLF after a boundary')
    pos += 2
    const headerEnd = body.indexOf('\r\n\r\n', pos)
    assert.ok(headerEnd >= 0, 'unterminated part header')
    const headers: Record<string, string> = {}
    for (const line of body.subarray(pos, headerEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    const dataStart = headerEnd + 4
    const dataEnd = body.indexOf(nextDelimiter, dataStart)
    assert.ok(dataEnd >= 0, 'part without a closing boundary')
    parts.push({ headers, data: body.subarray(dataStart, dataEnd) })
    pos = dataEnd + 2
  }
  return parts
}

function assertMultipart(res: Fetched, body: Buffer, ranges: readonly (readonly [number, number])[]): void {
  assert.equal(res.status, 206)
  assert.equal(res.headers['content-range'], undefined)
  assert.equal(res.headers['content-length'], String(res.body.length))
  const parts = parseByteranges(res.body, res.headers['content-type'] ?? '')
  assert.equal(parts.length, ranges.length)
  for (const [i, [start, end]] of ranges.entries()) {
    const part = parts[i] as Part
    assert.equal(part.headers['content-range'], `bytes ${start}-${end}/${body.length}`)
    assert.equal(part.headers['content-type'], CONTENT_TYPE)
    assert.ok(part.data.equals(body.subarray(start, end + 1)), `part ${i} (bytes ${start}-${end}) differs`)
  }
}

for (const tier of TIERS) {
  const size = tier.body.length

  test(`conditional requests on ${tier.name} are answered from cache`, async (t) => {
    const { origin, proxy } = await startMirrorFor(t, tier.body)
    await prime(proxy, tier.body)

    const notModified: readonly [string, Record<string, string>][] = [
      ['If-None-Match with the stored ETag', { 'if-none-match': ETAG }],
      ['If-None-Match with the weak form of the ETag', { 'if-none-match': `W/${ETAG}` }],
      ['If-None-Match with a list containing the ETag', { 'if-none-match': `"other", ${ETAG}` }],
      ['If-None-Match: *', { 'if-none-match': '*' }],
      ['If-Modified-Since at Last-Modified', { 'if-modified-since': LAST_MODIFIED }],
      ['If-Modified-Since after Last-Modified', { 'if-modified-since': new Date(LAST_MODIFIED_MS + 86_400_000).toUTCString() }],
    ]
    for (const [name, headers] of notModified) {
      await t.test(`${name} gets 304 without a body`, async () => {
        const res = await get(proxy.url('/obj'), { headers })
        assert.equal(res.status, 304)
        assert.equal(res.body.length, 0)
        assert.equal(res.headers.etag, ETAG)
        assertHit(res)
      })
    }

    const modified: readonly [string, Record<string, string>][] = [
      ['If-None-Match with another ETag', { 'if-none-match': '"other"' }],
      ['If-Modified-Since before Last-Modified', { 'if-modified-since': new Date(LAST_MODIFIED_MS - 86_400_000).toUTCString() }],
      // If-None-Match decides when both are present (RFC 9110 §13.1.3).
      [
        'If-None-Match with another ETag and a matching If-Modified-Since',
        { 'if-none-match': '"other"', 'if-modified-since': LAST_MODIFIED },
      ],
    ]
    for (const [name, headers] of modified) {
      await t.test(`${name} gets the full 200`, async () => {
        const res = await get(proxy.url('/obj'), { headers })
        assertFull(res, tier.body)
        assertHit(res)
      })
    }

    assert.equal(origin.count('/obj'), 1, 'the origin saw only the first request')
  })

  test(`ranges on ${tier.name} are answered from cache`, async (t) => {
    const { origin, proxy } = await startMirrorFor(t, tier.body)
    await prime(proxy, tier.body)

    const single: readonly [string, number, number][] = [
      ['bytes=0-9', 0, 9],
      ['bytes=-5', size - 5, size - 1],
      ['bytes=10-', 10, size - 1],
      [`bytes=${size - 10}-${size + 100}`, size - 10, size - 1],
      [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
    ]
    for (const [range, start, end] of single) {
      await t.test(`${range} gets 206 with bytes ${start}-${end}`, async () => {
        const res = await get(proxy.url('/obj'), { headers: { range } })
        assertPartial(res, tier.body, start, end)
        assertHit(res)
      })
    }

    await t.test(`bytes=${size}- gets 416 with Content-Range: bytes */${size}`, async () => {
      const res = await get(proxy.url('/obj'), { headers: { range: `bytes=${size}-` } })
      assert.equal(res.status, 416)
      assert.equal(res.headers['content-range'], `bytes */${size}`)
      assert.equal(res.body.length, 0)
    })

    for (const range of ['bytes=5-2', 'items=0-5', 'bytes=abc']) {
      await t.test(`an invalid Range (${range}) is ignored: full 200`, async () => {
        const res = await get(proxy.url('/obj'), { headers: { range } })
        assertFull(res, tier.body)
        assertHit(res)
      })
    }

    const multi: readonly [string, (readonly [number, number])[]][] = [
      [
        'bytes=0-1,5-6',
        [
          [0, 1],
          [5, 6],
        ],
      ],
      [
        `bytes=0-0,-1`,
        [
          [0, 0],
          [size - 1, size - 1],
        ],
      ],
    ]
    for (const [range, ranges] of multi) {
      await t.test(`${range} gets 206 multipart/byteranges with the right parts`, async () => {
        const res = await get(proxy.url('/obj'), { headers: { range } })
        assertMultipart(res, tier.body, ranges)
        assertHit(res)
      })
    }

    await t.test('If-Range with the current strong ETag gets the range', async () => {
      const res = await get(proxy.url('/obj'), { headers: { range: 'bytes=0-9', 'if-range': ETAG } })
      assertPartial(res, tier.body, 0, 9)
    })
    await t.test('If-Range with the Last-Modified date gets the range', async () => {
      const res = await get(proxy.url('/obj'), { headers: { range: 'bytes=0-9', 'if-range': LAST_MODIFIED } })
      assertPartial(res, tier.body, 0, 9)
    })
    for (const ifRange of ['"other"', `W/${ETAG}`]) {
      await t.test(`If-Range: ${ifRange} gets the full 200`, async () => {
        const res = await get(proxy.url('/obj'), { headers: { range: 'bytes=0-9', 'if-range': ifRange } })
        assertFull(res, tier.body)
        assertHit(res)
      })
    }

    assert.equal(origin.count('/obj'), 1, 'the origin saw only the first request')
  })

  test(`HEAD on ${tier.name} in cache sends the headers with the full Content-Length`, async (t) => {
    const { origin, proxy } = await startMirrorFor(t, tier.body)
    await prime(proxy, tier.body)

    const res = await get(proxy.url('/obj'), { method: 'HEAD' })

    assert.equal(res.status, 200)
    assert.equal(res.headers['content-length'], String(size))
    assert.equal(res.headers.etag, ETAG)
    assert.equal(res.headers['content-type'], CONTENT_TYPE)
    assert.equal(res.body.length, 0)
    assertHit(res)
    assert.equal(origin.count('/obj'), 1)
  })

  test(`HEAD on ${tier.name} not in cache fills the cache with one GET`, async (t) => {
    const { origin, proxy } = await startMirrorFor(t, tier.body)

    const head = await get(proxy.url('/obj'), { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], String(size))
    assert.equal(head.body.length, 0)
    await waitForFills(proxy)

    const res = await get(proxy.url('/obj'))
    assertFull(res, tier.body)
    assertHit(res)
    assert.deepEqual(
      origin.requests.map((r) => r.method),
      ['GET'],
    )
  })

  const missRanges: readonly { range: string; check: (res: Fetched) => void }[] = [
    { range: 'bytes=100-199', check: (res) => assertPartial(res, tier.body, 100, 199) },
    { range: `bytes=${size - 500}-`, check: (res) => assertPartial(res, tier.body, size - 500, size - 1) },
    {
      range: 'bytes=0-1,5-6',
      check: (res) =>
        assertMultipart(res, tier.body, [
          [0, 1],
          [5, 6],
        ]),
    },
    {
      range: `bytes=${size}-`,
      check: (res) => {
        assert.equal(res.status, 416)
        assert.equal(res.headers['content-range'], `bytes */${size}`)
      },
    },
  ]
  for (const { range, check } of missRanges) {
    test(`Range ${range} on ${tier.name} not in cache is answered and fills the whole object`, async (t) => {
      const { origin, proxy } = await startMirrorFor(t, tier.body)

      const ranged = await get(proxy.url('/obj'), { headers: { range } })
      check(ranged)
      await waitForFills(proxy)

      assert.equal(origin.count('/obj'), 1)
      assert.equal(origin.requests[0]?.headers.range, undefined, 'the fill asks for the whole object')
      const full = await get(proxy.url('/obj'))
      assertFull(full, tier.body)
      assertHit(full)
      assert.equal(origin.count('/obj'), 1)
    })
  }
}
